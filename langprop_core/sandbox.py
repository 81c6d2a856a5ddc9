"""Run untrusted scripts: a pool of worker processes, or trusted in-process.

A batch of calls is ``sources x inputs``. In process mode every worker gets the
batch's inputs once (pickled once, sent once per worker per batch), then runs
jobs ``(script, range of inputs)`` and answers with one message per job, so the
per-call cost is a function call plus decoding the serialized inputs (which is
the per-call deep copy: ``marshal`` when the inputs are plain Python data,
else ``pickle``).

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
import marshal
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

__all__ = ["ScriptError", "CallResult", "SandboxConfig", "ScriptRunner", "load_function"]

log = logging.getLogger(__name__)

_PICKLE = pickle.HIGHEST_PROTOCOL
# Beyond the per-call timeout, how long the parent waits for a worker that
# shows no progress before it kills it (the in-worker alarm should fire first).
_HARD_GRACE_S = 0.5
# A script that kills its worker this many times in one batch fails its remaining calls.
_MAX_DEATHS_PER_SCRIPT = 3
_MAX_TRACEBACK_CHARS = 4000


class ScriptError(Exception):
    """A script call failed (raised, timed out, killed its worker); the message says how."""


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


def load_function(source: str, function_name: str, filename: str = "<script>") -> Any:
    """Compile and run ``source`` once, return its ``function_name``.

    Raises the script's own exception, or ``NameError``/``TypeError`` when the
    function is missing or not callable. The source is registered with
    :mod:`linecache` so tracebacks show the script's lines.
    """
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__langprop_script__", "__builtins__": __builtins__}
    exec(code, namespace)
    fn = namespace.get(function_name)
    if fn is None:
        raise NameError(f"the script defines no function {function_name!r}")
    if not callable(fn):
        raise TypeError(f"{function_name!r} in the script is a {type(fn).__name__}, not a function")
    return fn


def _describe(exc: BaseException, timeout_s: float | None) -> str:
    if isinstance(exc, _CallTimeout):
        return f"Timeout: the call ran longer than {timeout_s:g} s"
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


class _Executor:
    """Compiles scripts once and runs jobs over pickled inputs, capturing stdout.

    ``timeout_s`` enables the in-worker alarm (only in worker processes: it
    takes over ``SIGALRM``).
    """

    def __init__(self, max_stdout_chars: int, timeout_s: float | None = None) -> None:
        self.max_stdout_chars = max_stdout_chars
        self.timeout_s = timeout_s
        self._functions: dict[tuple[str, str], Any] = {}
        self._call_start: float | None = None
        self.memory_error = False
        if timeout_s is not None:
            signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        start = self._call_start
        if start is not None and time.perf_counter() - start > self.timeout_s:
            self._call_start = None
            raise _CallTimeout()

    def _function(self, source: str, function_name: str, script_id: str) -> Any:
        key = (source, function_name)
        if key not in self._functions:
            if len(self._functions) > 512:
                self._functions.clear()
            self._call_start = time.perf_counter()
            try:
                self._functions[key] = load_function(source, function_name, f"<script {script_id}>")
            except BaseException as exc:  # noqa: BLE001 - a bad script is data, not a crash
                self._functions[key] = exc
            finally:
                self._call_start = None
        return self._functions[key]

    def run_job(self, script_id: str, source: str, function_name: str, blobs: Sequence[Any],
                start: int, stop: int, progress: Any = None,
                codec: str = "pickle") -> list[tuple]:
        """Results ``(output, exception, traceback, stdout, duration_s)`` for inputs ``start:stop``."""
        buf = io.StringIO()
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = buf
        if self.timeout_s is not None:
            tick = max(0.005, self.timeout_s / 4)
            signal.setitimer(signal.ITIMER_REAL, tick, tick)
        results: list[tuple] = []
        append = results.append
        loads = _DECODERS[codec]
        perf = time.perf_counter
        limit = self.max_stdout_chars
        # The cyclic GC would otherwise walk every output kept in ``results``
        # again and again; scripts' garbage is collected after the job.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            fn = self._function(source, function_name, script_id)
            if isinstance(fn, BaseException):
                exc_text = "LoadError: " + _describe(fn, self.timeout_s)
                tb_text = _trimmed_traceback(fn)
                return [(None, exc_text, tb_text, "", 0.0)] * (stop - start)
            for i in range(start, stop):
                if progress is not None:
                    progress.value = i
                t0 = perf()
                self._call_start = t0
                try:
                    out = fn(*loads(blobs[i]))
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
                if buf.tell():
                    printed = buf.getvalue()[:limit]
                    buf.seek(0)
                    buf.truncate()
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


# --------------------------------------------------------------------------
# Inputs: serialized once, decoded on every call (the per-call deep copy)

_DECODERS: dict[str, Any] = {"marshal": marshal.loads, "pickle": pickle.loads,
                             "deepcopy": copy.deepcopy}


def encode_inputs(inputs: Sequence[tuple]) -> tuple[str, list[bytes]]:
    """Serialize every input once: ``marshal`` (faster to decode) when all of them
    are plain Python data (exact dict, list, tuple, str, int, float, ... with no
    subclasses, which marshal would turn into their base type), else ``pickle``."""
    checker = _PlainDataCheck()
    checker.dump(inputs)  # also raises here, once, for inputs that cannot be sent at all
    if checker.plain:
        try:
            return "marshal", [marshal.dumps(args) for args in inputs]
        except ValueError:  # e.g. a self-referencing structure
            pass
    return "pickle", [pickle.dumps(args, _PICKLE) for args in inputs]


class _PlainDataCheck(pickle.Pickler):
    """Pickles to nowhere and notes whether anything but plain data was met.

    The C pickler consults ``reducer_override`` for every object except exact
    instances of None, bool, int, float, bytes, str, dict, set, frozenset, list
    and tuple, so one call means "not plain" (a subclass, an array, a class...).
    """

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), protocol=_PICKLE)
        self.plain = True

    def reducer_override(self, obj: Any) -> Any:
        self.plain = False
        return NotImplemented


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
    sources: dict[str, str] = {}
    function_name = ""
    codec = "pickle"
    blobs: list[bytes] = []
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "load":
            _, function_name, sources, codec, blobs = msg
        elif kind == "run":
            _, script_id, start, stop = msg
            results = executor.run_job(script_id, sources[script_id], function_name, blobs,
                                       start, stop, progress, codec)
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
        self._value = ctypes.c_int64.from_buffer(self._mm)

    @property
    def value(self) -> int:
        return self._value.value

    @value.setter
    def value(self, v: int) -> None:
        self._value.value = v


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
            progress_fd = tempfile.TemporaryFile().fileno()
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
        self.workers_replaced = 0

    # -- public API

    def run_batch(self, sources: dict[str, str], function_name: str,
                  inputs: Sequence[tuple]) -> dict[str, list[CallResult]]:
        """Call every script on every input; results in input order, per script id."""
        inputs = list(inputs)
        for i, args in enumerate(inputs):
            if not isinstance(args, tuple):
                raise TypeError(f"inputs[{i}] is a {type(args).__name__}; each input must be a "
                                f"tuple of positional arguments")
        if not sources or not inputs:
            return {sid: [] for sid in sources}
        if self.config.mode == "inprocess":
            return self._run_inprocess(sources, function_name, inputs)
        return self._run_process(sources, function_name, inputs)

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

    def _run_inprocess(self, sources: dict[str, str], function_name: str,
                       inputs: list[tuple]) -> dict[str, list[CallResult]]:
        if self._executor is None:
            self._executor = _Executor(self.config.max_stdout_chars, timeout_s=None)
        try:
            codec, blobs = encode_inputs(inputs)
        except Exception:  # noqa: BLE001 - unpicklable inputs: fall back to deepcopy
            codec, blobs = "deepcopy", list(inputs)
        out: dict[str, list[CallResult]] = {}
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for sid, source in sources.items():
                rows = self._executor.run_job(sid, source, function_name, blobs, 0, len(inputs),
                                              codec=codec)
                out[sid] = [CallResult(*row) for row in rows]
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

    def _run_process(self, sources: dict[str, str], function_name: str,
                     inputs: list[tuple]) -> dict[str, list[CallResult]]:
        n = len(inputs)
        try:
            codec, blobs = encode_inputs(inputs)
        except Exception as exc:  # noqa: BLE001 - name the problem for the caller
            raise TypeError(f"the inputs cannot be sent to sandbox workers ({type(exc).__name__}: "
                            f"{exc}); make them picklable or use SandboxConfig(mode='inprocess')") from exc
        payload = pickle.dumps(("load", function_name, dict(sources), codec, blobs), _PICKLE)
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
                    if seen != worker.seen_progress:
                        worker.seen_progress, worker.seen_at = seen, now
                    elif now - worker.seen_at > hard_limit_s:
                        self._worker_died(worker, results, jobs, deaths, "timeout")
                        replace = True
            if replace:
                self._ensure_workers()
        return {sid: rows for sid, rows in results.items()}  # type: ignore[misc]

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
            message = (f"Timeout: the call ran longer than {self.config.timeout_s:g} s "
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
