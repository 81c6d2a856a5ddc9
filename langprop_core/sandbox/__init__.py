"""Run untrusted scripts: boxed-in worker processes, or trusted in-process.

Modules, one job each: :mod:`.config` (settings, results, errors),
:mod:`.execution` (loading and calling a script), :mod:`.inputs` (per-call
copies), :mod:`.codec` (plain data across the boundary, bounded ``repr``),
:mod:`.isolation` (the kernel's means), :mod:`.worker` (the worker's loop),
:mod:`.pool` (workers, scheduling, the watchdog).

Threat model
------------
A script is hostile: written by an LLM, or by whoever made a downloaded
checkpoint. It may try anything Python allows. With ``mode="process"`` on a
Linux kernel with Landlock and libseccomp, a script

- runs only in a fork of a worker process, never in the trainer, the agent or
  the route process: results and every other message come back as plain data
  decoded without object construction (:mod:`.codec`); anything else, or
  anything over the size (1 MB) or depth bound, is an ``UnsafeOutput`` failure;
- sees no secret: the worker's environment is an allow-list (no keys, tokens,
  ``OPENAI_*``...), and ``/proc`` is outside what Landlock lets it read, so
  the parent's environment cannot be read either; the trainer also masks the
  configured API key in whatever it writes;
- reads only the Python install and the packages, writes only its worker's
  scratch directory (each file at most ``max_file_mb``), opens no socket and
  connects nowhere (seccomp; Landlock TCP rules where ABI >= 4), starts no
  process and execs nothing, signals only itself, cannot ptrace, and dies
  with its parent; a root worker drops every capability first;
- cannot touch the next script: every script runs in a fresh fork of a clean
  template (kept for that script's later jobs only), so a patch of
  ``builtins``, ``math`` or ``numpy``, a global or a scratch file ends with it;
- is bounded in time (in-worker alarm, parent watchdog killing the worker's
  process group), memory (``RLIMIT_AS``) and output (stdout captured and cut;
  the worker's own stderr goes to its scratch directory).

It does not stop: CPU side channels (timing, caches, Spectre-class reads of
the worker's own memory, which holds the batch's inputs), denial of service
within the limits (a script may use its whole time and memory budget on every
call; the trainer charges time only where the task opts in), covert channels
through timing of its results, reading files any user may read beneath the
Python install and packages, kernel bugs. Without Landlock or seccomp (old
kernels, other systems) the missing parts are reported once at start and
``SandboxConfig(strict=True)`` refuses to run. ``mode="inprocess"`` contains
nothing: it is for trusted code only (it catches ``SystemExit``; ``os._exit``
cannot be caught and ends the caller).
"""
from langprop_core.sandbox.codec import UnsafeOutput, bounded_repr
from langprop_core.sandbox.config import (CallResult, SandboxConfig, SandboxUnavailable, ScriptError,
                                          ScriptTimeout, WorkerKilled)
from langprop_core.sandbox.execution import Dependency, DependencyError, load_function
from langprop_core.sandbox.inputs import prepare_inputs
from langprop_core.sandbox.isolation import Protections, die_with, die_with_parent, probe
from langprop_core.sandbox.pool import ScriptRunner

__all__ = ["ScriptError", "ScriptTimeout", "CallResult", "SandboxConfig", "ScriptRunner", "load_function",
           "Dependency", "DependencyError", "prepare_inputs", "UnsafeOutput", "bounded_repr",
           "SandboxUnavailable", "WorkerKilled", "Protections", "probe", "die_with_parent", "die_with"]
