"""Hostile scripts of the second round, one per cause: each asserts, from outside, that it was contained.

Causes (issue 22): the worker's identity (file metadata, other processes'
limits, priority and affinity, System V IPC and message queues, the number of
tasks), the job's word (counter, deadline, durations, frames, threads left
running between jobs), what a fork inherits (the batch, other scripts'
sources, the package's tree, an earlier script's scratch and log), kernel
signals on a script's request, and the size of an int. With
``LANGPROP_REQUIRE_SANDBOX=1`` (CI) a machine without a protection fails these
tests instead of skipping them.
"""
from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from langprop_core.sandbox import SandboxConfig, ScriptRunner
from langprop_core.sandbox.identity import MAX_TASKS, UID_BASE
from tests.helpers.sandbox import IPC, METADATA, OTHERS, SETOWN, THREADS, WHO, require_sandbox

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _contained():
    require_sandbox()


def _run(sources, inputs, **config):
    settings = dict(workers=1, timeout_s=2.0, memory_mb=512)
    settings.update(config)
    with ScriptRunner(SandboxConfig(**settings)) as runner:
        return runner.run_batch(sources, "f", inputs)


def _one(source, *args, **config):
    return _run({"s": source}, [args], **config)["s"][0]


@pytest.fixture
def victim():
    """A process of the trainer's user that a script must not touch."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


# -- 1. the worker's identity -------------------------------------------------------------------


def test_metadata_of_files_outside_the_box_cannot_change(tmp_path):
    target = tmp_path / "trainer_file.py"
    target.write_text("x = 1\n")
    os.chmod(target, 0o644)
    before = target.stat()
    result = _one(METADATA, str(target))
    after = target.stat()
    assert result.ok, result.exception
    assert sorted(result.output) == ["chmod", "chown", "setxattr", "utime"]
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == \
        (before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)
    assert os.listxattr(target) == []


def test_the_worker_has_a_uid_of_its_own_and_a_pid_namespace():
    uid, euid, gid, pid = _one(WHO, 0).output
    if os.geteuid() == 0:
        assert uid == euid == gid and UID_BASE <= uid < UID_BASE + (1 << 22)
    assert pid < 10  # the namespace's own numbering: the template is 1


def test_limits_priority_and_affinity_of_other_processes_cannot_change(victim):
    before = (resource.prlimit(victim.pid, resource.RLIMIT_CPU),
              resource.prlimit(victim.pid, resource.RLIMIT_NOFILE),
              os.getpriority(os.PRIO_PROCESS, victim.pid), os.sched_getaffinity(victim.pid))
    mine = (resource.prlimit(os.getpid(), resource.RLIMIT_CPU), os.getpriority(os.PRIO_PROCESS, 0))
    result = _one(OTHERS, victim.pid)
    assert result.ok, result.exception
    assert sorted(result.output) == ["prlimit", "prlimit_nofile", "sched_setaffinity", "setpriority",
                                      "setpriority_user"]
    assert (resource.prlimit(victim.pid, resource.RLIMIT_CPU),
            resource.prlimit(victim.pid, resource.RLIMIT_NOFILE),
            os.getpriority(os.PRIO_PROCESS, victim.pid), os.sched_getaffinity(victim.pid)) == before
    assert (resource.prlimit(os.getpid(), resource.RLIMIT_CPU), os.getpriority(os.PRIO_PROCESS, 0)) == mine


def _sysv_ids(kind: str) -> set[str]:
    with open(f"/proc/sysvipc/{kind}") as f:
        return {line.split()[1] for line in f.readlines()[1:]}


def test_system_v_ipc_and_message_queues_are_refused():
    before = {k: _sysv_ids(k) for k in ("shm", "sem", "msg")}
    result = _one(IPC, 0)
    assert result.ok, result.exception
    assert result.output == []
    assert {k: _sysv_ids(k) for k in ("shm", "sem", "msg")} == before
    assert not Path("/dev/mqueue/langprop-evil").exists()


def test_the_number_of_tasks_is_bounded():
    result = _one(THREADS, 400, timeout_s=20.0)
    assert result.ok, result.exception
    assert 0 < result.output < MAX_TASKS


# -- 2. nothing taken from the job's word ------------------------------------------------------

FORGED_COUNTER = """
import gc, signal, time
def f(x):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    counters = [o for o in gc.get_objects() if type(o).__name__ == "Progress"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        for c in counters:
            c.raw.value += 1  # looks busy
    return "too late"
"""


def test_a_moving_counter_and_no_alarm_do_not_extend_the_deadline():
    t0 = time.monotonic()
    result = _one(FORGED_COUNTER, 0, timeout_s=0.3)
    elapsed = time.monotonic() - t0
    assert result.timed_out and result.output is None
    assert elapsed < 10.0


TRUNCATE = """
import os
def f(x):
    done = []
    for fd in range(3, 256):
        try:
            os.ftruncate(fd, 0)
            done.append(fd)
        except OSError:
            pass
    return done
"""


def test_the_shared_counter_cannot_be_truncated_to_kill_the_trainer():
    # In a process of its own: a SIGBUS would otherwise end the test run.
    code = textwrap.dedent(f"""
        from langprop_core.sandbox import SandboxConfig, ScriptRunner
        with ScriptRunner(SandboxConfig(workers=1)) as r:
            for _ in range(3):
                r.run_batch({{"t": {TRUNCATE!r}}}, "f", [(1,), (2,)])
        print("alive")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "alive", out.stderr[-2000:]


FORGED_FRAME = """
import gc, os, pickle, signal, stat, threading, time
def keep_busy(counters):
    while True:
        for c in counters:
            c.raw.value += 1
        time.sleep(0.01)
def f(x):
    signal.setitimer(signal.ITIMER_REAL, 0)
    # Any progress counter it can find, kept moving meanwhile: liveness is not its word either.
    counters = [o for o in gc.get_objects() if type(o).__name__ == "Progress"]
    threading.Thread(target=keep_busy, args=(counters,), daemon=True).start()
    time.sleep(1.5)
    row = ("fast", None, None, "", 1e-6)
    for body in (pickle.dumps(("done", [row])), pickle.dumps(row)):  # a job's answer, a call's
        for fd in range(3, 64):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, len(body).to_bytes(8, "little") + body)
            except OSError:
                pass
    time.sleep(30)
"""


def test_durations_are_measured_outside_the_script_and_late_answers_are_timeouts():
    result = _one(FORGED_FRAME, 0, timeout_s=0.3)
    assert result.output != "fast"
    assert result.timed_out
    honest = _one("import time\ndef f(x):\n    time.sleep(0.2)\n    return x\n", 1, timeout_s=1.0)
    assert honest.ok and honest.duration_s >= 0.2


DIED_FRAME = """
import os, pickle, stat
def f(x):
    reason = "over " + "\\x1b[2J\\x1b]0;pwned\\x07" * 100000 + "A" * 5_000_000
    for body in (pickle.dumps(("died", reason, 0, 0)),):
        for fd in range(3, 64):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, len(body).to_bytes(8, "little") + body)
            except OSError:
                pass
    os._exit(0)
"""
ESCAPES = "def f(x):\n    print('\\x1b[2J' * 10)\n    raise ValueError('\\x1b]0;pwned\\x07' + 'B' * 10**6)\n"


def test_forged_frames_and_control_characters_never_reach_results_or_logs(caplog):
    caplog.set_level(logging.INFO, logger="langprop_core.sandbox")
    results = _run({"died": DIED_FRAME, "escapes": ESCAPES}, [(0,), (1,)])
    texts = [t for rows in results.values() for r in rows
             for t in (r.exception, r.traceback, r.stdout) if t]
    texts += [record.getMessage() for record in caplog.records]
    assert all(not r.ok for rows in results.values() for r in rows)
    assert all(len(t) <= (1 << 16) + 200 for t in texts)
    assert not any(c in t for t in texts for c in ("\x1b", "\x07", "\x00"))


LINGER = """
import os, threading, time
def spin():
    while True:
        with open("ticks", "a") as f:
            f.write(".")
        time.sleep(0.01)
def f(x):
    if x == 0:
        threading.Thread(target=spin, daemon=True).start()
        time.sleep(0.05)
    return x
"""


def test_a_kept_fork_does_not_run_between_jobs():
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=1.0)) as runner:
        assert runner.run_batch({"l": LINGER}, "f", [(0,)])["l"][0].ok
        ticks = Path(runner._workers[0].scratch) / "ticks"
        time.sleep(0.1)
        size = ticks.stat().st_size
        time.sleep(0.5)
        assert ticks.stat().st_size == size  # nothing ran while no job was on
        assert runner.run_batch({"l": LINGER}, "f", [(1,)])["l"][0].output == 1


# -- 3. a fork sees only its own job ------------------------------------------------------------

SNOOP = """
import gc, sys
# Built at run time, so that the script's own source does not hold them.
MARKERS = ("".join(map(chr, (73, 78, 80, 85, 84, 45))),
           "".join(map(chr, (79, 84, 72, 69, 82, 45, 83, 67, 82, 73, 80, 84))))
def _strings(obj, seen, out, depth=0):
    if depth > 6 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (str, bytes)):
        text = obj if isinstance(obj, str) else obj.decode("latin-1")
        for marker in MARKERS:
            at = text.find(marker)
            while at >= 0:
                found = text[at:at + len(marker) + 1]
                if found != marker:
                    out.add(found)
                at = text.find(marker, at + 1)
        return
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            _strings(k, seen, out, depth + 1)
            _strings(v, seen, out, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in list(obj):
            _strings(v, seen, out, depth + 1)
def f(x):
    out, seen = set(), set()
    frame = sys._getframe()
    while frame is not None:
        _strings(dict(frame.f_locals), seen, out)
        frame = frame.f_back
    for obj in gc.get_objects():
        _strings(obj, seen, out)
    for module in list(sys.modules.values()):
        _strings(getattr(module, "__dict__", {}), seen, out)
    return sorted(out)
"""
OTHER = "# OTHER-SCRIPT: its source\ndef f(x):\n    return x\n"


def test_a_fork_sees_neither_the_batch_nor_other_scripts():
    inputs = [(f"INPUT-{i}",) for i in range(4)]
    # One call per job (a long limit makes jobs short in calls).
    results = _run({"other": OTHER, "snoop": SNOOP}, inputs, timeout_s=30.0)
    for i, row in enumerate(results["snoop"]):
        assert row.ok, row.exception
        # Its own input, and those it was called on before (it could have kept them anyway);
        # never a later input of the batch (on a series task: its label), nor another's source.
        assert f"INPUT-{i}" in row.output
        assert set(row.output) <= {f"INPUT-{j}" for j in range(i + 1)}, row.output


RAW_SCAN = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.write.restype = ctypes.c_ssize_t
PAGE = 4096
UNIT = "".join(map(chr, (82, 65, 87, 45, 77, 65, 82, 75, 69, 82))).encode()  # built at run time
def f(span_mb):
    # Its own raw memory, page by page around objects of its heap; a pipe tells which pages are
    # readable (write() of an unreadable page fails with EFAULT instead of crashing).
    r, w = os.pipe()
    most, seen = 0, set()
    libc.malloc.restype = ctypes.c_void_p
    anchors = [id(sys.modules), id(f), id(bytearray(1 << 20)), libc.malloc(2048)]  # + the C heap
    for anchor in anchors:
        base = anchor - anchor % PAGE
        for k in range(-span_mb * 256, span_mb * 256):
            page = base + k * PAGE
            if page <= 0 or page in seen:
                continue
            seen.add(page)
            if libc.write(w, page, PAGE) != PAGE:
                continue
            most = max(most, os.read(r, PAGE).count(UNIT))
    return most  # its own needle counts once; another job's text, several times a page
"""
# Another script's source, long enough to live in the C heap of whoever holds it.
RAW_OTHER = "# " + "RAW-MARKER " * 200 + "\ndef f(x):\n    return x\n"


def test_a_fork_finds_no_earlier_job_in_its_raw_memory():
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=20.0)) as runner:
        for size in (100, 400, 800, 1600):  # other scripts' sources and inputs pass through first
            rows = runner.run_batch({"other": RAW_OTHER}, "f", [("RAW-MARKER " * size,)] * 4)["other"]
            assert all(row.ok for row in rows)
        result = runner.run_batch({"scan": RAW_SCAN}, "f", [(64,)])["scan"][0]
    assert result.ok, result.exception
    assert result.output < 3


READ = """
import importlib
def f(paths):
    read = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            read.append(path)
        except OSError:
            pass
    for name in ("driving", "expert", "langprop_driving"):
        try:
            importlib.import_module(name)
            read.append(name)
        except Exception:  # any failure: not importable
            pass
    import json, numpy
    return read, json.dumps(float(numpy.arange(3).sum()))
"""


def test_the_package_tree_is_not_readable():
    paths = [str(REPO / "langprop_core" / "examples" / "thermostat" / "train.py"),
             str(REPO / "langprop_core" / "sandbox" / "worker.py"), str(REPO / "pyproject.toml"),
             str(REPO / "driving" / "labels.py")]
    result = _one(READ, paths)
    assert result.ok, result.exception
    assert result.output == ([], "3.0")


LEAVE = "import os\ndef f(x):\n    open('left_by_a', 'w').write('a')\n    os.write(2, b'LOG-OF-A')\n    return x\n"
LOOK = """
import os
def f(x):
    seen = sorted(os.listdir("."))
    for path in ("worker.log", "../worker.log"):
        try:
            seen.append(open(path).read())
        except OSError:
            pass
    return seen
"""


def test_a_script_finds_no_scratch_file_or_log_of_an_earlier_one():
    results = _run({"a": LEAVE, "b": LOOK}, [(0,)])
    assert results["a"][0].ok and results["b"][0].ok, results
    assert results["b"][0].output == []


# -- 4. kernel signals on the script's request -------------------------------------------------


def test_older_landlock_is_covered_by_seccomp_and_strict_refuses_it_without(monkeypatch):
    from langprop_core.sandbox import isolation

    monkeypatch.setattr(isolation, "landlock_abi", lambda: 5)  # e.g. Ubuntu 24.04's Linux 6.8
    with_seccomp = isolation.probe()
    assert not any("signal" in m for m in with_seccomp.missing)
    assert "signals scoped by seccomp" in with_seccomp.describe()
    monkeypatch.setattr(isolation.seccomp, "available", lambda: False)
    without = isolation.probe()
    assert any("F_SETOWN" in m for m in without.missing)


def test_the_kernel_signals_no_one_on_a_scripts_request(victim):
    result = _one(SETOWN, victim.pid)
    time.sleep(0.2)
    assert victim.poll() is None
    assert result.ok, result.exception
    assert sorted(result.output) == ["FIOSETOWN", "F_SETOWN", "F_SETSIG", "O_ASYNC"]


# -- 5. an int is counted by its size -----------------------------------------------------------

def test_a_huge_int_is_over_the_size_bound():
    result = _one("def f(x):\n    return 1 << (8 * 40_000_000)\n", 0, timeout_s=10.0)
    assert result.exception and result.exception.startswith("UnsafeOutput")
    small = _one("def f(x):\n    return 1 << 64, ('MOVE', 3.5)\n", 0)
    assert small.output == (1 << 64, ("MOVE", 3.5))
