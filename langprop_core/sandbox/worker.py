"""The worker process: a locked-down template that runs each job in a fork of itself.

Started by :class:`langprop_core.sandbox.pool.Worker` as ``python -I -c``
with an allow-listed environment, its stdout and stderr on ``/dev/null`` and
a process group of its own. It imports what scripts use (numpy when
installed), locks itself down (:func:`~langprop_core.sandbox.isolation.lock_down_template`),
says what it applied (``hello``), then serves the parent's messages:

- ``load``: the batch's inputs (the parent's own data);
- ``run``: one job (a script over a range of inputs), run by that script's
  fork: a fresh fork of the template whenever the script differs from the
  last one (the next job of the same script, e.g. the agent's next tick,
  reuses it). The fork holds no channel to the parent, only a pipe each way
  to the template; it adds the per-job rules, runs the calls and writes
  ``done`` with the bounded, checked results as plain data. The template
  forwards that, or ``died`` (with the input it was on) when the fork ended;
  the scratch directory is emptied between scripts;
- ``stop``.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import time
from typing import Any

from langprop_core.copier import CopyPlanner
from langprop_core.sandbox import isolation
from langprop_core.sandbox.codec import Bounds, encode
from langprop_core.sandbox.execution import Dependency, Executor
from langprop_core.sandbox.inputs import Inputs, prepare_inputs

__all__ = ["Progress", "entry", "WORKER_CODE"]

_PICKLE = pickle.HIGHEST_PROTOCOL

WORKER_CODE = ("import sys; sys.path[:0] = sys.argv[1].split('\\0'); "
               "from langprop_core.sandbox.worker import entry; entry(sys.argv[2:])")


class Progress:
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


def entry(argv: list[str]) -> None:
    """``argv``: channel fd, progress fd, parent pid, scratch dir, settings as JSON."""
    sock_fd, progress_fd, parent_pid, scratch, settings = argv
    settings = json.loads(settings)
    conn = multiprocessing.connection.Connection(int(sock_fd))
    os.chdir(scratch)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        import numpy  # noqa: F401 - imported before the lock-down: scripts use it, and it reads /sys
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        applied = isolation.lock_down_template(
            scratch, settings["memory_mb"], settings["max_file_mb"], [package_dir], int(parent_pid),
            settings["strict"])
    except isolation.IsolationError as exc:
        conn.send_bytes(encode(("refused", str(exc)[:2000])))
        os._exit(71)
    conn.send_bytes(encode(("hello", applied.landlock_abi, applied.seccomp, list(applied.missing))))
    _serve(conn, Progress(int(progress_fd)), settings, applied.seccomp)


class _JobFork:
    """The fork serving one script: a pipe each way to the template, no channel to the parent."""

    def __init__(self, pid: int, key: tuple, to_child: int, from_child: int, generation: int) -> None:
        self.pid, self.key, self.generation = pid, key, generation
        self.to_child, self.from_child = to_child, from_child

    def end(self, grace_s: float = 0.0) -> int:
        """Stop the fork (after ``grace_s`` for it to exit by itself); its exit code."""
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return -9
            if pid:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return -9
        return os.waitstatus_to_exitcode(status)


def _serve(conn: Any, progress: Progress, settings: dict[str, Any], seccomp: bool) -> None:
    planner = CopyPlanner()
    sources: dict[str, str] = {}
    function_name = ""
    inputs = Inputs([], [])
    dependencies: tuple[Dependency, ...] = ()
    bounds = Bounds(settings["max_result_bytes"], settings["max_result_depth"])
    load_blob = b""
    generation = 0
    fork: _JobFork | None = None
    try:
        while True:
            try:
                # The parent's messages: its own data (sources, inputs), trusted.
                raw = conn.recv_bytes()
            except (EOFError, OSError):
                return
            msg = pickle.loads(raw)
            kind = msg[0]
            if kind == "load":
                _, function_name, sources, args, dependencies = msg
                inputs = prepare_inputs(args, planner)
                load_blob, generation = raw, generation + 1
            elif kind == "run":
                _, script_id, start, stop = msg
                key = (sources[script_id], function_name, dependencies)
                if fork is not None and fork.key != key:
                    fork.end()
                    fork = None
                    _clear_scratch()  # the next script must not see what this one left
                if fork is None:
                    fork = _start_fork(key, generation, conn, progress, settings, bounds, seccomp,
                                       script_id, inputs, start, stop)
                else:
                    blob = load_blob if fork.generation != generation else None
                    fork.generation = generation
                    try:
                        _write_frame(fork.to_child, pickle.dumps((script_id, start, stop, blob), _PICKLE))
                    except OSError:
                        pass  # it died: reading its answer says so
                if not _forward(conn, progress, fork, settings["max_message_bytes"]):
                    fork = None  # ended by _forward
                    _clear_scratch()
            elif kind == "stop":
                return
    finally:
        if fork is not None:
            fork.end()


def _start_fork(key: tuple, generation: int, conn: Any, progress: Progress, settings: dict[str, Any],
                bounds: Bounds, seccomp: bool, script_id: str, inputs: Inputs, start: int,
                stop: int) -> _JobFork:
    """Fork the process that runs this script's jobs (the first one now, more on request)."""
    template = os.getpid()
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(down_w)
            os.close(up_r)
            conn.close()  # the job's fork cannot talk to the parent, only to its template
            isolation.lock_down_job(template, seccomp)
            _job_loop(down_r, up_w, progress, settings, bounds, key, script_id, inputs, start, stop)
        except BaseException:  # noqa: BLE001 - the fork must never return into the template's loop
            code = 72
        finally:
            os._exit(code)
    os.close(down_r)
    os.close(up_w)
    return _JobFork(pid, key, down_w, up_r, generation)


def _job_loop(down: int, up: int, progress: Progress, settings: dict[str, Any], bounds: Bounds,
              key: tuple, script_id: str, inputs: Inputs, start: int, stop: int) -> None:
    """In the fork: run a job, answer, wait for the next one of the same script (EOF: exit)."""
    source, function_name, dependencies = key
    executor = Executor(settings["max_stdout_chars"], settings["timeout_s"], bounds, settings["max_job_bytes"])
    planner = CopyPlanner()
    while True:
        rows = executor.run_job(script_id, source, function_name, inputs, start, stop, progress,
                                dependencies)
        _write_frame(up, encode(("done", rows)))
        frame = _read_frame(down, 1 << 40)
        if frame is None:
            return
        script_id, start, stop, blob = pickle.loads(frame)  # from the template: trusted
        if blob is not None:
            inputs = prepare_inputs(pickle.loads(blob)[3], planner)


def _forward(conn: Any, progress: Progress, fork: _JobFork, limit: int) -> bool:
    """Pass the fork's answer to the parent; False (and ``died`` sent) when it gave none."""
    try:
        frame = _read_frame(fork.from_child, limit)
        why = "the call ended its process"
    except _TooBig:
        frame, why = None, f"the job's results are over {limit} bytes"
    at = progress.value
    progress.value = -1
    if frame is not None:
        conn.send_bytes(frame)
        return True
    code = fork.end(grace_s=0.0 if "over" in why else 0.5)
    conn.send_bytes(encode(("died", why, code, at)))
    return False


class _TooBig(Exception):
    pass


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "little") + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, limit: int) -> bytes | None:
    """One length-prefixed frame; None at EOF; :class:`_TooBig` past ``limit``."""
    try:
        head = _read_exact(fd, 8)
        if head is None:
            return None
        size = int.from_bytes(head, "little")
        if size > limit:
            raise _TooBig
        return _read_exact(fd, size)
    except OSError:
        return None


def _clear_scratch() -> None:
    """Remove what the job left in the scratch directory (the cwd): the next script must not see it."""
    for entry in os.scandir("."):
        if entry.name == "worker.log":
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
