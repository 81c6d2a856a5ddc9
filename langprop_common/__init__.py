"""What every package of the project shares, below all of them.

The lowest layer: the standard library only, importing nothing of the project,
so that ``langprop_core`` (the domain-free framework) and ``driving`` (the
scene contract) stay independent of each other and still write files, print
untrusted values and tie process lifetimes the same way:

- :mod:`langprop_common.files`: atomic file writes;
- :mod:`langprop_common.reprs`: a bounded ``repr`` of untrusted values;
- :mod:`langprop_common.processes`: a process that ends when another one does.
"""
