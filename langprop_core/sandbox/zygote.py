"""The zygote: the process that forks a worker's job processes from a state that has seen no job.

A fork inherits its parent's memory, freed bytes included. The template
receives every job's script and inputs, so a fork of the template could find
freed bytes of earlier jobs (other scripts' sources and inputs) by reading its
own raw memory (``ctypes``, numpy's array interface). The zygote is forked from
the template right after the lock-down, before any job, and only ever
receives one-byte commands: each job process is a fork of it, and gets its
script and inputs from the template through its own pipes afterwards.

The template asks (:meth:`Zygote.spawn`) and gets the new process's pid and
its pipe ends over a unix socket (``SCM_RIGHTS``); the zygote is the job
processes' parent, so it also reaps them and reports their exit code
(:meth:`Zygote.reap`).
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import time
from typing import Callable

__all__ = ["Zygote", "start_zygote"]

_SPAWN, _REAP = b"F", b"W"
_REAP_ASK = struct.Struct("<cqd")
_CODE = struct.Struct("<q")


class Zygote:
    """The template's handle on its zygote."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock, self.pid = sock, pid

    def spawn(self) -> tuple[int, int, int]:
        """A new job process: its pid, the write end of its input pipe, the read end of its
        output pipe."""
        self.sock.sendall(_SPAWN)
        msg, fds, _, _ = socket.recv_fds(self.sock, 8, 2)
        if len(msg) != 8 or len(fds) != 2:
            raise OSError("the zygote did not start a job process")
        return int.from_bytes(msg, "little"), fds[0], fds[1]

    def reap(self, pid: int, grace_s: float) -> int:
        """Wait up to ``grace_s`` for job process ``pid`` to exit, then kill it; its exit code."""
        self.sock.sendall(_REAP_ASK.pack(_REAP, pid, grace_s))
        data = self.sock.recv(_CODE.size)
        return _CODE.unpack(data)[0] if len(data) == _CODE.size else -9


def start_zygote(close_fds: list[int], job_main: Callable[[int, int], None]) -> Zygote:
    """Fork the zygote (call once the template is locked down, before any job). Each job
    process runs ``job_main(input_fd, output_fd)`` and exits; ``close_fds`` are closed in the
    zygote (the template's channel to the parent)."""
    template_end, zygote_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            template_end.close()
            for fd in close_fds:
                os.close(fd)
            _serve(zygote_end, job_main)
        except BaseException:  # noqa: BLE001 - never return into the template's code
            code = 73
        finally:
            os._exit(code)
    zygote_end.close()
    return Zygote(template_end, pid)


def _serve(sock: socket.socket, job_main: Callable[[int, int], None]) -> None:
    from langprop_core.sandbox.isolation import die_with_parent

    die_with_parent(os.getppid())
    while True:
        ask = sock.recv(_REAP_ASK.size)
        if not ask:
            return
        if ask[:1] == _SPAWN:
            down_r, down_w = os.pipe()
            up_r, up_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    sock.close()
                    os.close(down_w)
                    os.close(up_r)
                    job_main(down_r, up_w)
                except BaseException:  # noqa: BLE001 - a job process never returns here
                    code = 72
                finally:
                    os._exit(code)
            os.close(down_r)
            os.close(up_w)
            socket.send_fds(sock, [pid.to_bytes(8, "little")], [down_w, up_r])
            os.close(down_w)
            os.close(up_r)
        elif ask[:1] == _REAP and len(ask) == _REAP_ASK.size:
            _, pid, grace_s = _REAP_ASK.unpack(ask)
            sock.sendall(_CODE.pack(_reap(pid, grace_s)))


def _reap(pid: int, grace_s: float) -> int:
    deadline = time.monotonic() + grace_s
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return -9
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -9
    return os.waitstatus_to_exitcode(status)
