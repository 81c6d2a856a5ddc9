"""Run untrusted scripts: a pool of worker processes, or trusted in-process.

A batch of calls is ``sources x inputs``. In process mode every worker gets the
batch's inputs once (pickled once, sent once per worker per batch), then runs
jobs ``(script, range of inputs)`` and answers with one message per job, so the
per-call cost is a function call plus the per-call deep copy of its arguments
(a copy function compiled for the input's structure when the input is plain
data, see :mod:`langprop_core.copier`, else a ``pickle`` round trip).

A script may call other functions by name: ``dependencies`` (the best scripts
of the modules its module depends on) are loaded into its namespace first.

Limits, enforced per call:

- time: inside the worker a periodic ``SIGALRM`` raises in a call that has run
  longer than ``timeout_s``; a call stuck where Python cannot interrupt it is
  caught by the parent, which watches a shared progress counter and kills the
  worker.
- memory: ``RLIMIT_AS`` in the worker; running out raises ``MemoryError`` in
  the script (the worker is then replaced) or kills the worker.
- a worker that dies (``os._exit``, a crash, a kill) is replaced; the call it
  was running is failed and the rest of its job is run again elsewhere.

Failures never raise here: they come back as :class:`CallResult` with
``exception`` set, so the trainer can score them.
"""
from __future__ import annotations

import collections
import copy
import ctypes
import gc
import io
import linecache
import logging
import math
import mmap
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Sequence

from langprop_core.copier import CopyPlanner

__all__ = ["ScriptError", "ScriptTimeout", "CallResult", "SandboxConfig", "ScriptRunner", "load_function",
           "Dependency", "DependencyError", "prepare_inputs"]

log = logging.getLogger(__name__)

_PICKLE = pickle.HIGHEST_PROTOCOL
# Beyond the per-call timeout, how long the parent waits for a worker that
# shows no progress before it kills it (the in-worker alarm should fire first).
_HARD_GRACE_S = 0.5
# Before its first call of a job a worker may still be starting or decoding the
# batch's inputs: on a loaded machine that takes seconds, and must not count
# against the script's time limit (it made closed-loop rollouts differ between runs).
_STARTUP_LIMIT_S = 60.0
# A script that kills its worker this many times in one batch fails its remaining calls.
_MAX_DEATHS_PER_SCRIPT = 3
_MAX_TRACEBACK_CHARS = 4000


class ScriptError(Exception):
    """A script call failed (raised, timed out, killed its worker); the message says how."""


class ScriptTimeout(ScriptError):
    """A script call ran past its time limit."""


# Every timeout message starts with this (in-worker alarm or a killed worker).
_TIMEOUT_PREFIX = "Timeout: "


@dataclass(slots=True)
class CallResult:
    """The outcome of one call. ``exception`` is None when the call returned."""

    output: Any
    exception: str | None
    traceback: str | None
    stdout: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def timed_out(self) -> bool:
        return self.exception is not None and self.exception.startswith(_TIMEOUT_PREFIX)


def _default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class SandboxConfig:
    """How scripts run. ``mode="inprocess"`` trusts the scripts: no time or memory limit."""

    mode: str = "process"
    workers: int = field(default_factory=_default_workers)
    timeout_s: float = 1.0
    memory_mb: int = 1024
    max_stdout_chars: int = 2000

    def __post_init__(self) -> None:
        if self.mode not in ("process", "inprocess"):
            raise ValueError(f"SandboxConfig.mode must be 'process' or 'inprocess', not {self.mode!r}")
        if self.workers < 1:
            raise ValueError(f"SandboxConfig.workers must be >= 1, not {self.workers}")
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxConfig.timeout_s must be > 0, not {self.timeout_s}")


# --------------------------------------------------------------------------
# Loading and calling scripts (shared by the worker and the in-process mode)


class _CallTimeout(BaseException):
    """Raised into a call that ran past its time limit (BaseException: scripts'
    ``except Exception`` does not swallow it)."""


@dataclass(frozen=True)
class Dependency:
    """A function that a script may call by name: the script defining it.

    Scripts of a module that depends on another module run with the other
    module's best script loaded in their namespace, under ``function_name``.
    ``dependencies`` are the dependency's own dependencies (loaded the same way).
    """

    function_name: str
    source: str
    script_id: str = ""
    module: str = ""
    dependencies: tuple["Dependency", ...] = ()

    def describe(self) -> str:
        """The function, its module and script id, for error messages."""
        return f"{self.function_name!r} (module {self.module or '?'}, script {self.script_id or '?'})"


class DependencyError(Exception):
    """A dependency's script could not be loaded; the message names it."""


def load_function(source: str, function_name: str, filename: str = "<script>",
                  dependencies: Sequence[Dependency] = ()) -> Any:
    """Compile and run ``source`` once, return its ``function_name``.

    Each of ``dependencies`` is loaded first (in a namespace of its own) and
    bound in the script's namespace under its function name, so the script
    can call it. Raises the script's own exception, :class:`DependencyError`,
    or ``NameError``/``TypeError`` when the function is missing or not
    callable. The source is registered with :mod:`linecache` so tracebacks show
    the script's lines.
    """
    namespace: dict[str, Any] = {"__name__": "__langprop_script__", "__builtins__": __builtins__}
    for dep in dependencies:
        try:
            namespace[dep.function_name] = load_function(
                dep.source, dep.function_name, f"<dependency {dep.module or dep.function_name} "
                                               f"{dep.script_id}>".replace(" >", ">"),
                dep.dependencies)
        except DependencyError:
            raise
        except BaseException as exc:  # noqa: BLE001 - name the dependency that failed
            raise DependencyError(f"dependency {dep.describe()} cannot be loaded: "
                                  f"{_describe(exc, None)}") from exc
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, namespace)
    fn = namespace.get(function_name)
    if fn is None:
        raise NameError(f"the script defines no function {function_name!r}")
    if not callable(fn):
        raise TypeError(f"{function_name!r} in the script is a {type(fn).__name__}, not a function")
    return fn


def _describe(exc: BaseException, timeout_s: float | None) -> str:
    if isinstance(exc, _CallTimeout):
        return f"{_TIMEOUT_PREFIX}the call ran longer than {timeout_s:g} s"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _trimmed_traceback(exc: BaseException) -> str:
    # Drop our own frames: the first frame is the executor's call site.
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) > _MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-_MAX_TRACEBACK_CHARS:]
    return text


class _Capture(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` during a job: keeps what is written in a list,
    so checking after each call whether it printed is a cheap truth test."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.parts.append(text)
        return len(text)


class _Executor:
    """Compiles scripts once and runs jobs over inputs, a fresh copy per call, capturing stdout.

    ``timeout_s`` enables the in-worker alarm (only in worker processes: it
    takes over ``SIGALRM``).
    """

    def __init__(self, max_stdout_chars: int, timeout_s: float | None = None) -> None:
        self.max_stdout_chars = max_stdout_chars
        self.timeout_s = timeout_s
        self._functions: dict[tuple, Any] = {}
        self._call_start: float | None = None
        self.memory_error = False
        self._capture = _Capture()
        if timeout_s is not None:
            signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        start = self._call_start
        if start is not None and time.perf_counter() - start > self.timeout_s:
            self._call_start = None
            raise _CallTimeout()

    def _function(self, source: str, function_name: str, script_id: str,
                  dependencies: tuple[Dependency, ...] = ()) -> Any:
        key = (source, function_name, dependencies)
        if key not in self._functions:
            if len(self._functions) > 512:
                self._functions.clear()
            self._call_start = time.perf_counter()
            try:
                self._functions[key] = load_function(source, function_name, f"<script {script_id}>",
                                                     dependencies)
            except BaseException as exc:  # noqa: BLE001 - a bad script is data, not a crash
                self._functions[key] = exc
            finally:
                self._call_start = None
        return self._functions[key]

    def _load_failure(self, fn: BaseException, n: int, row: Any) -> list:
        exc_text = "LoadError: " + _describe(fn, self.timeout_s)
        return [row(None, exc_text, _trimmed_traceback(fn), "", 0.0)] * n

    def run_job(self, script_id: str, source: str, function_name: str, inputs: "_Inputs",
                start: int, stop: int, progress: Any = None,
                dependencies: tuple[Dependency, ...] = ()) -> list[tuple]:
        """Results ``(output, exception, traceback, stdout, duration_s)`` for inputs
        ``start:stop``, with the time limit and progress reports of a worker."""
        capture = self._capture
        parts = capture.parts
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        if self.timeout_s is not None:
            tick = max(0.005, self.timeout_s / 4)
            signal.setitimer(signal.ITIMER_REAL, tick, tick)
        results: list[tuple] = []
        append = results.append
        copiers, data = inputs.copiers, inputs.data
        # The shared counter itself (a ctypes int), not the property in front of it.
        counter = getattr(progress, "raw", progress)
        perf = time.perf_counter
        limit = self.max_stdout_chars
        # The cyclic GC would otherwise walk every output kept in ``results``
        # again and again; scripts' garbage is collected after the job.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if counter is not None:
                counter.value = start  # the script's own code runs from here: its limit applies
            fn = self._function(source, function_name, script_id, dependencies)
            if isinstance(fn, BaseException):
                return self._load_failure(fn, stop - start, _row)
            for i in range(start, stop):
                if counter is not None:
                    counter.value = i
                t0 = perf()
                self._call_start = t0
                try:
                    out = fn(*copiers[i](data[i]))
                    self._call_start = None
                    dt = perf() - t0
                    exc_text = tb_text = None
                except BaseException as exc:  # noqa: BLE001 - every failure is scored
                    self._call_start = None
                    dt = perf() - t0
                    out = None
                    exc_text = _describe(exc, self.timeout_s)
                    tb_text = _trimmed_traceback(exc)
                    if isinstance(exc, MemoryError):
                        self.memory_error = True
                if parts:
                    printed = "".join(parts)[:limit]
                    parts.clear()
                else:
                    printed = ""
                append((out, exc_text, tb_text, printed, dt))
            return results
        finally:
            if gc_was_enabled:
                gc.enable()
            self._call_start = None
            if self.timeout_s is not None:
                signal.setitimer(signal.ITIMER_REAL, 0, 0)
            sys.stdout, sys.stderr = old_out, old_err
            parts.clear()

    def run_job_inprocess(self, script_id: str, source: str, function_name: str,
                          inputs: "_Inputs", dependencies: tuple[Dependency, ...] = ()
                          ) -> list[CallResult]:
        """Every input through one script, trusted: no time limit, results as
        :class:`CallResult` directly (the hot loop of the in-process mode)."""
        capture = self._capture
        parts = capture.parts
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        results: list[CallResult] = []
        append = results.append
        perf = time.perf_counter
        limit = self.max_stdout_chars
        result = CallResult
        try:
            fn = self._function(source, function_name, script_id, dependencies)
            if isinstance(fn, BaseException):
                return self._load_failure(fn, len(inputs.data), CallResult)
            # One clock read per call: a call's duration runs from the end of the
            # previous one (so it includes its copy and the loop's bookkeeping).
            t0 = perf()
            for copier, args in zip(inputs.copiers, inputs.data):
                try:
                    out = fn(*copier(args))
                    t1 = perf()
                    if parts:
                        printed = "".join(parts)[:limit]
                        parts.clear()
                        append(result(out, None, None, printed, t1 - t0))
                    else:
                        append(result(out, None, None, "", t1 - t0))
                except BaseException as exc:  # noqa: BLE001 - every failure is scored
                    t1 = perf()
                    printed = "".join(parts)[:limit]
                    parts.clear()
                    append(result(None, _describe(exc, None), _trimmed_traceback(exc), printed,
                                  t1 - t0))
                t0 = t1
            return results
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            parts.clear()


def _row(*fields: Any) -> tuple:
    return fields


# --------------------------------------------------------------------------
# Inputs: prepared once per batch, copied on every call


@dataclass
class _Inputs:
    """Per input: a function returning a fresh deep copy of its argument tuple,
    and the data it copies from (``copiers[i](data[i])``)."""

    copiers: list[Any]
    data: list[Any]


def prepare_inputs(inputs: Sequence[tuple], planner: CopyPlanner) -> _Inputs:
    """Plan the per-call copies: a compiled structural copy where the input is
    plain data (see :mod:`langprop_core.copier`), else a pickle round trip, else
    ``copy.deepcopy`` (inputs that cannot be pickled)."""
    copiers: list[Any] = []
    data: list[Any] = []
    for args in inputs:
        fn = planner.copier_for(args)
        if fn is not None:
            copiers.append(fn)
            data.append(args)
            continue
        try:
            blob = pickle.dumps(args, _PICKLE)
        except Exception:  # noqa: BLE001 - unpicklable inputs: the slow general copy
            copiers.append(copy.deepcopy)
            data.append(args)
        else:
            copiers.append(pickle.loads)
            data.append(blob)
    return _Inputs(copiers, data)


# --------------------------------------------------------------------------
# The worker process


def _worker_main(conn: Any, progress: Any, timeout_s: float, memory_mb: int,
                 max_stdout_chars: int) -> None:
    """Worker loop: ``load`` (the batch's inputs) and ``run`` (a job) messages."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        import resource
        limit = int(memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError) as exc:  # pragma: no cover - non-Linux
        print(f"langprop sandbox: memory limit not set: {exc}", file=sys.stderr)
    executor = _Executor(max_stdout_chars, timeout_s)
    planner = CopyPlanner()
    sources: dict[str, str] = {}
    function_name = ""
    inputs = _Inputs([], [])
    dependencies: tuple[Dependency, ...] = ()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "load":
            _, function_name, sources, args, dependencies = msg
            inputs = prepare_inputs(args, planner)
        elif kind == "run":
            _, script_id, start, stop = msg
            results = executor.run_job(script_id, sources[script_id], function_name, inputs,
                                       start, stop, progress, dependencies)
            progress.value = -1
            recycle = executor.memory_error
            try:
                payload = pickle.dumps(("done", results, recycle), _PICKLE)
            except Exception:  # noqa: BLE001 - an output that cannot travel is a failure
                payload = pickle.dumps(("done", _picklable(results), recycle), _PICKLE)
            conn.send_bytes(payload)
            if recycle:
                return
        elif kind == "stop":
            return


def _picklable(results: list[tuple]) -> list[tuple]:
    fixed = []
    for item in results:
        try:
            pickle.dumps(item, _PICKLE)
            fixed.append(item)
        except Exception as exc:  # noqa: BLE001
            fixed.append((None, f"UnpicklableOutput: the returned value cannot be sent back "
                                f"({type(item[0]).__name__}: {exc})", None, item[3], item[4]))
    return fixed


class _Progress:
    """One int64 in memory shared with the worker: the input index being run (-1: idle)."""

    def __init__(self, fd: int) -> None:
        self._mm = mmap.mmap(fd, 8)
        # The ctypes int itself: the worker's hot loop writes ``raw.value`` directly.
        self.raw = ctypes.c_int64.from_buffer(self._mm)

    @property
    def value(self) -> int:
        return self.raw.value

    @value.setter
    def value(self, v: int) -> None:
        self.raw.value = v


def _worker_entry(sock_fd: int, progress_fd: int, timeout_s: float, memory_mb: int,
                  max_stdout_chars: int) -> None:
    """Entry point of a worker process (started by :class:`_Worker`)."""
    conn = multiprocessing.connection.Connection(sock_fd)
    _worker_main(conn, _Progress(progress_fd), timeout_s, memory_mb, max_stdout_chars)


_WORKER_CODE = ("import sys; from langprop_core.sandbox import _worker_entry; "
                "_worker_entry(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), "
                "int(sys.argv[4]), int(sys.argv[5]))")


class _Worker:
    """A worker process started with ``python -c``.

    Not a ``multiprocessing.Process``: spawn and forkserver re-import the
    caller's ``__main__``, which would run a leaderboard evaluator's or a user's
    script again in every worker.
    """

    def __init__(self, config: SandboxConfig) -> None:
        progress_fd = os.memfd_create("langprop-progress") if hasattr(os, "memfd_create") else None
        if progress_fd is None:  # pragma: no cover - non-Linux
            import tempfile
            # A raw descriptor: a TemporaryFile object would close it when collected.
            progress_fd, name = tempfile.mkstemp(prefix="langprop-progress-")
            os.unlink(name)
        os.ftruncate(progress_fd, 8)
        self.progress = _Progress(progress_fd)
        self.progress.value = -1
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # One BLAS/OpenMP thread per worker: the workers are the parallelism, and
        # per-thread arenas would eat the address-space limit.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(child_sock.fileno()), str(progress_fd),
             repr(config.timeout_s), str(config.memory_mb), str(config.max_stdout_chars)],
            pass_fds=(child_sock.fileno(), progress_fd), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, env=env, close_fds=True)
        child_sock.close()
        os.close(progress_fd)
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())
        self.batch_token: int | None = None
        self.job: tuple[str, int, int] | None = None
        self.seen_progress = -1
        self.seen_at = 0.0

    def is_alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def assign(self, job: tuple[str, int, int], now: float) -> None:
        self.job = job
        self.seen_progress = -2
        self.seen_at = now
        self.conn.send(("run",) + job)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            log.warning("sandbox worker %d did not exit after SIGKILL", self.process.pid)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
            self.process.wait(timeout=1)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


class ScriptRunner:
    """Runs a population of scripts over a batch of inputs.

    Use as a context manager (or call :meth:`close`) so worker processes end.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._workers: list[_Worker] = []
        self._token = 0
        self._executor: _Executor | None = None
        self._planner: CopyPlanner | None = None
        self.workers_replaced = 0

    # -- public API

    def run_batch(self, sources: dict[str, str], function_name: str, inputs: Sequence[tuple],
                  dependencies: Sequence[Dependency] = ()) -> dict[str, list[CallResult]]:
        """Call every script on every input; results in input order, per script id.

        ``dependencies`` are loaded into every script's namespace (see
        :class:`Dependency`); one that cannot be loaded fails every call.
        """
        inputs = list(inputs)
        for i, args in enumerate(inputs):
            if not isinstance(args, tuple):
                raise TypeError(f"inputs[{i}] is a {type(args).__name__}; each input must be a "
                                f"tuple of positional arguments")
        dependencies = tuple(dependencies)
        for dep in dependencies:
            if not isinstance(dep, Dependency):
                raise TypeError(f"dependencies must be Dependency objects, not {type(dep).__name__}")
        if not sources or not inputs:
            return {sid: [] for sid in sources}
        if self.config.mode == "inprocess":
            return self._run_inprocess(sources, function_name, inputs, dependencies)
        return self._run_process(sources, function_name, inputs, dependencies)

    def close(self) -> None:
        """Stop the worker processes."""
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def __enter__(self) -> "ScriptRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- in-process

    def _run_inprocess(self, sources: dict[str, str], function_name: str, inputs: list[tuple],
                       dependencies: tuple[Dependency, ...]) -> dict[str, list[CallResult]]:
        if self._executor is None:
            self._executor = _Executor(self.config.max_stdout_chars, timeout_s=None)
            self._planner = CopyPlanner()
        prepared = prepare_inputs(inputs, self._planner)
        out: dict[str, list[CallResult]] = {}
        gc_was_enabled = gc.isenabled()
        # The cyclic GC would otherwise walk every output kept so far again and
        # again; scripts' garbage is collected after the batch.
        gc.disable()
        try:
            for sid, source in sources.items():
                out[sid] = self._executor.run_job_inprocess(sid, source, function_name, prepared,
                                                            dependencies)
        finally:
            if gc_was_enabled:
                gc.enable()
        return out

    # -- worker processes

    def _ensure_workers(self) -> None:
        alive = []
        for worker in self._workers:
            if worker.is_alive():
                alive.append(worker)
            else:
                worker.kill()
                self.workers_replaced += 1
        self._workers = alive
        while len(self._workers) < self.config.workers:
            self._workers.append(_Worker(self.config))

    def _chunk_size(self, n_scripts: int, n_inputs: int) -> int:
        per_worker = math.ceil(n_scripts * n_inputs / (self.config.workers * 4))
        return max(1, min(n_inputs, per_worker, 2000))

    def _run_process(self, sources: dict[str, str], function_name: str, inputs: list[tuple],
                     dependencies: tuple[Dependency, ...]) -> dict[str, list[CallResult]]:
        n = len(inputs)
        try:
            payload = pickle.dumps(("load", function_name, dict(sources), inputs, dependencies),
                                   _PICKLE)
        except Exception as exc:  # noqa: BLE001 - name the problem for the caller
            raise TypeError(f"the inputs cannot be sent to sandbox workers ({type(exc).__name__}: "
                            f"{exc}); make them picklable or use SandboxConfig(mode='inprocess')") from exc
        self._token += 1
        token = self._token
        chunk = self._chunk_size(len(sources), n)
        jobs: collections.deque[tuple[str, int, int]] = collections.deque(
            (sid, s, min(s + chunk, n)) for sid in sources for s in range(0, n, chunk))
        results: dict[str, list[CallResult | None]] = {sid: [None] * n for sid in sources}
        deaths: collections.Counter[str] = collections.Counter()
        hard_limit_s = self.config.timeout_s + max(_HARD_GRACE_S, self.config.timeout_s)
        self._ensure_workers()

        while True:
            now = time.monotonic()
            for worker in self._workers:
                while worker.job is None and jobs:
                    job = jobs.popleft()
                    if deaths[job[0]] >= _MAX_DEATHS_PER_SCRIPT:
                        self._fail(results, job, f"WorkerDied: the script killed its worker "
                                                 f"{deaths[job[0]]} times in this batch; call not run")
                        continue
                    try:
                        if worker.batch_token != token:
                            worker.conn.send_bytes(payload)
                            worker.batch_token = token
                        worker.assign(job, now)
                    except OSError:  # died while idle: replace it, keep the job
                        jobs.appendleft(job)
                        worker.job = None
                        worker.kill()
                        self._ensure_workers()
                        break
            busy = [w for w in self._workers if w.job is not None]
            if not busy:
                break
            # A dying worker closes its socket, which wakes this wait too.
            multiprocessing.connection.wait([w.conn for w in busy], timeout=0.05)
            now = time.monotonic()
            replace = False
            for worker in busy:
                sid, start, stop = worker.job
                if worker.conn.poll():
                    try:
                        _, rows, recycle = worker.conn.recv()
                    except (EOFError, OSError):
                        self._worker_died(worker, results, jobs, deaths, "died")
                        replace = True
                        continue
                    results[sid][start:stop] = [CallResult(*row) for row in rows]
                    worker.job = None
                    if recycle:
                        worker.kill()
                        replace = True
                elif not worker.is_alive():
                    self._worker_died(worker, results, jobs, deaths, "died")
                    replace = True
                else:
                    seen = worker.progress.value
                    limit_s = hard_limit_s if seen >= 0 else max(hard_limit_s, _STARTUP_LIMIT_S)
                    if seen != worker.seen_progress:
                        worker.seen_progress, worker.seen_at = seen, now
                    elif now - worker.seen_at > limit_s:
                        self._worker_died(worker, results, jobs, deaths, "timeout")
                        replace = True
            if replace:
                self._ensure_workers()
        return results  # type: ignore[return-value] - every slot is filled by now

    @staticmethod
    def _fail(results: dict, job: tuple[str, int, int], message: str) -> None:
        sid, start, stop = job
        for i in range(start, stop):
            results[sid][i] = CallResult(None, message, None, "", 0.0)

    def _worker_died(self, worker: _Worker, results: dict, jobs: collections.deque,
                     deaths: collections.Counter, why: str) -> None:
        sid, start, stop = worker.job
        at = worker.progress.value
        at = start if at < start or at >= stop else at
        worker.kill()
        if why == "timeout":
            message = (f"{_TIMEOUT_PREFIX}the call ran longer than {self.config.timeout_s:g} s "
                       f"(worker killed)")
        else:
            code = worker.exitcode
            message = (f"WorkerDied: the worker process ended during the call (exit code {code}: "
                       f"os._exit, a crash, or the {self.config.memory_mb} MB memory limit)")
        results[sid][at] = CallResult(None, message, None, "", 0.0)
        deaths[sid] += 1
        log.info("script %s: %s on input %d; worker replaced", sid, message, at)
        worker.job = None
        if at > start:
            jobs.appendleft((sid, start, at))
        if at + 1 < stop:
            jobs.appendleft((sid, at + 1, stop))
