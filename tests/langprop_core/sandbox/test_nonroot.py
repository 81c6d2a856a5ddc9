"""The second round's attacks from a trainer that is not root (the mechanism differs there).

A non-root trainer cannot give its workers a uid of their own: they enter a
user namespace (with their own IPC and PID namespaces and a task bound
counted in it), and seccomp's allow-list refuses what the uid would otherwise
allow on the user's own files and processes. ``strict`` refuses such a
machine and says why. The trainer here is ``nobody``, started with
``setpriv`` by the (root) test run, with an interpreter that user may run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from langprop_core.sandbox.identity import MAX_TASKS
from tests.helpers import sandbox as attacks

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534


def _as_nobody(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *args],
                          capture_output=True, text=True, **kwargs)


def _interpreter() -> str | None:
    """A Python that ``nobody`` can run and that imports the package's sandbox."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    probe = (f"import subprocess, sys; sys.path.insert(0, {str(REPO)!r}); import langprop_core.sandbox; "
             "subprocess.run([sys.executable, '-c', 'pass'], check=True)")  # workers start from it
    for python in (os.path.realpath(sys.executable), "/usr/bin/python3"):
        if os.path.exists(python) and _as_nobody([python, "-c", probe], timeout=60).returncode == 0:
            return python
    return None


CHECK = textwrap.dedent("""
    import json, os, resource, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from langprop_core.sandbox import SandboxConfig, SandboxUnavailable, ScriptRunner
    sources, home = json.loads(sys.stdin.read()), sys.argv[2]
    target = os.path.join(home, "file")
    with open(target, "w") as f:
        f.write("x")
    os.chmod(target, 0o644)
    before = os.stat(target)
    victim = subprocess.Popen(["sleep", "120"])
    victim_before = [True, list(resource.prlimit(victim.pid, resource.RLIMIT_CPU)),
                     os.getpriority(os.PRIO_PROCESS, victim.pid)]
    out = {}
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=5.0)) as runner:
        for name, arg in (("METADATA", target), ("OTHERS", victim.pid), ("IPC", 0), ("THREADS", 400),
                          ("SETOWN", victim.pid), ("WHO", 0)):
            row = runner.run_batch({name: sources[name]}, "f", [(arg,)])[name][0]
            out[name] = row.output if row.ok else "failed: " + str(row.exception)
    after = os.stat(target)
    out["file_unchanged"] = (before.st_mode, before.st_mtime_ns) == (after.st_mode, after.st_mtime_ns)
    out["victim_unchanged"] = victim_before == [
        victim.poll() is None, list(resource.prlimit(victim.pid, resource.RLIMIT_CPU)),
        os.getpriority(os.PRIO_PROCESS, victim.pid)]
    victim.kill()
    try:
        with ScriptRunner(SandboxConfig(workers=1, strict=True)) as runner:
            runner.start()
        out["strict"] = "ran"
    except SandboxUnavailable as exc:
        out["strict"] = str(exc)
    print(json.dumps(out))
""")


@pytest.fixture
def home():
    """A folder of nobody's (pytest's own tmp_path lies beneath a folder only root may enter)."""
    folder = tempfile.mkdtemp(prefix="langprop-nonroot-")
    os.chown(folder, NOBODY, NOBODY)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_attacks_are_contained_for_a_non_root_trainer(home):
    attacks.require_sandbox()
    python = _interpreter()
    if python is None:
        pytest.skip("needs root, setpriv and a Python that user nobody may run")
    tmp_path = home
    sources = {name: getattr(attacks, name) for name in ("METADATA", "OTHERS", "IPC", "THREADS", "SETOWN", "WHO")}
    run = _as_nobody([python, "-c", CHECK, str(REPO), str(tmp_path)], input=json.dumps(sources),
                     timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(out["METADATA"]) == ["chmod", "chown", "setxattr", "utime"]
    assert sorted(out["OTHERS"]) == ["prlimit", "prlimit_nofile", "sched_setaffinity", "setpriority",
                                     "setpriority_user"]
    assert out["IPC"] == []
    assert 0 < out["THREADS"] < MAX_TASKS
    assert sorted(out["SETOWN"]) == ["FIOSETOWN", "F_SETOWN", "F_SETSIG", "O_ASYNC"]
    assert out["WHO"][0] == NOBODY and out["WHO"][3] < 100  # its own PID namespace
    assert out["file_unchanged"]
    assert out["victim_unchanged"]
    assert out["strict"].startswith("strict sandbox: own uid (needs root)")
