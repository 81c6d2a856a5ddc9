"""A worker's own identity: IPC and PID namespaces, a uid that owns nothing, a bound on tasks.

Called by the worker on itself, before Landlock and seccomp (see
:func:`langprop_core.sandbox.isolation.lock_down_template`):

1. :func:`enter_namespaces`: a new IPC namespace (System V IPC and POSIX
   message queues of its own, gone with it) and a new PID namespace (it sees
   no other process); as root directly, otherwise inside a new user namespace
   where the kernel lets unprivileged users make one;
2. :func:`split` forks: the child is the namespace's first process (the
   template), the parent only waits for it, so the namespace lives exactly as
   long as the worker;
3. :func:`take_identity` (root only): the uid ``UID_BASE + pid`` of the
   worker (unique while the worker lives, in a range no system allocates), so
   the worker owns no file, process or IPC object of the host; it keeps a
   single capability, ``CAP_DAC_READ_SEARCH``, because a Python install may lie
   beneath a directory only root may enter (``/root/.pyenv``): what it may read
   is Landlock's to say, and the seccomp allow-list refuses the calls that
   capability would add (``open_by_handle_at``, ``linkat``);
4. :func:`bound_tasks`: ``RLIMIT_NPROC`` of that uid (or of the user
   namespace's), counted by the kernel over every process and thread of it;
   set only where the uid is the worker's own (as root's it would count the
   whole machine's).
"""
from __future__ import annotations

import ctypes
import errno
import os
import resource

__all__ = ["UID_BASE", "MAX_TASKS", "enter_namespaces", "split", "take_identity", "bound_tasks",
           "worker_uid", "IdentityError"]

_libc = ctypes.CDLL(None, use_errno=True)

# uids from here to UID_BASE + 2**22 (the kernel's largest pid): past systemd's container
# range (up to 0x6FFFFFFF) and below its foreign range (0x7FFE0000).
UID_BASE = 0x70000000
# Processes and threads of one worker: the template, a job's fork, and the threads a script
# may start (numpy starts none: workers run with one BLAS thread).
MAX_TASKS = 32

_CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWPID = 0x08000000, 0x10000000, 0x20000000
_PR_SET_KEEPCAPS, _PR_CAPBSET_DROP = 8, 24
_CAP_DAC_READ_SEARCH = 2
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine)


class IdentityError(RuntimeError):
    """A step could not be taken; the message names it."""


def worker_uid(pid: int) -> int:
    """The uid of the worker whose outer process is ``pid``."""
    return UID_BASE + pid


def enter_namespaces() -> str | None:
    """Enter new IPC and PID namespaces (the PID one takes effect for children: see
    :func:`split`); None on success, else why not."""
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWIPC | _CLONE_NEWPID
    if uid != 0:
        flags |= _CLONE_NEWUSER
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        return os.strerror(ctypes.get_errno())
    if uid != 0:
        # Map the user to itself: files keep their owner; nothing else is mapped.
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            return f"user namespace map: {exc.strerror}"
    return None


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def split() -> bool:
    """Fork; in the parent wait for the child and exit with its status (never returns);
    in the child (the PID namespace's first process) return True."""
    pid = os.fork()
    if pid == 0:
        return True
    # Nothing of the worker's stays open here: the channel belongs to the child.
    os.closerange(3, 1 << 16)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:  # pragma: no cover
            continue
    os._exit(max(0, os.waitstatus_to_exitcode(status)) & 0xFF)


def bound_tasks(limit: int = MAX_TASKS) -> None:
    """At most ``limit`` processes and threads of this uid: set once the uid is the worker's
    own (:func:`take_identity`, or a user namespace's), where the count is the worker's alone."""
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def take_identity(uid: int, scratch: str) -> None:
    """As root: become ``uid`` (and gid ``uid``), no supplementary groups, with
    ``CAP_DAC_READ_SEARCH`` only; ``scratch`` becomes its own (to write in)."""
    os.chown(scratch, uid, uid)
    for cap in range(64):
        if cap == _CAP_DAC_READ_SEARCH:
            continue
        if _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability the kernel knows
                break
            raise IdentityError(f"PR_CAPBSET_DROP {cap}: {os.strerror(ctypes.get_errno())}")
    if _libc.prctl(_PR_SET_KEEPCAPS, ctypes.c_ulong(1), 0, 0, 0) != 0:
        raise IdentityError(f"PR_SET_KEEPCAPS: {os.strerror(ctypes.get_errno())}")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    set_capabilities(1 << _CAP_DAC_READ_SEARCH)
    _libc.prctl(_PR_SET_KEEPCAPS, ctypes.c_ulong(0), 0, 0, 0)


def set_capabilities(mask: int) -> None:
    """Effective and permitted sets to ``mask`` (capabilities 0-31), inheritable empty."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    data[0].effective = data[0].permitted = mask
    if _SYS_CAPSET is None or _libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
        raise IdentityError(f"capset: {os.strerror(ctypes.get_errno())}")
