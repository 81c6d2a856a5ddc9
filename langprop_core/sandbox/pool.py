"""The parent's side: worker processes, the batch scheduler, the watchdog, message checks.

A batch of calls is ``sources x inputs``, cut into jobs ``(script, range of
inputs)``. A worker gets each job with that job's inputs only (each range
pickled once per batch) and answers with one message per job.

Nothing of a job's answer is trusted:

- time: every job has an absolute deadline, set here when it is sent:
  ``timeout_s`` per call, once more for loading the script, a grace and an
  allowance for decoding its inputs. Inside the job a periodic ``SIGALRM``
  raises in a call that has run longer than ``timeout_s``; a call stuck where
  Python cannot interrupt it is caught here earlier when a shared progress
  counter stops moving. The script can switch the alarm off and move the
  counter: neither extends the deadline, past which the worker's whole process
  group is killed. A call's charged time is its share of the job's time as the
  template measured it (the reported durations only split it), and a call
  charged more than its limit is a timeout.
- memory: ``RLIMIT_AS``; running out raises ``MemoryError`` in the script or
  ends the job's fork.
- a job whose fork dies (``os._exit``, a crash) fails the call it was on; the
  rest of the job runs again. A worker that dies or sends anything but a
  well-formed message is killed (with its process group) and replaced.

Every message from a worker is decoded by
:func:`~langprop_core.sandbox.codec.decode` and checked field by field (types,
sizes, texts cut and stripped of control characters, reasons from a fixed
list); failures come back as :class:`CallResult` with ``exception`` set, never
as exceptions.
"""
from __future__ import annotations

import collections
import functools
import gc
import json
import logging
import math
import multiprocessing.connection
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from langprop_core.copier import CopyPlanner
from langprop_core.sandbox import isolation
from langprop_core.sandbox.codec import Bounds, UnsafeOutput, check_plain, decode
from langprop_core.sandbox.config import (TIMEOUT_PREFIX, UNSAFE_PREFIX, WORKER_DIED_PREFIX, CallResult,
                                          SandboxConfig, SandboxUnavailable)
from langprop_core.sandbox.execution import Dependency, Executor
from langprop_core.sandbox.inputs import prepare_inputs
from langprop_core.sandbox.worker import ANSWER_HEAD, DIED, DIED_HEAD, DIED_REASONS, DONE, WORKER_CODE, Progress

__all__ = ["ScriptRunner", "Worker"]

log = logging.getLogger("langprop_core.sandbox")

_PICKLE = pickle.HIGHEST_PROTOCOL
# Beyond the per-call timeout, how long the parent waits for a worker that
# shows no progress before it kills it (the in-worker alarm should fire first).
_HARD_GRACE_S = 0.5
# How long a fresh worker may take to start and report what it applied.
_STARTUP_LIMIT_S = 60.0
# Beyond its calls' limits, a job's deadline allows for its fork to start and decode the
# job's inputs: on a loaded machine that takes a while, and must not count against the
# script's time limit (it made closed-loop rollouts differ between runs).
_LOAD_ALLOWANCE_S = 2.0
_DECODE_BYTES_PER_S = 5e6
# A script that kills its worker this many times in one batch fails its remaining calls.
_MAX_DEATHS_PER_SCRIPT = 3
_MAX_JOB_BYTES = 64 << 20
# Each job costs a fork (a few ms): jobs of up to this many calls keep that under 1%.
_MAX_JOB_CALLS = 5000
# A job's deadline is its calls' limits added up: a script that switches its alarm off holds a
# worker that long. Jobs of at most this many seconds of limits keep that short.
_MAX_JOB_S = 30.0
_MAX_TEXT = 1 << 16
# What a worker's texts may not carry into a log, a prompt or a terminal (newline and tab stay).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=8)
def _report_protections(landlock_abi: int, seccomp: bool, missing: tuple[str, ...]) -> None:
    """Say once per process what the workers are boxed in by (and what they are not)."""
    text = isolation.Protections(landlock_abi, seccomp, os.geteuid() == 0, missing).describe()
    (log.warning if missing else log.info)(text)


class Worker:
    """A worker process started with ``python -I -c`` in a process group of its own.

    Not a ``multiprocessing.Process``: spawn and forkserver re-import the
    caller's ``__main__``, which would run a leaderboard evaluator's or a user's
    script again in every worker.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.progress, progress_fd = Progress.create()
        self.progress.value = -1
        # The log beside the scratch, not in it: a script can neither read nor write it.
        self.home = tempfile.mkdtemp(prefix="langprop-sandbox-")
        self.scratch = os.path.join(self.home, "scratch")
        os.mkdir(self.scratch, 0o700)
        parent_sock, child_sock = socket.socketpair()
        settings = {"memory_mb": config.memory_mb, "max_file_mb": config.max_file_mb,
                    "strict": config.strict, "max_result_bytes": config.max_result_bytes,
                    "max_result_depth": config.max_result_depth,
                    "max_stdout_chars": config.max_stdout_chars, "timeout_s": config.timeout_s,
                    "max_job_bytes": _MAX_JOB_BYTES, "max_message_bytes": self.max_message_bytes(config)}
        env = isolation.worker_environment([], self.scratch)
        # stderr goes to the log (bounded by RLIMIT_FSIZE): never to the user's terminal.
        with open(os.path.join(self.home, "worker.log"), "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", WORKER_CODE, _PACKAGE_ROOT, str(child_sock.fileno()),
                 str(progress_fd), str(os.getpid()), self.scratch, json.dumps(settings)],
                pass_fds=(child_sock.fileno(), progress_fd), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log_file, env=env, close_fds=True,
                start_new_session=True)  # its own session and process group (killed whole)
        child_sock.close()
        os.close(progress_fd)
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())
        self.max_bytes = settings["max_message_bytes"]
        self.started_at = time.monotonic()
        self.ready = False
        self.job: tuple[str, int, int] | None = None
        self.deadline = 0.0
        self.seen_progress = -1
        self.seen_at = 0.0

    @staticmethod
    def max_message_bytes(config: SandboxConfig) -> int:
        """The largest message a worker may send: the job's outputs and each row's texts."""
        per_row = config.max_stdout_chars * 4 + 4 * 4096 + 256
        return _MAX_JOB_BYTES + _MAX_JOB_CALLS * per_row + (1 << 16)

    def handshake(self, timeout_s: float = _STARTUP_LIMIT_S) -> tuple[int, bool, tuple[str, ...]]:
        """Wait for the worker's report of what it applied; raises :class:`SandboxUnavailable`
        when it refused (strict) or could not start."""
        msg: Any = None
        if self.conn.poll(timeout_s):
            try:
                msg = decode(self.conn.recv_bytes(1 << 16))
            except (EOFError, OSError, UnsafeOutput):
                msg = None
        if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "refused":
            self.kill()
            raise SandboxUnavailable(str(msg[1]))
        if not (isinstance(msg, tuple) and len(msg) == 4 and msg[0] == "hello"):
            detail = self._log_tail()
            self.kill()
            raise SandboxUnavailable(f"a sandbox worker did not start (exit code {self.exitcode}): "
                                     f"{detail or 'no message'}")
        self.ready = True
        return int(msg[1]), bool(msg[2]), tuple(str(m) for m in msg[3])

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.home, "worker.log"), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 2000))
                return _clean(f.read().decode("utf-8", "replace").strip())
        except OSError:
            return ""

    def is_alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def assign(self, job: tuple[str, int, int], header: bytes, blob: bytes, deadline: float,
               now: float) -> None:
        """Send a job: its header (script, function, dependencies, range) and its own inputs."""
        self.job = job
        self.deadline = deadline
        self.seen_progress = -2
        self.seen_at = now
        self.conn.send_bytes(header)
        self.conn.send_bytes(blob)

    def receive(self) -> tuple[bytes, float, Any]:
        """The template's answer to a job: (``DONE``, job time, decoded rows message) or
        (``DIED``, job time, (reason code, exit code, input index)); raises
        EOFError/OSError/UnsafeOutput."""
        data = self.conn.recv_bytes(self.max_bytes)
        if data[:1] == DIED and len(data) == DIED_HEAD.size:
            _, elapsed, reason, code, at = DIED_HEAD.unpack(data)
            return DIED, elapsed, (reason, code, at)
        if data[:1] != DONE or len(data) < ANSWER_HEAD.size:
            raise UnsafeOutput("a malformed answer from the worker")
        _, elapsed = ANSWER_HEAD.unpack_from(data)
        return DONE, elapsed, decode(memoryview(data)[ANSWER_HEAD.size:])

    def kill(self) -> None:
        """Kill the worker's whole process group (its job's fork included) and remove its scratch."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            log.warning("sandbox worker %d did not exit after SIGKILL", self.process.pid)
        self.conn.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def stop(self) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(("stop",), _PICKLE))
            self.process.wait(timeout=1)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _clean(text: str) -> str:
    """A worker's text cut to the bound, without control characters (terminal escapes, bidi
    overrides): it may reach a log, a prompt or a terminal."""
    return _CONTROL.sub("\ufffd", text[:_MAX_TEXT])


def _checked_rows(msg: Any, n: int, bounds: Bounds, elapsed_s: float, timeout_s: float
                  ) -> list[CallResult] | None:
    """The rows of a ``done`` message as results, or None when the message is malformed.
    Each output is checked again here: a hostile job may have forged the message.

    Durations: the job's time ``elapsed_s`` (measured by the template) is split over the
    calls in proportion to the durations they report, so a script cannot look faster than
    it is; a call charged over its limit (beyond the alarm's slack) is a timeout."""
    if not (type(msg) is tuple and len(msg) == 2 and msg[0] == "done" and type(msg[1]) is list
            and len(msg[1]) == n) or not (0.0 <= elapsed_s < math.inf):
        return None
    rows = msg[1]
    reported = []
    for row in rows:
        if type(row) is not tuple or len(row) != 5:
            return None
        output, exc, tb, printed, dt = row
        if (type(printed) is not str or type(dt) is not float or not 0.0 <= dt < math.inf
                or not (exc is None or type(exc) is str) or not (tb is None or type(tb) is str)):
            return None
        reported.append(dt)
    total = sum(reported)
    charged = ([elapsed_s * dt / total for dt in reported] if total > 0.0
               else [elapsed_s / n] * n)
    late_s = timeout_s + max(0.005, timeout_s / 4) + 0.05  # the alarm ticks every timeout/4
    out = []
    append = out.append
    check = check_plain
    for (output, exc, tb, printed, _), dt in zip(rows, charged):
        if exc is not None:
            exc = _clean(exc)
        if tb is not None:
            tb = _clean(tb)
        if printed:
            printed = _clean(printed)
        if exc is None and dt > late_s:
            output, exc, tb = None, (f"{TIMEOUT_PREFIX}the call ran longer than {timeout_s:g} s "
                                     f"(measured outside the script)"), None
        try:
            check(output, bounds)
        except UnsafeOutput as unsafe:
            output, exc, tb = None, UNSAFE_PREFIX + _clean(str(unsafe)), None
        append(CallResult(output, exc, tb, printed, dt))
    return out


class ScriptRunner:
    """Runs a population of scripts over a batch of inputs.

    Use as a context manager (or call :meth:`close`) so worker processes end.
    ``protections`` holds what the workers applied (after the first batch).
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._workers: list[Worker] = []
        self._executor: Executor | None = None
        self._planner: CopyPlanner | None = None
        self._bounds = Bounds(self.config.max_result_bytes, self.config.max_result_depth)
        self.workers_replaced = 0
        self.protections: isolation.Protections | None = None
        self.startup_s: list[float] = []
        if self.config.mode == "inprocess":
            log.warning("sandbox mode 'inprocess': scripts run in this process with no limit and no "
                        "containment; use it for trusted code only (os._exit ends this process)")

    # -- public API

    def run_batch(self, sources: dict[str, str], function_name: str, inputs: Sequence[tuple],
                  dependencies: Sequence[Dependency] = ()) -> dict[str, list[CallResult]]:
        """Call every script on every input; results in input order, per script id.

        ``dependencies`` are loaded into every script's namespace (see
        :class:`Dependency`); one that cannot be loaded fails every call.
        Raises :class:`SandboxUnavailable` only for a machine that cannot give
        the protections ``strict`` asks for.
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

    def start(self) -> isolation.Protections:
        """Start the workers now (else the first batch does); what they apply."""
        self._ensure_workers()
        assert self.protections is not None
        return self.protections

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
            self._executor = Executor(self.config.max_stdout_chars, timeout_s=None)
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
        fresh = [Worker(self.config) for _ in range(self.config.workers - len(self._workers))]
        try:
            for worker in fresh:
                abi, seccomp, missing = worker.handshake()
                self.startup_s.append(time.monotonic() - worker.started_at)
                if self.protections is None:
                    self.protections = isolation.Protections(abi, seccomp, os.geteuid() == 0, missing)
                    _report_protections(abi, seccomp, missing)
        except BaseException:
            for worker in fresh:
                worker.kill()
            raise
        self._workers.extend(fresh)

    def _chunk_size(self, n_scripts: int, n_inputs: int) -> int:
        per_worker = math.ceil(n_scripts * n_inputs / (self.config.workers * 4))
        by_time = int(_MAX_JOB_S / self.config.timeout_s)
        return max(1, min(n_inputs, per_worker, _MAX_JOB_CALLS, by_time))

    def _run_process(self, sources: dict[str, str], function_name: str, inputs: list[tuple],
                     dependencies: tuple[Dependency, ...]) -> dict[str, list[CallResult]]:
        n = len(inputs)
        chunk = self._chunk_size(len(sources), n)
        blobs: dict[tuple[int, int], bytes] = {}
        try:
            for s in range(0, n, chunk):
                blobs[s, min(s + chunk, n)] = pickle.dumps(inputs[s:s + chunk], _PICKLE)
            pickle.dumps(dependencies, _PICKLE)
        except Exception as exc:  # noqa: BLE001 - name the problem for the caller
            raise TypeError(f"the inputs cannot be sent to sandbox workers ({type(exc).__name__}: "
                            f"{exc}); make them picklable or use SandboxConfig(mode='inprocess')") from exc
        jobs: collections.deque[tuple[str, int, int]] = collections.deque(
            (sid, s, min(s + chunk, n)) for sid in sources for s in range(0, n, chunk))
        results: dict[str, list[CallResult | None]] = {sid: [None] * n for sid in sources}
        deaths: collections.Counter[str] = collections.Counter()
        timeout_s = self.config.timeout_s
        hard_limit_s = timeout_s + max(_HARD_GRACE_S, timeout_s)
        self._ensure_workers()

        while True:
            now = time.monotonic()
            for worker in self._workers:
                while worker.job is None and jobs:
                    job = jobs.popleft()
                    sid, start, stop = job
                    if deaths[sid] >= _MAX_DEATHS_PER_SCRIPT:
                        self._fail(results, job, f"{WORKER_DIED_PREFIX}the script killed its worker "
                                                 f"{deaths[sid]} times in this batch; call not run")
                        continue
                    blob = blobs.get((start, stop))
                    if blob is None:  # the rest of a job whose call ended its fork
                        blob = blobs[start, stop] = pickle.dumps(inputs[start:stop], _PICKLE)
                    header = pickle.dumps(("run", sid, sources[sid], function_name, dependencies,
                                           start, stop), _PICKLE)
                    # Absolute, from now: each call's limit, once more for loading the script,
                    # a grace, and time to decode the job's inputs. Nothing the job says extends it.
                    deadline = (now + (stop - start + 1) * timeout_s + hard_limit_s + _LOAD_ALLOWANCE_S
                                + len(blob) / _DECODE_BYTES_PER_S)
                    try:
                        worker.assign(job, header, blob, deadline, now)
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
                        kind, elapsed_s, msg = worker.receive()
                    except (EOFError, OSError):
                        self._worker_died(worker, results, jobs, deaths, "died")
                        replace = True
                        continue
                    except UnsafeOutput as unsafe:
                        self._worker_died(worker, results, jobs, deaths, "unsafe", str(unsafe))
                        replace = True
                        continue
                    if now > worker.deadline:  # an answer after the deadline is not taken
                        self._worker_died(worker, results, jobs, deaths, "deadline")
                        replace = True
                        continue
                    if kind == DIED:
                        self._job_died(worker, msg, results, jobs, deaths)
                        continue
                    rows = _checked_rows(msg, stop - start, self._bounds, elapsed_s, timeout_s)
                    if rows is None:
                        self._worker_died(worker, results, jobs, deaths, "unsafe",
                                          "a malformed message from the worker")
                        replace = True
                        continue
                    results[sid][start:stop] = rows
                    worker.job = None
                elif not worker.is_alive():
                    self._worker_died(worker, results, jobs, deaths, "died")
                    replace = True
                elif now > worker.deadline:
                    self._worker_died(worker, results, jobs, deaths, "deadline")
                    replace = True
                else:
                    # The job's counter may only bring the kill forward: a call stuck where the
                    # alarm cannot interrupt it (C code, a regular expression) stops it moving.
                    seen = worker.progress.value
                    if seen != worker.seen_progress:
                        worker.seen_progress, worker.seen_at = seen, now
                    elif seen >= 0 and now - worker.seen_at > hard_limit_s:
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

    @staticmethod
    def _requeue(jobs: collections.deque, sid: str, start: int, at: int, stop: int) -> None:
        if at > start:
            jobs.appendleft((sid, start, at))
        if at + 1 < stop:
            jobs.appendleft((sid, at + 1, stop))

    def _job_died(self, worker: Worker, msg: tuple[int, int, int], results: dict,
                  jobs: collections.deque, deaths: collections.Counter) -> None:
        """The job's fork ended without its results; the template lives on."""
        sid, start, stop = worker.job
        reason, code, at = msg
        at = at if start <= at < stop else start
        if reason == 1:
            message = f"{UNSAFE_PREFIX}{DIED_REASONS[1]}"
        else:
            message = (f"{WORKER_DIED_PREFIX}the worker process ended during the call (exit code {code}: "
                       f"os._exit, a crash, or the {self.config.memory_mb} MB memory limit)")
        results[sid][at] = CallResult(None, message, None, "", 0.0)
        deaths[sid] += 1
        log.info("script %s: %s on input %d", sid, message, at)
        worker.job = None
        self._requeue(jobs, sid, start, at, stop)

    def _worker_died(self, worker: Worker, results: dict, jobs: collections.deque,
                     deaths: collections.Counter, why: str, detail: str = "") -> None:
        sid, start, stop = worker.job
        at = worker.progress.value
        at = start if at < start or at >= stop else at
        worker.kill()
        if why == "deadline":
            # Only a job that switched its alarm off (or moved its counter while stuck) gets
            # here: the rest of its calls in this batch are not run.
            message = (f"{TIMEOUT_PREFIX}the job ran past its deadline ({stop - start} calls of "
                       f"{self.config.timeout_s:g} s; worker killed)")
            for i in range(start, stop):
                results[sid][i] = CallResult(None, message, None, "", 0.0)
            deaths[sid] = max(deaths[sid], _MAX_DEATHS_PER_SCRIPT)
            log.info("script %s: %s", sid, message)
            worker.job = None
            return
        if why == "timeout":
            message = (f"{TIMEOUT_PREFIX}the call ran longer than {self.config.timeout_s:g} s "
                       f"(worker killed)")
        elif why == "unsafe":
            message = f"{UNSAFE_PREFIX}{detail} (worker killed)"
        else:
            code = worker.exitcode
            message = (f"{WORKER_DIED_PREFIX}the worker process ended during the call (exit code {code}: "
                       f"os._exit, a crash, or the {self.config.memory_mb} MB memory limit)")
        results[sid][at] = CallResult(None, message, None, "", 0.0)
        deaths[sid] += 1
        log.info("script %s: %s on input %d; worker replaced", sid, message, at)
        worker.job = None
        self._requeue(jobs, sid, start, at, stop)
