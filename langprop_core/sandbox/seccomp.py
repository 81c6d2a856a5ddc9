"""The seccomp allow-list of a worker: what its template and a job's fork may ask of the kernel.

The default action refuses (``EPERM``): a system call that is not named here,
including any the kernel adds later, fails. Two filters stack (the kernel
applies both, the stricter answer wins):

- the *template's* (:func:`template_rules`): the job list below plus what the
  template itself needs to run jobs (fork its zygote and job processes, wait
  for them, stop and kill them, pass pipes over a unix socket pair, add the
  job's filter);
- the *job's* (:func:`job_rules`), loaded in each fork before script code runs:
  what a pure-Python script with numpy needs (memory, its own files and
  pipes, futexes, clocks, threads, signals to itself), with arguments checked
  where a call could reach beyond the process: ``clone`` only makes threads
  (no process, no namespace), signals go to this process only, ``prctl``,
  ``fcntl`` and ``ioctl`` only take the commands listed (no ``F_SETOWN``,
  ``F_SETSIG``, ``FIOSETOWN`` or ``O_ASYNC``: the kernel never signals anyone
  on the script's behalf), resource limits and CPU affinity of itself only.

Not listed, so refused: sockets, ``exec``, ``ptrace`` and cross-process memory,
mounts and namespaces, identity changes, file metadata (``chmod``, ``chown``,
``utime``, extended attributes, ``link``), ``setpriority``, System V IPC and
POSIX message queues, ``io_uring``, ``bpf``, ``perf_event_open``, keyrings,
``userfaultfd``, ``memfd_create``. ``clone3`` answers ``ENOSYS`` so that the C
library falls back to ``clone``, whose flags can be checked.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from typing import Iterable

__all__ = ["available", "load", "template_rules", "job_rules", "Rule", "SeccompError"]

# A rule: (syscall name, action, comparisons); comparisons are ANDed, rules of one call ORed.
Rule = tuple[str, int, tuple[tuple[int, int, int, int], ...]]

_ACT_ALLOW = 0x7FFF0000
_CMP_EQ, _CMP_MASKED_EQ = 4, 7
_FLTATR_CTL_OPTIMIZE = 8

_CLONE_THREAD = 0x00010000
# Namespace flags a thread must not carry.
_CLONE_NEW = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
              | 0x40000000 | 0x00000080)
_O_ASYNC = 0o20000
_AF_UNIX = 1


class SeccompError(RuntimeError):
    """The filter could not be built or loaded; the message says why."""


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


_ALLOW, _EPERM, _ENOSYS = _ACT_ALLOW, _errno(errno.EPERM), _errno(errno.ENOSYS)

# Calls without arguments worth checking: they act on this process, its memory and its own descriptors.
# (Paths are Landlock's to check.)
_PLAIN = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "mlock", "munlock",
    "mbind", "get_mempolicy", "set_mempolicy", "membarrier",
    # own files, pipes and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "close", "close_range", "lseek", "dup", "dup2", "dup3", "pipe", "pipe2",
    "fstat", "stat", "lstat", "newfstatat", "statx", "fstatfs", "statfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "symlink",
    "symlinkat", "ftruncate", "fsync", "fdatasync", "fadvise64", "flock", "umask",
    "sendfile", "copy_file_range", "poll", "ppoll", "select", "pselect6", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2",
    # threads and synchronization
    "futex", "futex_waitv", "set_robust_list", "set_tid_address", "rseq", "sched_yield",
    "arch_prctl", "exit", "exit_group", "restart_syscall",
    # time
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "setitimer", "getitimer", "alarm", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    # signals of this process
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "sigaltstack", "pause",
    # identity and information about itself
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
    "getresgid", "getpgrp", "getpgid", "getsid", "uname", "sysinfo", "getrusage", "times", "getcpu",
    "getrandom", "getrlimit", "setrlimit", "getpriority", "capget",
)

_PR = {"PR_GET_PDEATHSIG": 2, "PR_GET_DUMPABLE": 3, "PR_GET_KEEPCAPS": 7, "PR_SET_NAME": 15,
       "PR_GET_NAME": 16, "PR_GET_SECCOMP": 21, "PR_CAPBSET_READ": 23, "PR_GET_TIMERSLACK": 30,
       "PR_GET_NO_NEW_PRIVS": 39, "PR_SET_VMA": 0x53564D41}
_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 1, 22, 38
# fcntl commands on a descriptor of its own that reach no other process (no F_SETOWN*, F_SETSIG,
# F_SETLEASE, F_NOTIFY); F_SETFL only without O_ASYNC.
_FCNTL = (0, 1, 2, 3, 5, 6, 7, 36, 37, 38, 1030, 1032, 1033, 1034)
_F_SETFL = 4
# ioctl: the terminal queries Python makes (isatty), close-on-exec, bytes readable; nothing that
# sets an owner (FIOSETOWN, SIOCSPGRP), turns on O_ASYNC (FIOASYNC) or reaches a device.
_IOCTL = (0x5401, 0x5413, 0x5450, 0x5451, 0x541B)


def _arg_eq(arg: int, value: int) -> tuple[int, int, int, int]:
    return (arg, _CMP_EQ, value, 0)


def job_rules(pid: int) -> list[Rule]:
    """The job's filter for process ``pid`` (as the process sees its own id)."""
    rules: list[Rule] = [(name, _ALLOW, ()) for name in _PLAIN]
    rules.append(("clone", _ALLOW, ((0, _CMP_MASKED_EQ, _CLONE_THREAD | _CLONE_NEW, _CLONE_THREAD),)))
    rules.append(("clone3", _ENOSYS, ()))
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        rules.append((name, _ALLOW, (_arg_eq(0, pid),)))
    for who in (0, pid):
        for name in ("prlimit64", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
                     "sched_getscheduler"):
            rules.append((name, _ALLOW, (_arg_eq(0, who),)))
    rules += [("prctl", _ALLOW, (_arg_eq(0, op),)) for op in _PR.values()]
    rules += [("fcntl", _ALLOW, (_arg_eq(1, cmd),)) for cmd in _FCNTL]
    rules.append(("fcntl", _ALLOW, (_arg_eq(1, _F_SETFL), (2, _CMP_MASKED_EQ, _O_ASYNC, 0))))
    rules += [("ioctl", _ALLOW, (_arg_eq(1, cmd),)) for cmd in _IOCTL]
    return rules


def template_rules() -> list[Rule]:
    """The template's filter: the job's calls (without their argument checks, which the job's
    own filter adds) and what running jobs takes: fork (no namespace), wait, stop/kill its
    forks, set their parent-death signal and load their filter."""
    rules: list[Rule] = [(name, _ALLOW, ()) for name in _PLAIN]
    rules.append(("clone", _ALLOW, ((0, _CMP_MASKED_EQ, _CLONE_NEW, 0),)))
    rules.append(("clone3", _ENOSYS, ()))
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "wait4", "waitid",
                 "prlimit64", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
                 "sched_getscheduler", "fcntl", "ioctl", "seccomp",
                 # the template and its zygote: a unix socket pair, descriptors passed on it
                 "sendmsg", "recvmsg", "sendto", "recvfrom"):
        rules.append((name, _ALLOW, ()))
    rules.append(("socketpair", _ALLOW, (_arg_eq(0, _AF_UNIX),)))
    for op in list(_PR.values()) + [_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS]:
        rules.append(("prctl", _ALLOW, (_arg_eq(0, op),)))
    return rules


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    """libseccomp can be loaded (the kernel's support is checked when a filter loads)."""
    return _lib() is not None and os.path.exists("/proc/self/status")


def load(rules: Iterable[Rule]) -> None:
    """Load a filter that refuses (EPERM) every call but those ``rules`` allow, on this thread
    and the threads it starts; raises :class:`SeccompError`."""
    lib = _lib()
    if lib is None:
        raise SeccompError("libseccomp (Debian: libseccomp2) not found")
    ctx = lib.seccomp_init(_EPERM)
    if not ctx:
        raise SeccompError("seccomp_init failed")
    try:
        # A binary tree over the calls: the list is long, and the job's every call passes it.
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
        for name, action, cmps in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not on this architecture
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr if cmps else None)
            if rc < 0:
                raise SeccompError(f"seccomp rule for {name} failed: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SeccompError(f"seccomp_load failed: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
