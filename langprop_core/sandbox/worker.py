"""The worker process: a locked-down template that runs each job in a fork of itself.

Started by :class:`langprop_core.sandbox.pool.Worker` as ``python -I -c``
with an allow-listed environment, its stdout on ``/dev/null``, its stderr on a
log outside the scratch directory, and a process group of its own. It enters
its own IPC and PID namespaces (the outer process then only waits for the
namespace's first process, the template), imports what scripts use (numpy),
locks itself down (:func:`~langprop_core.sandbox.isolation.lock_down_template`),
says what it applied (``hello``), then serves the parent's messages:

- ``run``: one job, as a header (script, function, dependencies, range of
  inputs) and the job's own inputs as pickle bytes, which the template does
  not decode. The job runs in that script's fork: a fresh fork of the
  template whenever the script differs from the last one (the next job of
  the same script, e.g. the agent's next tick, reuses it). The template holds
  nothing of other jobs when it forks, so a fork finds in its memory its own
  script and inputs only (not the batch, not other scripts' sources). The fork
  holds no channel to the parent, only a pipe each way to the template; it adds
  the per-job rules, runs the calls and writes ``done`` with the bounded,
  checked results as plain data. The template stops a kept fork (``SIGSTOP``)
  between its jobs, so threads a script left behind do not run, and empties the
  scratch directory between scripts;
- ``stop``.

Every answer to a ``run`` starts with a header the template writes itself
(:data:`DONE` or :data:`DIED`, the job's time measured by the template, and for
a fork that died a reason code, its exit code and the input it was on): the
fork's own bytes follow a ``DONE`` header and are never read as the template's.
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
import struct
import time
from typing import Any

from langprop_core.copier import CopyPlanner
from langprop_core.sandbox import identity, isolation
from langprop_core.sandbox.codec import Bounds, encode
from langprop_core.sandbox.execution import Dependency, Executor
from langprop_core.sandbox.inputs import prepare_inputs

__all__ = ["Progress", "entry", "WORKER_CODE", "DONE", "DIED", "DIED_REASONS", "ANSWER_HEAD",
           "DIED_HEAD"]

_PICKLE = pickle.HIGHEST_PROTOCOL

WORKER_CODE = ("import sys; sys.path[:0] = sys.argv[1].split('\\0'); "
               "from langprop_core.sandbox.worker import entry; entry(sys.argv[2:])")

# The template's answer headers: kind byte and the job's time in seconds; a death adds the
# reason (an index into DIED_REASONS), the exit code and the input index it was on.
DONE, DIED = b"D", b"X"
ANSWER_HEAD = struct.Struct("<cd")
DIED_HEAD = struct.Struct("<cdbqq")
DIED_REASONS = ("the call ended its process", "the job's results are over the message bound")
_JOB_HEAD = struct.Struct("<qq")
_READY = b"R"


class Progress:
    """One int64 in memory shared with the worker: the input index being run (-1: idle).

    Written by the job, so only a hint: the parent may kill a job that shows no
    progress earlier than its deadline, never later. The file is sealed against
    shrinking and growing, so no job can make a reader's mapping fault."""

    def __init__(self, fd: int) -> None:
        self._mm = mmap.mmap(fd, 8)
        # The ctypes int itself: the worker's hot loop writes ``raw.value`` directly.
        self.raw = ctypes.c_int64.from_buffer(self._mm)

    @classmethod
    def create(cls) -> tuple["Progress", int]:
        """A new sealed counter and its file descriptor (to pass to the worker)."""
        import fcntl

        fd = os.memfd_create("langprop-progress", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, 8)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        return cls(fd), fd

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
    os.chdir(scratch)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    isolation.die_with_parent(int(parent_pid))
    uid = identity.worker_uid(os.getpid())
    namespaces_error = identity.enter_namespaces()
    outer_parent: int | None = int(parent_pid)
    if namespaces_error is None:
        identity.split()  # returns in the namespace's first process only
        isolation.die_with_parent()  # with the outer process, which dies with the parent
        outer_parent = None
    conn = multiprocessing.connection.Connection(int(sock_fd))
    try:
        import numpy  # noqa: F401 - imported before the lock-down: scripts use it, and it reads /sys
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        applied = isolation.lock_down_template(
            scratch, settings["memory_mb"], settings["max_file_mb"], outer_parent, settings["strict"],
            uid, namespaces_error)
    except isolation.IsolationError as exc:
        conn.send_bytes(encode(("refused", str(exc)[:2000])))
        os._exit(71)
    progress = Progress(int(progress_fd))
    os.close(int(progress_fd))  # the mapping stays; no descriptor of it is left to a job
    conn.send_bytes(encode(("hello", applied.landlock_abi, applied.seccomp, list(applied.missing))))
    _serve(conn, progress, settings, applied.seccomp)


class _JobFork:
    """The fork serving one script: a pipe each way to the template, no channel to the parent."""

    def __init__(self, pid: int, key: tuple, to_child: int, from_child: int) -> None:
        self.pid, self.key = pid, key
        self.to_child, self.from_child = to_child, from_child

    def pause(self) -> None:
        """Stop every thread of the fork until its next job."""
        _signal(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        _signal(self.pid, signal.SIGCONT)

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
        _signal(self.pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return -9
        return os.waitstatus_to_exitcode(status)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _serve(conn: Any, progress: Progress, settings: dict[str, Any], seccomp: bool) -> None:
    bounds = Bounds(settings["max_result_bytes"], settings["max_result_depth"])
    limit = settings["max_message_bytes"]
    fork: _JobFork | None = None
    try:
        while True:
            try:
                # The parent's messages: its own data, trusted.
                raw = conn.recv_bytes()
            except (EOFError, OSError):
                return
            msg = pickle.loads(raw)
            del raw
            if msg[0] == "stop":
                return
            _, script_id, source, function_name, dependencies, start, stop = msg
            del msg
            try:
                blob = conn.recv_bytes()  # the job's inputs, for the fork to decode
            except (EOFError, OSError):
                return
            key = (source, function_name, dependencies)
            del source, dependencies
            if fork is not None and fork.key != key:
                fork.end()
                fork = None
                _clear_scratch()  # the next script must not see what this one left
            fresh = fork is None
            if fresh:
                fork = _start_fork(key, script_id, conn, progress, settings, bounds, seccomp)
            else:
                fork.resume()
            del key
            # The job's time runs from here; in a fresh fork, from its word that it has decoded
            # the inputs: no code of the script has run in it yet, so that word is still ours.
            t0 = time.monotonic()
            try:
                _write_frame(fork.to_child, _JOB_HEAD.pack(start, stop) + blob)
            except OSError:
                pass  # it died: reading its answer says so
            del blob
            if fresh and _read_exact(fork.from_child, 1) == _READY:
                t0 = time.monotonic()
            if not _forward(conn, progress, fork, limit, t0):
                fork = None  # ended by _forward
                _clear_scratch()
    finally:
        if fork is not None:
            fork.end()


def _start_fork(key: tuple, script_id: str, conn: Any, progress: Progress, settings: dict[str, Any],
                bounds: Bounds, seccomp: bool) -> _JobFork:
    """Fork the process that runs this script's jobs; it waits for its first job on its pipe."""
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
            os.dup2(1, 2)  # stderr to /dev/null: the worker's log is the template's alone
            isolation.lock_down_job(template, seccomp)
            _job_loop(down_r, up_w, progress, settings, bounds, key, script_id)
        except BaseException:  # noqa: BLE001 - the fork must never return into the template's loop
            code = 72
        finally:
            os._exit(code)
    os.close(down_r)
    os.close(up_w)
    return _JobFork(pid, key, down_w, up_r)


def _job_loop(down: int, up: int, progress: Progress, settings: dict[str, Any], bounds: Bounds,
              key: tuple, script_id: str) -> None:
    """In the fork: run each job the template sends, answer, wait for the next (EOF: exit)."""
    source, function_name, dependencies = key
    executor = Executor(settings["max_stdout_chars"], settings["timeout_s"], bounds, settings["max_job_bytes"])
    planner = CopyPlanner()
    ready: bytes | None = _READY
    while True:
        frame = _read_frame(down, 1 << 40)
        if frame is None:
            return
        start, stop = _JOB_HEAD.unpack_from(frame)
        inputs = prepare_inputs(pickle.loads(memoryview(frame)[_JOB_HEAD.size:]), planner)
        del frame
        if ready is not None:
            os.write(up, ready)  # the script's code runs from here on
            ready = None
        rows = executor.run_job(script_id, source, function_name, inputs, start, stop, progress,
                                dependencies)
        del inputs
        _write_frame(up, encode(("done", rows)))
        del rows


def _forward(conn: Any, progress: Progress, fork: _JobFork, limit: int, t0: float) -> bool:
    """Pass the fork's answer to the parent behind the template's header; False (and a ``DIED``
    header sent) when the fork gave none."""
    reason = 0
    try:
        frame = _read_frame(fork.from_child, limit)
    except _TooBig:
        frame, reason = None, 1
    elapsed = time.monotonic() - t0
    at = progress.value
    progress.value = -1
    if frame is not None:
        fork.pause()
        conn.send_bytes(ANSWER_HEAD.pack(DONE, elapsed) + frame)
        return True
    code = fork.end(grace_s=0.0 if reason else 0.5)
    conn.send_bytes(DIED_HEAD.pack(DIED, elapsed, reason, code, at))
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
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
