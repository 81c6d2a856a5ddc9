"""The parent's side: worker processes, the batch scheduler, the watchdog, message checks.

A batch of calls is ``sources x inputs``, cut into jobs ``(script, range of
inputs)``. A worker gets each job with that job's inputs only (each input
pickled once per batch) and answers with one message per job; it gets its next
job before its last answer is checked here.

Nothing of a job's answer is trusted:

- time: the worker's template (trusted code; no script runs in it) hands the
  job's fork one input at a time, times each call itself and kills the fork of
  a call past ``timeout_s`` plus a grace, whatever the script did to its
  in-fork alarm (which makes an ordinary timeout of a call Python can
  interrupt). The durations charged are the template's. Here every job also
  has an absolute deadline, set when it is sent (each call's limit and grace,
  once more for loading the script, and an allowance): past it the worker's
  whole process group is killed. Nothing the job writes moves either.
- memory: ``RLIMIT_AS``; running out raises ``MemoryError`` in the script or
  ends the job's fork.
- a job whose fork dies (``os._exit``, a crash, its template's kill) fails the
  call it was on; the calls before it keep their results, the rest of the job
  runs again. Rows a fork forged or broke fail that job's calls. A worker
  whose template dies, misses the job's deadline or answers out of form is
  killed (with its process group) and replaced.

Every row from a worker is decoded by
:func:`~langprop_core.sandbox.codec.decode_each` and checked field by field (types,
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
from langprop_core.sandbox.codec import Bounds, UnsafeOutput, check_plain, decode, decode_each
from langprop_core.sandbox.config import (TIMEOUT_PREFIX, UNSAFE_PREFIX, WORKER_DIED_PREFIX, CallResult,
                                          SandboxConfig, SandboxUnavailable)
from langprop_core.sandbox.execution import Dependency, Executor
from langprop_core.sandbox.inputs import encode_input, prepare_inputs
from langprop_core.sandbox.worker import CALL_GRACE_S, DIED_REASONS, LATE, TOO_BIG, WORKER_CODE, decode_answer

__all__ = ["ScriptRunner", "Worker"]

log = logging.getLogger("langprop_core.sandbox")

_PICKLE = pickle.HIGHEST_PROTOCOL
# How long a fresh worker may take to start and report what it applied.
_STARTUP_LIMIT_S = 60.0
# Beyond its calls' deadlines, a job's own deadline allows for the template to start the fork
# and pass the inputs: on a loaded machine that takes a while (a deadline too tight made
# closed-loop rollouts differ between runs). It is a backstop: the template keeps each call's.
_JOB_ALLOWANCE_S = 10.0
# A script that kills its worker this many times in one batch fails its remaining calls.
_MAX_DEATHS_PER_SCRIPT = 3
_MAX_JOB_BYTES = 64 << 20
# Each job costs a fork (a few ms): jobs of up to this many calls keep that under 1%.
_MAX_JOB_CALLS = 5000
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
                 str(os.getpid()), self.scratch, json.dumps(settings)],
                pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log_file, env=env, close_fds=True,
                start_new_session=True)  # its own session and process group (killed whole)
        child_sock.close()
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())
        self.max_bytes = settings["max_message_bytes"]
        self.started_at = time.monotonic()
        self.ready = False
        self.job: tuple[str, int, int] | None = None
        self.deadline = 0.0

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
        self.conn.send_bytes(header)
        self.conn.send_bytes(blob)

    def receive(self) -> tuple[bool, list[float], list[int], memoryview, int, int]:
        """The template's answer to a job (see :func:`~langprop_core.sandbox.worker.decode_answer`);
        raises EOFError/OSError/UnsafeOutput."""
        data = self.conn.recv_bytes(self.max_bytes)
        try:
            return decode_answer(data)
        except Exception as exc:  # noqa: BLE001 - bytes from a worker
            raise UnsafeOutput(f"a malformed answer from the worker ({type(exc).__name__})") from None

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


def _checked_rows(body: memoryview, sizes: list[int], durations: list[float], bounds: Bounds
                  ) -> list[CallResult] | None:
    """The job's rows as results, or None when one is malformed. The rows are the fork's
    bytes: decoded as plain data, each field checked, texts cut and cleaned, the output checked
    again (a hostile job may have forged the row). The duration is the template's."""
    try:
        rows = decode_each(body, sizes)
    except UnsafeOutput:
        return None
    out = []
    append = out.append
    check = check_plain
    for row, dt in zip(rows, durations):
        if type(row) is not tuple or len(row) != 5:
            return None
        output, exc, tb, printed, _ = row  # the script's own word on its time is not used
        if (type(printed) is not str or not (exc is None or type(exc) is str)
                or not (tb is None or type(tb) is str)):
            return None
        if exc is not None:
            exc = _clean(exc)
        if tb is not None:
            tb = _clean(tb)
        if printed:
            printed = _clean(printed)
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
        return max(1, min(n_inputs, per_worker, _MAX_JOB_CALLS))

    def _run_process(self, sources: dict[str, str], function_name: str, inputs: list[tuple],
                     dependencies: tuple[Dependency, ...]) -> dict[str, list[CallResult]]:
        n = len(inputs)
        try:
            # Each input encoded once: the template hands a fork one input at a time, as is.
            pickled = [encode_input(args) for args in inputs]
            pickle.dumps(dependencies, _PICKLE)
        except Exception as exc:  # noqa: BLE001 - name the problem for the caller
            raise TypeError(f"the inputs cannot be sent to sandbox workers ({type(exc).__name__}: "
                            f"{exc}); make them picklable or use SandboxConfig(mode='inprocess')") from exc
        chunk = self._chunk_size(len(sources), n)
        blobs: dict[tuple[int, int], bytes] = {}
        jobs: collections.deque[tuple[str, int, int]] = collections.deque(
            (sid, s, min(s + chunk, n)) for sid in sources for s in range(0, n, chunk))
        results: dict[str, list[CallResult | None]] = {sid: [None] * n for sid in sources}
        deaths: collections.Counter[str] = collections.Counter()
        timeout_s = self.config.timeout_s
        call_limit_s = timeout_s + max(CALL_GRACE_S, timeout_s)
        self._ensure_workers()

        def feed(worker: Worker) -> bool:
            """Give an idle worker its next job; False when it turned out dead (job kept)."""
            now = time.monotonic()
            while worker.job is None and jobs:
                job = jobs.popleft()
                sid, start, stop = job
                if deaths[sid] >= _MAX_DEATHS_PER_SCRIPT:
                    self._fail(results, job, f"{WORKER_DIED_PREFIX}the script killed its worker "
                                             f"{deaths[sid]} times in this batch; call not run")
                    continue
                blob = blobs.get((start, stop))
                if blob is None:
                    blob = blobs[start, stop] = pickle.dumps(pickled[start:stop], _PICKLE)
                header = pickle.dumps(("run", sid, sources[sid], function_name, dependencies,
                                       start, stop), _PICKLE)
                # Absolute, from now; a backstop to the template's per-call deadlines.
                deadline = now + (stop - start + 1) * call_limit_s + _JOB_ALLOWANCE_S
                try:
                    worker.assign(job, header, blob, deadline, now)
                except OSError:  # died while idle: replace it, keep the job
                    jobs.appendleft(job)
                    worker.job = None
                    worker.kill()
                    return False
            return True

        while True:
            if not all([feed(worker) for worker in self._workers]):
                self._ensure_workers()
                continue
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
                        complete, durations, sizes, body, reason, code = worker.receive()
                    except (EOFError, OSError):
                        self._worker_died(worker, results, jobs, deaths, "died")
                        replace = True
                        continue
                    except UnsafeOutput as unsafe:
                        self._worker_died(worker, results, jobs, deaths, "unsafe", str(unsafe))
                        replace = True
                        continue
                    done = len(sizes)
                    if done > stop - start or (complete and done != stop - start):
                        self._worker_died(worker, results, jobs, deaths, "unsafe",
                                          "a malformed answer from the worker")
                        replace = True
                        continue
                    job, worker.job = worker.job, None
                    if complete and not feed(worker):  # its next job first: it works meanwhile
                        replace = True
                    checked = _checked_rows(body, sizes, durations, self._bounds)
                    if checked is None:  # the fork's bytes: the script's failure, not the worker's
                        self._fail(results, (sid, start, start + done),
                                   f"{UNSAFE_PREFIX}the job's results are malformed")
                        deaths[sid] += 1
                    else:
                        results[sid][start:start + done] = checked
                    if not complete:
                        self._job_died(job, start + done, reason, code, results, jobs, deaths)
                elif not worker.is_alive():
                    self._worker_died(worker, results, jobs, deaths, "died")
                    replace = True
                elif now > worker.deadline:
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

    def _job_died(self, job: tuple[str, int, int], at: int, reason: int, code: int, results: dict,
                  jobs: collections.deque, deaths: collections.Counter) -> None:
        """The job's fork ended (or was killed by its template) on input ``at``; the calls
        before it have their results, the rest of the job runs again; the template lives on."""
        sid, start, stop = job
        if reason == LATE:
            message = (f"{TIMEOUT_PREFIX}the call ran longer than {self.config.timeout_s:g} s "
                       f"(worker killed)")
        elif reason == TOO_BIG:
            message = f"{UNSAFE_PREFIX}{DIED_REASONS[TOO_BIG]}"
        else:
            message = (f"{WORKER_DIED_PREFIX}the worker process ended during the call (exit code {code}: "
                       f"os._exit, a crash, or the {self.config.memory_mb} MB memory limit)")
        results[sid][at] = CallResult(None, message, None, "", 0.0)
        deaths[sid] += 1
        log.info("script %s: %s on input %d", sid, message, at)
        self._requeue(jobs, sid, at, at, stop)

    def _worker_died(self, worker: Worker, results: dict, jobs: collections.deque,
                     deaths: collections.Counter, why: str, detail: str = "") -> None:
        """The worker itself failed on a job (its template died, sent something malformed, or
        missed the job's deadline): the job's calls fail, and the worker is replaced."""
        sid, start, stop = worker.job
        worker.kill()
        if why == "timeout":
            message = f"{TIMEOUT_PREFIX}the job ran past its deadline (worker killed)"
        elif why == "unsafe":
            message = f"{UNSAFE_PREFIX}{_clean(detail)} (worker killed)"
        else:
            code = worker.exitcode
            message = (f"{WORKER_DIED_PREFIX}the worker process ended during the job (exit code {code})")
        for i in range(start, stop):
            if results[sid][i] is None:
                results[sid][i] = CallResult(None, message, None, "", 0.0)
        deaths[sid] += 1
        log.info("script %s: %s on inputs %d-%d; worker replaced", sid, message, start, stop - 1)
        worker.job = None
