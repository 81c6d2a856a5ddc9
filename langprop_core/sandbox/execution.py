"""Loading and calling scripts: shared by the worker's job fork and the in-process mode.

A script is compiled and run once per job, in a namespace of its own (its own
``__builtins__`` dict, so rebinding a builtin by name stays in the script);
calls get a fresh copy of their inputs and their printed text is captured.
In a worker each script runs in a fresh fork of the worker's template
process, so whatever a script changes (``builtins``, ``math``, ``numpy``,
globals) is seen by no other script.
"""
from __future__ import annotations

import builtins
import gc
import io
import linecache
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from langprop_core.sandbox.codec import Bounds, UnsafeOutput, check_plain
from langprop_core.sandbox.config import TIMEOUT_PREFIX, UNSAFE_PREFIX, CallResult
from langprop_core.sandbox.inputs import Inputs

__all__ = ["Dependency", "DependencyError", "load_function", "Executor", "describe"]

_MAX_TRACEBACK_CHARS = 4000
_MAX_EXCEPTION_CHARS = 2000
_TIMEOUT_PREFIX = TIMEOUT_PREFIX
_MAX_PRINT_PARTS = 256
_MAX_PRINT_PART_CHARS = 1 << 16


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
    namespace: dict[str, Any] = {"__name__": "__langprop_script__",
                                 "__builtins__": dict(builtins.__dict__)}
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
                                  f"{describe(exc, None)}") from exc
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, namespace)
    fn = namespace.get(function_name)
    if fn is None:
        raise NameError(f"the script defines no function {function_name!r}")
    if not callable(fn):
        raise TypeError(f"{function_name!r} in the script is a {type(fn).__name__}, not a function")
    return fn


def describe(exc: BaseException, timeout_s: float | None) -> str:
    """``Type: message`` of an exception, bounded (a timeout says so with its limit)."""
    if isinstance(exc, _CallTimeout):
        return f"{_TIMEOUT_PREFIX}the call ran longer than {timeout_s:g} s"
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a script's exception may fail to print
        text = "<unprintable>"
    if type(text) is not str:  # pragma: no cover - str() of a str subclass
        text = "<unprintable>"
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:_MAX_EXCEPTION_CHARS]


def _trimmed_traceback(exc: BaseException) -> str:
    # Drop our own frames: the first frame is the executor's call site.
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # noqa: BLE001 - a hostile exception's own methods may fail
        return f"{type(exc).__name__} (traceback unprintable)"
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
        if type(text) is not str:
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if len(self.parts) < _MAX_PRINT_PARTS:  # beyond that nothing more of a call's text is kept
            self.parts.append(text[:_MAX_PRINT_PART_CHARS])
        return len(text)


class Executor:
    """Compiles scripts once and runs jobs over inputs, a fresh copy per call, capturing stdout.

    ``timeout_s`` enables the in-worker alarm (only in worker processes: it
    takes over ``SIGALRM``); ``bounds`` checks every output in the worker
    (:func:`~langprop_core.sandbox.codec.check_plain`): one that is not plain
    data or is too big becomes an ``UnsafeOutput`` failure before anything else
    looks at it.
    """

    def __init__(self, max_stdout_chars: int, timeout_s: float | None = None,
                 bounds: Bounds | None = None, max_job_bytes: int = 64 << 20) -> None:
        self.max_stdout_chars = max_stdout_chars
        self.bounds = bounds
        self.max_job_bytes = max_job_bytes
        self.timeout_s = timeout_s
        self._functions: dict[tuple, Any] = {}
        self._call_start: float | None = None
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
        exc_text = "LoadError: " + describe(fn, self.timeout_s)
        return [row(None, exc_text, _trimmed_traceback(fn), "", 0.0)] * n

    def load(self, script_id: str, source: str, function_name: str,
             dependencies: tuple[Dependency, ...] = ()) -> Any:
        """Compile and run the script once (under the time limit); its function, or the
        exception that loading raised."""
        capture = self._capture
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        self._start_alarm()
        try:
            return self._function(source, function_name, script_id, dependencies)
        finally:
            self._stop_alarm()
            sys.stdout, sys.stderr = old_out, old_err
            capture.parts.clear()

    def _start_alarm(self) -> None:
        if self.timeout_s is not None:
            tick = max(0.005, self.timeout_s / 4)
            signal.setitimer(signal.ITIMER_REAL, tick, tick)

    def _stop_alarm(self) -> None:
        self._call_start = None
        if self.timeout_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)

    def run_stream(self, fn: Any, args_in: Iterable[tuple], emit: Callable[[tuple], None]) -> None:
        """Call ``fn`` (from :meth:`load`) on each argument tuple ``args_in`` yields (a fresh
        copy each), and ``emit`` each result ``(output, exception, traceback, stdout,
        duration_s)`` before the next is taken: the worker's template hands a call its input
        only after the previous call's result, so no call sees a later input. With the time
        limit of a worker."""
        capture = self._capture
        parts = capture.parts
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        self._start_alarm()
        perf = time.perf_counter
        bounds = self.bounds
        job_bytes = 0
        limit = self.max_stdout_chars
        failed = self._load_failure(fn, 1, _row)[0] if isinstance(fn, BaseException) else None
        gc_was_enabled = gc.isenabled()
        gc.disable()  # scripts' garbage is collected after the job
        try:
            for args in args_in:
                if failed is not None:
                    emit(failed)
                    continue
                t0 = perf()
                self._call_start = t0
                try:
                    out = fn(*args)
                    self._call_start = None
                    dt = perf() - t0
                    exc_text = tb_text = None
                    if bounds is not None:
                        try:
                            job_bytes += check_plain(out, bounds)
                            if job_bytes > self.max_job_bytes:
                                raise UnsafeOutput(f"the job's outputs are over "
                                                   f"{self.max_job_bytes} bytes")
                        except UnsafeOutput as unsafe:
                            out, exc_text = None, UNSAFE_PREFIX + str(unsafe)
                except BaseException as exc:  # noqa: BLE001 - every failure is scored
                    self._call_start = None
                    dt = perf() - t0
                    out = None
                    exc_text = describe(exc, self.timeout_s)
                    tb_text = _trimmed_traceback(exc)
                del args
                printed = _printed(parts, limit) if parts else ""
                emit((out, exc_text, tb_text, printed, dt))
                del out
        finally:
            if gc_was_enabled:
                gc.enable()
            self._stop_alarm()
            sys.stdout, sys.stderr = old_out, old_err
            parts.clear()

    def run_job_inprocess(self, script_id: str, source: str, function_name: str,
                          inputs: Inputs, dependencies: tuple[Dependency, ...] = ()
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
                        printed = _printed(parts, limit)
                        append(result(out, None, None, printed, t1 - t0))
                    else:
                        append(result(out, None, None, "", t1 - t0))
                except BaseException as exc:  # noqa: BLE001 - every failure is scored
                    t1 = perf()
                    printed = _printed(parts, limit)
                    append(result(None, describe(exc, None), _trimmed_traceback(exc), printed,
                                  t1 - t0))
                t0 = t1
            return results
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            parts.clear()




def _row(*fields: Any) -> tuple:
    return fields


def _printed(parts: list, limit: int) -> str:
    """What a call printed, at most ``limit`` characters; only ``str`` parts count."""
    out, n = [], 0
    for part in parts:
        if type(part) is str:
            out.append(part[:limit - n])
            n += len(out[-1])
            if n >= limit:
                break
    parts.clear()
    return "".join(out)
