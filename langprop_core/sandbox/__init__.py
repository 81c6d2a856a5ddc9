"""Run untrusted scripts: boxed-in worker processes, or trusted in-process.

Modules, one job each: :mod:`.config` (settings, results, errors),
:mod:`.execution` (loading and calling a script), :mod:`.inputs` (per-call
copies), :mod:`.codec` (plain data across the boundary, bounded ``repr``),
:mod:`.isolation` (the order of the lock-down, Landlock, :func:`probe`),
:mod:`.identity` (namespaces, the worker's own uid, the task bound),
:mod:`.seccomp` (the allow-list), :mod:`.worker` (the worker's template and
its job processes), :mod:`.zygote` (forks job processes from a state that has
seen no job), :mod:`.pool` (workers, scheduling, deadlines, message checks).

Threat model
------------
A script is hostile: written by an LLM, or by whoever made a downloaded
checkpoint. It may try anything Python allows, including reading and writing
its own process's memory. With ``mode="process"`` on Linux, run as root (the
project's machines and CI), with Landlock ABI >= 1 and libseccomp, a script

- runs only in a fork of a worker's template, never in the trainer, the agent
  or the route process, and no code of it runs in the template either: results
  come back as plain data decoded without object construction (:mod:`.codec`),
  bounded by what they cost (ints by bit length, strings and bytes by length,
  arrays by buffer, every shared reference again) and in depth; anything else
  is an ``UnsafeOutput`` failure;
- has an identity of its own: a uid that owns no file, process or IPC object
  of the host (``identity.UID_BASE`` + the worker's pid), no capability but
  ``CAP_DAC_READ_SEARCH`` (whose reads Landlock bounds), its worker's own IPC
  and PID namespaces (it sees no other process; System V IPC and message
  queues die with the worker), and at most ``identity.MAX_TASKS`` processes
  and threads (``RLIMIT_NPROC`` of that uid);
- asks the kernel only for what the seccomp allow-list names (default:
  refuse, so a new system call is refused too): memory, its own files and
  pipes, futexes, clocks, threads (``clone`` with ``CLONE_THREAD`` and no
  namespace flag), signals to itself; no socket, ``exec``, process, ``ptrace``,
  mount, namespace, identity change, file metadata (mode, owner, times,
  extended attributes, links), other processes' limits, priority or affinity,
  System V IPC or message queues; ``fcntl`` and ``ioctl`` without the commands
  that make the kernel signal someone (``F_SETOWN``, ``F_SETSIG``,
  ``FIOSETOWN``, ``O_ASYNC``), which closes that hole where Landlock cannot
  scope signals (ABI < 6, e.g. Linux 6.8);
- reads only the standard library, the libraries of
  ``isolation.SCRIPT_LIBRARIES`` (numpy) and the system's shared libraries (not
  the package's own tree, not other installed packages, not ``/proc``), writes
  only its worker's scratch directory (emptied between scripts; each file at
  most ``max_file_mb``), and connects nowhere (seccomp; Landlock TCP rules at
  ABI >= 4);
- sees no secret: the worker's environment is an allow-list; the trainer masks
  the configured API key in whatever it writes;
- sees only its own job, even reading its process's raw memory (``ctypes``,
  numpy's array interface): its process is a fork of the worker's zygote,
  which has held no job's data, and gets its script and inputs through its own
  pipe; the template hands it one input at a time, the next only after the
  previous call's result, so a call never sees a later input (on a series
  task, its label) nor another script's source; nor a file or log left by an
  earlier script (the worker's log lies outside the scratch directory, and a
  job process's stderr is ``/dev/null``);
- is given nothing the trusted side believes on its word: each call's deadline
  is kept by the template (``timeout_s`` plus a grace, from the moment it
  hands the input over; past it the fork is killed, whatever the script did to
  its alarm), each job's by the parent, and the durations charged are the
  template's; every field of every frame is checked (types, sizes, texts cut
  and stripped of control characters, reasons from a fixed list); nothing the
  trusted side reads is mapped into or writable by a job; a kept fork is
  stopped (``SIGSTOP``) between its jobs, so threads it left do not run;
- cannot touch the next script: each script runs in a fresh fork of a clean
  template, so a patch of ``builtins``, ``math`` or ``numpy``, a global or a
  scratch file ends with it; and dies with its worker, which dies with its
  parent.

It does not stop: CPU side channels and timing covert channels; denial of
service within the limits (a
script may use its whole time and memory budget on every call; the trainer
charges time only where the task opts in); filling its scratch disk within the
file-size limit; reading files any user may read beneath the standard library
and numpy; kernel bugs. Without root the worker keeps the trainer's uid (a
user namespace gives it its own IPC and PID namespaces and task bound where
the kernel allows unprivileged ones; seccomp still refuses metadata changes
and acting on other processes); without Landlock or seccomp (old kernels,
other systems) the missing parts are named, with what each leaves open, in
the start-up report and :func:`probe`, and ``SandboxConfig(strict=True)``
refuses to run. ``mode="inprocess"`` contains nothing: it is for trusted code
only (it catches ``SystemExit``; ``os._exit`` cannot be caught and ends the
caller).
"""
from langprop_core.sandbox.codec import UnsafeOutput, bounded_repr
from langprop_core.sandbox.config import (CallResult, SandboxConfig, SandboxUnavailable, ScriptError,
                                          ScriptTimeout, WorkerKilled)
from langprop_core.sandbox.execution import Dependency, DependencyError, load_function
from langprop_core.sandbox.inputs import prepare_inputs
from langprop_core.sandbox.isolation import Protections, die_with_parent, probe
from langprop_core.sandbox.pool import ScriptRunner

__all__ = ["ScriptError", "ScriptTimeout", "CallResult", "SandboxConfig", "ScriptRunner", "load_function",
           "Dependency", "DependencyError", "prepare_inputs", "UnsafeOutput", "bounded_repr",
           "SandboxUnavailable", "WorkerKilled", "Protections", "probe", "die_with_parent"]
