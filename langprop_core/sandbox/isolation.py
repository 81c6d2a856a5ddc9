"""The kernel's means that box a worker in: identity, Landlock, seccomp, rlimits.

Every function here acts on the calling process and is called by the worker
on itself, in this order (see :func:`lock_down_template` and
:func:`lock_down_job`):

1. environment: the worker was started with :func:`worker_environment` only;
2. ``PR_SET_PDEATHSIG`` (SIGKILL when the parent goes), re-checked against the
   parent's pid so a parent that died before the call is noticed;
3. its own IPC and PID namespaces, then its own uid and a bound on its tasks
   (:mod:`.identity`);
4. rlimits: address space, file size, open files, no core files;
5. ``PR_SET_NO_NEW_PRIVS`` and Landlock: reads only the interpreter, its
   standard library and the libraries a script may import
   (:data:`SCRIPT_LIBRARIES`), never the package's own tree; writes only its
   scratch directory; no ``/proc``; no TCP bind or connect (ABI >= 4); no
   signals or abstract sockets outside itself (ABI >= 6);
6. seccomp: an allow-list (:mod:`.seccomp`), default refuse; per job a
   stricter one (threads only, signals to itself only, ...).

:func:`probe` says which of these the machine gives, for the start-up report
and ``strict`` mode; each missing part is named with what it leaves open.
Small ``ctypes`` code instead of a binding: Landlock has only pre-release
bindings, and libseccomp's C API is stable and ships with Debian
(``libseccomp2``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import importlib.util
import os
import signal
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Iterable

from langprop_core.sandbox import identity, seccomp

__all__ = ["Protections", "probe", "worker_environment", "die_with_parent", "landlock_abi",
           "lock_down_template", "lock_down_job", "IsolationError", "SCRIPT_LIBRARIES", "script_read_paths"]

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
# The installed packages a script may import, beside the standard library.
SCRIPT_LIBRARIES = ("numpy",)

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
                "seccomp allow-list" if self.seccomp else None,
                # Landlock scopes signals from ABI 6; before it, seccomp's argument checks do.
                "signals scoped by seccomp" if self.seccomp and 0 < self.landlock_abi < 6 else None]
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


# What each missing part leaves open (one source for the probe and the worker's report).
NO_LANDLOCK = ("Landlock (kernel without it): workers may read and write any file their uid may, "
               "and read /proc of other processes")
NO_SECCOMP = ("seccomp (libseccomp2 not found): workers may open sockets, start processes, signal "
              "others and use any system call")
NO_IDENTITY = ("own uid (needs root): workers run as the trainer's user; Landlock and seccomp still "
               "bound them, but a kernel hole in either reaches that user's files and processes")
NO_NAMESPACES = ("own IPC and PID namespaces ({why}): only seccomp keeps workers from System V IPC, "
                 "message queues and other processes")
NO_TASK_BOUND = ("task bound (needs root or a user namespace): a script may start threads until the "
                 "address-space limit stops it")
NO_SIGNAL_SCOPE = ("signal scoping (Landlock ABI {abi} < 6, no seccomp): a script may have the kernel "
                   "signal another process (F_SETOWN + O_ASYNC)")


def _user_namespaces() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                return False
        if os.path.exists("/proc/sys/kernel/unprivileged_userns_clone"):
            with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
                return int(f.read()) != 0
    except (OSError, ValueError):
        return False
    return True


def probe() -> Protections:
    """Which protections this machine gives a worker; ``missing`` names the others, each with
    what it leaves open. With Landlock ABI < 6 the kernel's signals on a script's behalf are
    stopped by seccomp's argument checks (no ``F_SETOWN``, ``F_SETSIG``, ``FIOSETOWN``)."""
    abi = landlock_abi()
    have_seccomp = seccomp.available()
    root = os.geteuid() == 0
    missing = []
    if not abi:
        missing.append(NO_LANDLOCK)
    if not have_seccomp:
        missing.append(NO_SECCOMP)
        if abi < 6:
            missing.append(NO_SIGNAL_SCOPE.format(abi=abi))
    if not root:
        missing.append(NO_IDENTITY)
        if not _user_namespaces():
            missing.append(NO_NAMESPACES.format(why="no unprivileged user namespaces"))
            missing.append(NO_TASK_BOUND)
    if root and _SYS_CAPSET is None:
        missing.append(f"capability drop (unknown architecture {os.uname().machine})")
    return Protections(landlock_abi=abi, seccomp=have_seccomp, root=root, missing=tuple(missing))


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
    """Empty the bounding, effective, permitted and inheritable sets (of a user namespace)."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability the kernel knows
                break
            raise IsolationError(f"PR_CAPBSET_DROP {cap} failed: {os.strerror(ctypes.get_errno())}")

    try:
        identity.set_capabilities(0)
    except identity.IdentityError as exc:
        raise IsolationError(str(exc)) from None


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


def script_read_paths() -> list[str]:
    """What a worker may read: the interpreter's standard library (not its site-packages), the
    libraries of :data:`SCRIPT_LIBRARIES`, the system's shared libraries and a few devices.
    Not the package's own tree, nor any other installed package."""
    paths: set[str] = set()
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib"):
        stdlib = sysconfig.get_path(key, vars=base)
        try:
            entries = os.scandir(stdlib)
        except OSError:
            continue
        with entries:
            # Entry by entry: Landlock cannot leave out a folder beneath an allowed one.
            paths.update(e.path for e in entries if e.name not in ("site-packages", "dist-packages"))
    for name in SCRIPT_LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            paths.add(folder)
            if os.path.isdir(folder + ".libs"):  # a wheel's vendored shared libraries
                paths.add(folder + ".libs")
    paths.update(_SYSTEM_READ)
    paths.update(_DEVICES)
    return sorted(paths)


def lock_down_template(scratch: str, memory_mb: int, max_file_mb: int, parent_pid: int | None,
                       strict: bool, uid: int, namespaces_error: str | None) -> Protections:
    """Apply everything but the per-job rules to this process (the worker's template, already
    in its namespaces unless ``namespaces_error`` says why not); return what was applied.

    With ``strict`` a protection that cannot be applied raises :class:`IsolationError`.
    """
    missing = list(probe().missing)
    die_with_parent(parent_pid)
    if namespaces_error is not None:
        missing.append(NO_NAMESPACES.format(why=namespaces_error))
    _set_rlimits(memory_mb, max_file_mb)
    root = os.geteuid() == 0
    own_count = False  # whether RLIMIT_NPROC would count this worker's tasks only
    try:
        if root:
            identity.take_identity(uid, scratch)
            own_count = True
        elif namespaces_error is None:
            _drop_capabilities()  # the user namespace's
            own_count = True
    except (identity.IdentityError, IsolationError, OSError) as exc:
        missing.append(f"own uid ({exc}): " + NO_IDENTITY.split(": ", 1)[1] if root else
                       f"capability drop in the user namespace ({exc})")
    if own_count:
        identity.bound_tasks()  # counted per uid (or per uid of the user namespace)
    else:
        missing.append(NO_TASK_BOUND)
    # A change of uid clears the parent-death signal: set it again.
    die_with_parent(parent_pid)
    _no_new_privs()
    abi = landlock_abi()
    if abi:
        try:
            landlock_restrict(script_read_paths(), [scratch], abi)
        except IsolationError as exc:
            missing.append(f"Landlock ({exc})")
            abi = 0
    have_seccomp = seccomp.available()
    if have_seccomp:
        try:
            seccomp.load(seccomp.template_rules())
        except seccomp.SeccompError as exc:
            missing.append(f"seccomp ({exc})")
            have_seccomp = False
    done = Protections(landlock_abi=abi, seccomp=have_seccomp, root=os.geteuid() == 0,
                       missing=tuple(dict.fromkeys(missing)))
    if strict and done.missing:
        raise IsolationError("strict sandbox: " + "; ".join(done.missing))
    return done


def lock_down_job(template_pid: int, have_seccomp: bool) -> None:
    """In the fork that runs one job: die with the template, then the job's allow-list
    (threads only, signals to itself only, no change of the parent-death signal)."""
    die_with_parent(template_pid)
    if have_seccomp:
        seccomp.load(seccomp.job_rules(os.getpid()))
