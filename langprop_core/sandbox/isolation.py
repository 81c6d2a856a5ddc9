"""The kernel's means that box a worker in: Landlock, seccomp, capabilities, rlimits.

Every function here acts on the calling process and is called by the worker
on itself, in this order (see :func:`lock_down_template` and
:func:`lock_down_job`):

1. environment: the worker was started with :func:`worker_environment` only;
2. ``PR_SET_PDEATHSIG`` (SIGKILL when the parent goes), re-checked against the
   parent's pid so a parent that died before the call is noticed;
3. rlimits: address space, file size, open files, no core files. Not
   ``RLIMIT_NPROC``: it counts every process and thread of the user (as root,
   all of the machine's), so it cannot bound one worker; seccomp denies
   process creation instead;
4. capabilities: a worker started as root keeps uid 0 (the Python install may
   live in a directory only root can traverse) but drops every capability,
   the bounding set included, so it is an ordinary user of root's files: what
   it may read or write is then Landlock's to say;
5. ``PR_SET_NO_NEW_PRIVS`` and Landlock: reads only beneath the Python
   install and the packages' directories, writes only in its scratch
   directory, no ``/proc`` (so no other process's environment), no TCP bind or
   connect (ABI >= 4), no signals or abstract sockets outside itself (ABI >= 6);
6. seccomp (libseccomp through ``ctypes``): no new sockets, no ``exec``, no
   ``ptrace`` or cross-process memory access, no namespaces or mounts, no
   ``setsid``; per job also no process ``fork``/``clone`` (threads stay
   allowed: numpy may start them), no signal to another process, no change of
   the parent-death signal.

:func:`probe` says which of these the machine gives, for the start-up report
and ``strict`` mode. Small ``ctypes`` code instead of a binding: Landlock has
only pre-release bindings, and libseccomp's C API is stable and ships with
Debian (``libseccomp2``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["Protections", "probe", "worker_environment", "die_with_parent", "die_with", "landlock_abi",
           "lock_down_template", "lock_down_job", "IsolationError"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

# x86_64 and aarch64 share the Landlock syscall numbers (they came after the tables were unified).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine)
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights by the ABI that introduced them.
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1

# Read-only device files Python may open.
_DEVICES = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero")
_SYSTEM_READ = ("/usr/lib", "/usr/lib64", "/usr/share/zoneinfo", "/lib", "/lib64",
                "/etc/ld.so.cache", "/etc/localtime")

# What the environment of a worker keeps (besides LC_*): nothing that could be a secret.
_ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")


class IsolationError(RuntimeError):
    """A protection could not be applied; the message names it."""


@dataclass(frozen=True)
class Protections:
    """What the machine gives (``probe``) or what a worker applied (its report)."""

    landlock_abi: int = 0
    seccomp: bool = False
    root: bool = False
    missing: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One plain line: what is enforced and what is not."""
        have = [f"Landlock ABI {self.landlock_abi}" if self.landlock_abi else None,
                "seccomp" if self.seccomp else None]
        text = "sandbox protections: " + ", ".join(h for h in have if h) if any(have) else \
            "sandbox protections: none of the kernel's"
        if self.missing:
            text += "; MISSING: " + "; ".join(self.missing)
        return text


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none, or disabled at boot)."""
    if not sys.platform.startswith("linux"):
        return 0
    abi = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(0, int(abi))


@functools.lru_cache(maxsize=1)
def _seccomp_lib() -> ctypes.CDLL | None:
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
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def probe() -> Protections:
    """Which protections this machine gives a worker; ``missing`` lists the others plainly."""
    abi = landlock_abi()
    seccomp = _seccomp_lib() is not None and os.path.exists("/proc/self/status")
    root = os.geteuid() == 0
    missing = []
    if not abi:
        missing.append("Landlock (kernel without it): workers may write files and read /proc of "
                       "other processes")
    elif abi < 4:
        missing.append(f"Landlock TCP rules (ABI {abi} < 4): TCP is stopped by seccomp only")
    if not seccomp:
        missing.append("seccomp (libseccomp2 not found): workers may open sockets, start processes "
                       "and signal others")
    if root and _SYS_CAPSET is None:
        missing.append(f"capability drop (unknown architecture {os.uname().machine})")
    return Protections(landlock_abi=abi, seccomp=seccomp, root=root, missing=tuple(missing))


def worker_environment(package_roots: Iterable[str], scratch: str) -> dict[str, str]:
    """The whole environment a worker starts with: an allow-list, so no key,
    token or password of the parent's environment reaches a script."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["PYTHONPATH"] = os.pathsep.join(package_roots)
    env["HOME"] = env["TMPDIR"] = scratch
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    # One BLAS/OpenMP thread per worker: the workers are the parallelism, and
    # per-thread arenas would eat the address-space limit.
    for var in _THREAD_VARS:
        env[var] = "1"
    return env


def die_with_parent(parent_pid: int | None = None) -> None:
    """SIGKILL this process when its parent ends (Linux; nothing elsewhere).

    The kernel ties the signal to the parent's *thread* that started this
    process: start workers from a long-lived thread (the trainer and the agent
    start them from the main thread).

    ``parent_pid``: the expected parent; if it is already gone (it died before
    the call) this process ends now.
    """
    if not sys.platform.startswith("linux"):
        return
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise IsolationError(f"PR_SET_PDEATHSIG failed: {os.strerror(ctypes.get_errno())}")
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(70)


def die_with(pid: int) -> None:
    """SIGKILL this process when process ``pid`` (not necessarily its parent) ends.

    For a process whose parent outlives the one that matters: a forkserver's
    child, whose forkserver stays up as long as any of its children does. A
    daemon thread waits on a pidfd of ``pid`` (Linux >= 5.3); the process's
    own children with :func:`die_with_parent` follow it.
    """
    import select
    import threading

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name=f"die-with-{pid}", daemon=True).start()


def _set_rlimits(memory_mb: int, max_file_mb: int) -> None:
    import resource

    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = int(max_file_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = min(256, hard) if hard != resource.RLIM_INFINITY else 256
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))


def _drop_capabilities() -> None:
    """Empty the bounding, effective, permitted and inheritable sets (root keeps uid 0)."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability the kernel knows
                break
            raise IsolationError(f"PR_CAPBSET_DROP {cap} failed: {os.strerror(ctypes.get_errno())}")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if _SYS_CAPSET is None or _libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
        raise IsolationError(f"capset failed: {os.strerror(ctypes.get_errno())}")


def _no_new_privs() -> None:
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise IsolationError(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _fs_rights(abi: int) -> int:
    rights = _FS_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_restrict(read_paths: Iterable[str], write_paths: Iterable[str], abi: int) -> None:
    """Restrict this process (and its future children) to reading ``read_paths``,
    reading and writing ``write_paths``; at ABI >= 4 no TCP at all, at ABI >= 6
    no signals or abstract unix sockets beyond its own domain."""
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    fd = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                       ctypes.c_uint32(0))
    if fd < 0:
        raise IsolationError(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        rules = [(p, read) for p in read_paths] + [(p, handled) for p in write_paths]
        for path, rights in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a path this machine lacks
            try:
                if not os.path.isdir(path):
                    rights &= _FS_FILE_ONLY
                rule = _PathBeneath(rights & handled, pfd)
                if _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(fd),
                                 ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                                 ctypes.c_uint32(0)) != 0:
                    raise IsolationError(f"landlock_add_rule {path} failed: "
                                         f"{os.strerror(ctypes.get_errno())}")
            finally:
                os.close(pfd)
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise IsolationError(f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


# -- seccomp

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_NE, _SCMP_CMP_EQ, _SCMP_CMP_MASKED_EQ = 1, 4, 7
_CLONE_THREAD = 0x00010000


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


# Denied to the template and every job: nothing a computation needs.
_DENY_ALWAYS = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
    "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kcmp",
    "setsid", "setpgid", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
    "name_to_handle_at", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    "capset", "personality", "mknod", "mknodat", "ioperm", "iopl",
)


def _seccomp_load(rules: list[tuple[str, int, tuple[tuple[int, int, int, int], ...]]]) -> None:
    lib = _seccomp_lib()
    if lib is None:
        raise IsolationError("libseccomp (Debian: libseccomp2) not found")
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise IsolationError("seccomp_init failed")
    try:
        for name, action, cmps in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not on this architecture
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr if cmps else None)
            if rc < 0:
                raise IsolationError(f"seccomp rule for {name} failed: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise IsolationError(f"seccomp_load failed: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)


def _python_read_paths(package_dirs: Iterable[str]) -> list[str]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    paths.update(package_dirs)
    paths.update(_SYSTEM_READ)
    paths.update(_DEVICES)
    return sorted(paths)


def lock_down_template(scratch: str, memory_mb: int, max_file_mb: int, package_dirs: Iterable[str],
                       parent_pid: int, strict: bool) -> Protections:
    """Apply everything but the per-job rules to this process; return what was applied.

    With ``strict`` a protection that cannot be applied raises :class:`IsolationError`.
    """
    missing = list(probe().missing)
    die_with_parent(parent_pid)
    _set_rlimits(memory_mb, max_file_mb)
    if os.geteuid() == 0:
        try:
            _drop_capabilities()
        except IsolationError as exc:
            missing.append(f"capability drop ({exc}): a root worker keeps root's powers")
    _no_new_privs()
    abi = landlock_abi()
    if abi:
        try:
            landlock_restrict(_python_read_paths(package_dirs), [scratch], abi)
        except IsolationError as exc:
            missing.append(f"Landlock ({exc})")
            abi = 0
    seccomp = _seccomp_lib() is not None
    if seccomp:
        try:
            _seccomp_load([(name, _errno_action(errno.EPERM), ()) for name in _DENY_ALWAYS]
                          + [("clone3", _errno_action(errno.ENOSYS), ())])
        except IsolationError as exc:
            missing.append(f"seccomp ({exc})")
            seccomp = False
    done = Protections(landlock_abi=abi, seccomp=seccomp, root=os.geteuid() == 0,
                       missing=tuple(dict.fromkeys(missing)))
    if strict and done.missing:
        raise IsolationError("strict sandbox: " + "; ".join(done.missing))
    return done


def lock_down_job(parent_pid: int, seccomp: bool) -> None:
    """In the fork that runs one job: die with the template, no processes, no
    signal to any other process, no change of the parent-death signal."""
    die_with_parent(parent_pid)
    if not seccomp:
        return
    me = os.getpid()
    eperm = _errno_action(errno.EPERM)
    not_me = ((0, _SCMP_CMP_NE, me, 0),)
    _seccomp_load([
        ("clone", eperm, ((0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0),)),  # a process, not a thread
        ("fork", eperm, ()), ("vfork", eperm, ()),
        ("kill", eperm, not_me), ("tkill", eperm, not_me), ("tgkill", eperm, not_me),
        ("rt_sigqueueinfo", eperm, not_me), ("rt_tgsigqueueinfo", eperm, not_me),
        ("prctl", eperm, ((0, _SCMP_CMP_EQ, PR_SET_PDEATHSIG, 0),)),
    ])
