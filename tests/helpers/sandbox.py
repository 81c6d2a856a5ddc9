"""The sandbox's kernel checks, and hostile scripts that the root and the non-root trainer's tests both run.

Where the kernel's protections are missing, sandbox tests skip, or fail under
``LANGPROP_REQUIRE_SANDBOX=1``. Each script defines ``f``; the comment above it
says what ``f`` returns.
"""
from __future__ import annotations

import os

import pytest

from langprop_core.sandbox import probe


def require_sandbox() -> None:
    """Skip where the kernel lacks a protection, or fail when ``LANGPROP_REQUIRE_SANDBOX=1``."""
    found = probe()
    if found.landlock_abi and found.seccomp and not found.missing:
        return
    why = found.describe()
    if os.environ.get("LANGPROP_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"LANGPROP_REQUIRE_SANDBOX=1 and {why}")
    pytest.skip(why)


# f(path): changes the metadata of a file outside the box; returns the changes that failed.
METADATA = """
import os
def f(path):
    failed = []
    for name, call in [("chmod", lambda: os.chmod(path, 0o4777)),
                       ("chown", lambda: os.chown(path, 12345, 12345)),
                       ("utime", lambda: os.utime(path, (0, 0))),
                       ("setxattr", lambda: os.setxattr(path, "user.evil", b"1"))]:
        try:
            call()
        except OSError:
            failed.append(name)
    return failed
"""


# f(x): who the worker is (uid, euid, gid, pid).
WHO = "import os\ndef f(x):\n    return os.getuid(), os.geteuid(), os.getgid(), os.getpid()\n"


# f(pid): changes another process's limits, priority and affinity; returns the calls that failed.
OTHERS = """
import os, resource
def f(pid):
    failed = []
    for name, call in [("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1))),
                       ("prlimit_nofile", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3))),
                       ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
                       ("setpriority_user", lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19)),
                       ("sched_setaffinity", lambda: os.sched_setaffinity(pid, {0}))]:
        try:
            call()
        except OSError:
            failed.append(name)
    return failed
"""


# f(x): makes System V IPC objects and a message queue; returns those it made.
IPC = """
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL(ctypes.util.find_library("rt") or None, use_errno=True)
def f(x):
    made = []
    shm = libc.shmget(0, 64 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if shm >= 0:
        made.append("shm")
    sem = libc.semget(0, 1, 0o1600)
    if sem >= 0:
        made.append("sem")
    msg = libc.msgget(0, 0o1600)
    if msg >= 0:
        made.append("msg")
    rt.mq_open.restype = ctypes.c_int
    mq = rt.mq_open(b"/langprop-evil", 0o100 | 2, 0o600, None)  # O_CREAT | O_RDWR
    if mq >= 0:
        made.append("mqueue")
    return made
"""


# f(n): starts n threads; returns how many started.
THREADS = """
import threading
def f(n):
    threading.stack_size(64 * 1024)  # small stacks: the address-space limit is not what stops them
    stop = threading.Event()
    started = 0
    try:
        for _ in range(n):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    stop.set()
    return started
"""


# f(pid): asks the kernel to signal pid on a pipe's events; returns the calls refused.
SETOWN = """
import fcntl, os, signal
def f(pid):
    refused = []
    r, w = os.pipe()
    for name, call in [("F_SETOWN", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, pid)),
                       ("F_SETSIG", lambda: fcntl.fcntl(r, 10, signal.SIGKILL)),
                       ("O_ASYNC", lambda: fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)),
                       ("FIOSETOWN", lambda: fcntl.ioctl(r, 0x8901, pid.to_bytes(4, "little")))]:
        try:
            call()
        except OSError:
            refused.append(name)
    os.write(w, b"x")
    return refused
"""
