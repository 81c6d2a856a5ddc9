"""The worker process: a locked-down template that runs each job in a fork of itself.

Started by :class:`langprop_core.sandbox.pool.Worker` as ``python -I -c``
with an allow-listed environment, its stdout on ``/dev/null``, its stderr on a
log outside the scratch directory, and a process group of its own. It enters
its own IPC and PID namespaces (the outer process then only waits for the
namespace's first process, the template), imports what scripts use (numpy),
locks itself down (:func:`~langprop_core.sandbox.isolation.lock_down_template`),
says what it applied (``hello``), then serves the parent's messages:

- ``run``: one job, as a header (script, function, dependencies, range of
  inputs) and the job's inputs, one pickle each, which the template does not
  decode. The job runs in that script's job process ("fork"): a new one
  whenever the script differs from the last one (the next job of the same
  script, e.g. the agent's next tick, reuses it), forked by the worker's
  zygote (:mod:`.zygote`), which has held no job, and told its script through
  its pipe: its memory, raw bytes included, holds its own script and the
  inputs it was called on, not the batch nor other scripts' sources. It holds
  no channel to the parent, only a pipe each way to the template, and adds the
  per-job rules. The template hands it one input at a
  time and the next only after the previous call's result: no call sees a
  later input (on a series task, its own label). The template times each call
  itself and kills the fork of a call past its limit (``timeout_s`` plus a
  grace, whatever the script did to its alarm). It stops a kept fork
  (``SIGSTOP``) between its jobs, so threads a script left behind do not run,
  and empties the scratch directory between scripts;
- ``stop``.

The template's answer to a ``run`` (:func:`encode_answer`) is written by the
template itself: complete or not, how many calls, the exit code and reason
(an index into :data:`DIED_REASONS`) of a fork that ended, the duration of
each call as the template measured it, and the calls' results as the fork's
bytes, each decoded by the parent as plain data.
"""
from __future__ import annotations

import functools
import json
import multiprocessing.connection
import os
import pickle
import select
import shutil
import signal
import struct
import time
from typing import Any, Iterator

from langprop_core.sandbox import identity, isolation
from langprop_core.sandbox.codec import Bounds, encode
from langprop_core.sandbox.execution import Executor
from langprop_core.sandbox.inputs import decode_input
from langprop_core.sandbox.zygote import Zygote, start_zygote

__all__ = ["entry", "WORKER_CODE", "CALL_GRACE_S", "DIED_REASONS", "ENDED", "TOO_BIG", "LATE", "decode_answer",
           "encode_answer"]

_PICKLE = pickle.HIGHEST_PROTOCOL

WORKER_CODE = ("import sys; sys.path[:0] = sys.argv[1].split('\\0'); "
               "from langprop_core.sandbox.worker import entry; entry(sys.argv[2:])")

DIED_REASONS = ("the call ended its process", "the job's results are over the message bound",
                "the call ran past its limit (its process was killed)")
# Indices into DIED_REASONS.
ENDED, TOO_BIG, LATE = range(3)
# Answer head: complete (1/0), calls answered, reason, exit code; then per call its duration
# (double) and its row's size (int64), then the rows.
_ANSWER_HEAD = struct.Struct("<BqBq")
_JOB_HEAD = struct.Struct("<qq")
_READY = b"R"
# Beyond its limit, how long a call may take before its fork is killed (the alarm fires first).
CALL_GRACE_S = 0.5


def encode_answer(complete: bool, durations: list[float], rows: list[bytes], reason: int, code: int) -> bytes:
    """The template's answer: a fixed head, the calls' durations and the rows' sizes, then the
    rows' bytes one after the other."""
    n = len(durations)
    return b"".join([_ANSWER_HEAD.pack(int(complete), n, reason, code),
                     struct.pack(f"<{n}d{n}q", *durations, *map(len, rows)), *rows])


def decode_answer(data: bytes) -> tuple[bool, list[float], list[int], memoryview, int, int]:
    """Split a template's answer: complete, durations, the rows' sizes, the rows' bytes, reason,
    exit code; raises ValueError when it is malformed."""
    complete, n, reason, code = _ANSWER_HEAD.unpack_from(data)
    if not 0 <= n <= len(data) // 16 or reason >= len(DIED_REASONS):
        raise ValueError("a malformed answer head")
    at = _ANSWER_HEAD.size
    fields = struct.unpack_from(f"<{n}d{n}q", data, at)
    sizes = list(fields[n:])
    body = memoryview(data)[at + 16 * n:]
    if any(size < 0 for size in sizes) or sum(sizes) != len(body):
        raise ValueError("a malformed answer body")
    return bool(complete), list(fields[:n]), sizes, body, reason, code


def entry(argv: list[str]) -> None:
    """``argv``: channel fd, parent pid, scratch dir, settings as JSON."""
    sock_fd, parent_pid, scratch, settings = argv
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
    bounds = Bounds(settings["max_result_bytes"], settings["max_result_depth"])
    # Before any job: the zygote's memory never holds one, so neither do the job processes.
    zygote = start_zygote([conn.fileno()], functools.partial(_job_main, settings=settings, bounds=bounds,
                                                             seccomp=applied.seccomp))
    conn.send_bytes(encode(("hello", applied.landlock_abi, applied.seccomp, list(applied.missing))))
    _serve(conn, settings, zygote)


class _JobFork:
    """The job process serving one script: a pipe each way to the template, no channel to the
    parent; a child of the zygote, which reaps it."""

    def __init__(self, pid: int, key: tuple, to_child: int, from_child: int, zygote: Zygote) -> None:
        self.pid, self.key, self.zygote = pid, key, zygote
        self.to_child, self.from_child = to_child, from_child
        self.readable = select.poll()
        self.readable.register(from_child, select.POLLIN)

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
        return self.zygote.reap(self.pid, grace_s)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _serve(conn: Any, settings: dict[str, Any], zygote: Zygote) -> None:
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
            key = (source, function_name, dependencies)
            del source, dependencies
            if fork is not None and fork.key != key:
                fork.end()
                fork = None
                _clear_scratch()  # the next script must not see what this one left
            fresh = fork is None
            if fresh:
                fork = _start_fork(key, script_id, zygote)
            else:
                fork.resume()
            del key
            try:
                frames = pickle.loads(conn.recv_bytes())  # a list of bytes: each input, encoded
            except (EOFError, OSError):
                return
            answer, alive = _run_job(fork, start, frames, settings, fresh)
            del frames
            if alive:
                fork.pause()  # before the answer leaves: nothing of it runs until its next job
            conn.send_bytes(answer)
            del answer
            if not alive:
                fork = None
                _clear_scratch()
    finally:
        if fork is not None:
            fork.end()


def _start_fork(key: tuple, script_id: str, zygote: Zygote) -> _JobFork:
    """A job process for this script (a fork of the zygote), told its script."""
    pid, to_child, from_child = zygote.spawn()
    os.set_blocking(to_child, False)  # every wait on the fork has a deadline
    os.set_blocking(from_child, False)
    fork = _JobFork(pid, key, to_child, from_child, zygote)
    script = pickle.dumps((script_id,) + key, _PICKLE)
    try:
        _send(to_child, len(script).to_bytes(8, "little") + script, time.monotonic() + CALL_GRACE_S + 5.0)
    except (_Late, _Ended):
        pass  # it is gone or stuck: the job's first read says so
    return fork


def _job_main(down: int, up: int, settings: dict[str, Any], bounds: Bounds, seccomp: bool) -> None:
    """A job process (a fork of the zygote): lock down, learn its script, serve its jobs."""
    os.dup2(1, 2)  # stderr to /dev/null: the worker's log is the template's alone
    isolation.lock_down_job(os.getppid(), seccomp)
    head = _read_exact(down, 8)
    script = None if head is None else _read_exact(down, int.from_bytes(head, "little"))
    if script is None:
        return
    script_id, source, function_name, dependencies = pickle.loads(script)  # the template's word
    _job_loop(down, up, settings, bounds, (source, function_name, dependencies), script_id)


def _run_job(fork: _JobFork, start: int, frames: list[bytes], settings: dict[str, Any], fresh: bool
             ) -> tuple[bytes, bool]:
    """Run a job in its fork, one input (a length-prefixed pickle) at a time; the answer for
    the parent, and whether the fork lives on."""
    limit_s = settings["timeout_s"] + max(CALL_GRACE_S, settings["timeout_s"])
    room = settings["max_message_bytes"]
    durations: list[float] = []
    rows: list[bytes] = []
    reason = None
    try:
        _send(fork.to_child, _JOB_HEAD.pack(start, len(frames)), time.monotonic() + limit_s)
        # A fresh fork loads the script first (its code too: the same limit), then says so.
        if fresh and _receive(fork, time.monotonic() + limit_s, 1) != _READY:
            raise _Ended
        # The hot loop of every sandboxed call: kept to a write, a poll and a read.
        clock, write, read, poll = time.monotonic, os.write, os.read, fork.readable.poll
        to_child, from_child = fork.to_child, fork.from_child
        limit_ms = limit_s * 1000
        for frame in frames:  # each already prefixed with its length by the parent
            t0 = clock()
            try:
                sent = write(to_child, frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                raise _Ended from None
            if sent < len(frame):
                _send(to_child, frame[sent:], t0 + limit_s)
            if not poll(limit_ms):
                raise _Late
            try:
                buf = read(from_child, 1 << 16)
            except OSError:
                raise _Ended from None
            if len(buf) >= 8 and len(buf) == 8 + int.from_bytes(buf[:8], "little") and len(buf) <= room:
                row = buf[8:]
            else:
                row = _receive_frame(fork, t0 + limit_s, room, buf)
            durations.append(clock() - t0)
            room -= len(row) + 64
            rows.append(row)
    except _Ended:
        reason = ENDED
    except _TooBig:
        reason = TOO_BIG
    except _Late:
        reason = LATE
    if reason is None:
        return encode_answer(True, durations, rows, 0, 0), True
    code = fork.end(grace_s=0.5 if reason == ENDED else 0.0)
    return encode_answer(False, durations, rows, reason, code), False


def _job_loop(down: int, up: int, settings: dict[str, Any], bounds: Bounds, key: tuple,
              script_id: str) -> None:
    """In the fork: for each job, load the script, say so, then run each input the template
    sends and write its result (EOF: exit)."""
    source, function_name, dependencies = key
    executor = Executor(settings["max_stdout_chars"], settings["timeout_s"], bounds, settings["max_job_bytes"])

    def emit(row: tuple) -> None:
        data = encode(row)
        _write_all(up, len(data).to_bytes(8, "little") + data)  # one write, unless it is large

    fn = None
    while True:
        head = _read_exact(down, _JOB_HEAD.size)
        if head is None:
            return
        _, n = _JOB_HEAD.unpack(head)
        if fn is None:
            fn = executor.load(script_id, source, function_name, dependencies)
            _write_all(up, _READY)
        executor.run_stream(fn, _inputs(down, n), emit)


def _inputs(down: int, n: int) -> Iterator[tuple]:
    """The job's inputs as the template sends them (one at a time, each after the previous
    call's result), each decoded afresh: the call's own copy."""
    loads, read = decode_input, os.read
    for _ in range(n):
        buf = read(down, 1 << 16)
        if len(buf) < 8:
            rest = _read_exact(down, 8 - len(buf)) if buf else None
            if rest is None:
                return
            buf += rest
        need = 8 + int.from_bytes(buf[:8], "little")
        if len(buf) < need:
            rest = _read_exact(down, need - len(buf))
            if rest is None:
                return
            buf += rest
        yield loads(memoryview(buf)[8:])  # the parent's own data: the call's own copy


class _Ended(Exception):
    pass


class _Late(Exception):
    pass


def _wait(fd: int, events: int, deadline: float) -> None:
    poller = select.poll()
    poller.register(fd, events)
    left = deadline - time.monotonic()
    if left <= 0 or not poller.poll(left * 1000):
        raise _Late


def _send(fd: int, data: bytes, deadline: float) -> None:
    """Write all of ``data`` to the fork by ``deadline``."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _wait(fd, select.POLLOUT, deadline)
            continue
        except OSError:
            raise _Ended from None
        view = view[n:]


def _receive(fork: _JobFork, deadline: float, most: int) -> bytes:
    """What the fork has written (at most ``most`` bytes), waiting for it until ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0 or not fork.readable.poll(left * 1000):
        raise _Late
    try:
        chunk = os.read(fork.from_child, most)
    except OSError:
        raise _Ended from None
    if not chunk:
        raise _Ended
    return chunk


def _receive_frame(fork: _JobFork, deadline: float, room: int, buf: bytes) -> bytes:
    """One length-prefixed frame from the fork (a call's result) that starts with ``buf``, by
    ``deadline``, at most ``room`` bytes; anything beyond the frame breaks the protocol: the
    fork ends."""
    if not buf:
        raise _Ended
    while len(buf) < 8:
        buf += _receive(fork, deadline, 8 - len(buf))
    size = int.from_bytes(buf[:8], "little")
    if size > room:
        raise _TooBig
    need = 8 + size
    if len(buf) > need:
        raise _Ended
    if len(buf) < need:
        parts = [buf]
        have = len(buf)
        while have < need:
            chunk = _receive(fork, deadline, min(need - have, 1 << 20))
            parts.append(chunk)
            have += len(chunk)
        buf = b"".join(parts)
    return buf[8:]


class _TooBig(Exception):
    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        try:
            chunk = os.read(fd, min(left, 1 << 20))
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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
