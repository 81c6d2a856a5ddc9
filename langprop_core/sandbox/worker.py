"""The worker process: a locked-down template that runs each job in a fork of itself.

Started by :class:`langprop_core.sandbox.pool.Worker` as ``python -I -c``
with an allow-listed environment, its stdout and stderr on ``/dev/null`` and
a process group of its own. It imports what scripts use (numpy when
installed), locks itself down (:func:`~langprop_core.sandbox.isolation.lock_down_template`),
says what it applied (``hello``), then serves the parent's messages:

- ``load``: the batch's inputs (the parent's own data);
- ``run``: one job (a script over a range of inputs) in a fresh fork that
  holds no channel to the parent, only a pipe to the template; it adds the
  per-job rules, runs the calls, writes ``done`` with the bounded, checked
  results as plain data, and exits. The template forwards that, or ``died``
  (with the input it was on) when the fork ended any other way, then empties
  the scratch directory;
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
from typing import Any

from langprop_core.copier import CopyPlanner
from langprop_core.sandbox import isolation
from langprop_core.sandbox.codec import Bounds, encode
from langprop_core.sandbox.execution import Dependency, Executor
from langprop_core.sandbox.inputs import Inputs, prepare_inputs

__all__ = ["Progress", "entry", "WORKER_CODE"]

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


def _serve(conn: Any, progress: Progress, settings: dict[str, Any], seccomp: bool) -> None:
    planner = CopyPlanner()
    sources: dict[str, str] = {}
    function_name = ""
    inputs = Inputs([], [])
    dependencies: tuple[Dependency, ...] = ()
    bounds = Bounds(settings["max_result_bytes"], settings["max_result_depth"])
    while True:
        try:
            # The parent's messages: its own data (sources, inputs), trusted.
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "load":
            _, function_name, sources, args, dependencies = msg
            inputs = prepare_inputs(args, planner)
        elif kind == "run":
            _, script_id, start, stop = msg
            _run_in_fork(conn, progress, settings, bounds, seccomp, script_id, sources[script_id],
                         function_name, inputs, start, stop, dependencies)
        elif kind == "stop":
            return


def _run_in_fork(conn: Any, progress: Progress, settings: dict[str, Any], bounds: Bounds, seccomp: bool,
                 script_id: str, source: str, function_name: str, inputs: Inputs, start: int, stop: int,
                 dependencies: tuple[Dependency, ...]) -> None:
    """Run one job in a fork that holds no channel to the parent, only a pipe to
    this template; forward what it wrote when it exited cleanly, else say how it ended."""
    template = os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            conn.close()  # the job's fork cannot talk to the parent, only to its template
            isolation.lock_down_job(template, seccomp)
            executor = Executor(settings["max_stdout_chars"], settings["timeout_s"], bounds,
                                settings["max_job_bytes"])
            rows = executor.run_job(script_id, source, function_name, inputs, start, stop, progress,
                                    dependencies)
            with os.fdopen(write_fd, "wb") as out:
                out.write(encode(("done", rows)))
        except BaseException:  # noqa: BLE001 - the fork must never return into the template's loop
            code = 72
        finally:
            os._exit(code)
    os.close(write_fd)
    limit = settings["max_message_bytes"]
    chunks, size = [], 0
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                os.kill(pid, signal.SIGKILL)
                chunks = None
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    _clear_scratch()
    at = progress.value
    progress.value = -1
    if chunks is None:
        conn.send_bytes(encode(("died", f"the job's results are over {limit} bytes", -9, at)))
    elif status == 0 and chunks:
        conn.send_bytes(b"".join(chunks))
    else:
        code = os.waitstatus_to_exitcode(status)
        conn.send_bytes(encode(("died", "the call ended its process", code, at)))


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
