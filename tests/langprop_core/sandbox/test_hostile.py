"""Hostile scripts: one per attack, each asserting that the sandbox contained it.

Containment is checked from the outside: no file outside the worker's
scratch, no connection reaching a listener on 127.0.0.1, no process left,
no marker written by this (the trainer's) process, no secret in any output,
prompt, index or log, and a victim script scoring exactly as before. The
suite runs as whatever user runs the tests (CI: root).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from langprop_core.module import Module
from langprop_core.sandbox import (SandboxConfig, ScriptError, ScriptRunner, UnsafeOutput, WorkerKilled,
                                   bounded_repr, probe)
from langprop_core.sandbox.codec import Bounds, check_plain, decode, encode
from langprop_core.task import Task, score_call
from langprop_core.trainer import Trainer, TrainerConfig
from tests.helpers.scripted_training import ScriptedOptimizer, fence

SECRET = "sk-hostile-test-SECRET-0123456789abcdef"
VICTIM = "import math\ndef f(x):\n    return abs(-x) + int(math.sqrt(4)) - 2\n"

# Skipped without Landlock and seccomp, except where LANGPROP_REQUIRE_SANDBOX=1 (CI): then they fail.
needs_kernel = pytest.mark.skipif(
    (not probe().landlock_abi or not probe().seccomp) and os.environ.get("LANGPROP_REQUIRE_SANDBOX") != "1",
    reason="needs Landlock and seccomp (Linux)")


class _Listener:
    """A TCP listener on 127.0.0.1; :meth:`accepted` says whether anything connected."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]

    def accepted(self) -> bool:
        try:
            conn, _ = self.server.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@pytest.fixture
def listener():
    server = _Listener()
    yield server
    server.server.close()


@pytest.fixture
def secret_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "LANGPROP_LLM_API_KEY", "AZURE_OPENAI_API_KEY", "MY_SERVICE_TOKEN"):
        monkeypatch.setenv(name, SECRET)
    return SECRET


def _run(sources: dict[str, str], inputs, **config):
    settings = dict(workers=1, timeout_s=1.0, memory_mb=512)
    settings.update(config)
    with ScriptRunner(SandboxConfig(**settings)) as runner:
        results = runner.run_batch(sources, "f", inputs)
        pids = [w.process.pid for w in runner._workers]
        scratch = [w.scratch for w in runner._workers]
    return results, pids, scratch


def _proc_stats():
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process now."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue


def _group_members(pgids: list[int]) -> list[int]:
    """Processes still alive in the given process groups."""
    return [pid for pid, fields in _proc_stats() if int(fields[2]) in pgids and fields[0] != "Z"]


def _assert_victim_unchanged(results):
    assert [c.output for c in results["victim"]] == [1, 2, 3]
    assert all(c.ok for c in results["victim"])


# -- 1: no code of a script runs outside its worker ---------------------------------------------

REDUCE_EVAL = """
class Evil:
    def __reduce__(self):
        return (eval, ("open({marker!r}, 'a').write(str(__import__('os').getpid()) + chr(10)) or 1.0",))
def f(x):
    return Evil()
"""


@needs_kernel
def test_reduce_eval_never_runs_in_the_parent(tmp_path):
    marker = tmp_path / "marker"
    results, _, _ = _run({"evil": REDUCE_EVAL.format(marker=str(marker)), "victim": VICTIM},
                         [(1,), (2,), (3,)])
    assert all(c.exception.startswith("UnsafeOutput") for c in results["evil"])
    assert not marker.exists()
    _assert_victim_unchanged(results)


FORGED = """
import os, pickle
class Evil:
    def __reduce__(self):
        return (eval, ("open({marker!r}, 'a').write('forged')",))
def f(x):
    data = pickle.dumps(("done", [(Evil(), None, None, "", 0.0)]))
    for fd in range(3, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass
    os._exit(0)
"""


@needs_kernel
def test_a_forged_message_on_the_channel_is_refused(tmp_path):
    marker = tmp_path / "marker"
    results, _, _ = _run({"evil": FORGED.format(marker=str(marker)), "victim": VICTIM}, [(1,), (2,), (3,)])
    assert all(not c.ok for c in results["evil"])
    assert any("UnsafeOutput" in c.exception or "WorkerDied" in c.exception for c in results["evil"])
    assert not marker.exists()
    _assert_victim_unchanged(results)


def test_the_codec_decodes_plain_data_only(tmp_path):
    class Raises:
        def __reduce__(self):
            return (int, ("not a number",))

    value = ({"a": [1, 2.5, None, b"x", "s"], (1, "k"): (True, 3j)}, np.arange(6.0).reshape(2, 3),
             np.float32(1.5), np.int64(7))
    back = decode(encode(value))
    assert back[0] == value[0] and np.array_equal(back[1], value[1]) and back[2:] == value[2:]
    with pytest.raises(UnsafeOutput, match="builtins.int"):
        decode(encode(Raises()))
    with pytest.raises(UnsafeOutput, match="undecodable"):
        decode(b"\x80\x05garbage")
    with pytest.raises(UnsafeOutput, match=r"dtype \|O"):
        check_plain(np.array([1, "a"], dtype=object), Bounds())
    with pytest.raises(UnsafeOutput, match="not plain data"):
        check_plain(type("Sub", (int,), {})(3), Bounds())


# -- 2: unpickling that raises, and bounded results -----------------------------------------------

RAISING_REDUCE = """
class Bomb:
    def __reduce__(self):
        return (int, ("not a number",))
def f(x):
    return [Bomb()]
"""

SHARED_REFS = """
def f(x):
    value = []
    for _ in range(30):
        value = [value, value]
    return value
"""


@needs_kernel
def test_unsafe_and_oversized_outputs_are_scored_failures():
    deep = "def f(x):\n    v = 0\n    for _ in range(100):\n        v = [v]\n    return v\n"
    big = "def f(x):\n    return 'x' * (2 << 20)\n"
    results, _, _ = _run({"raise": RAISING_REDUCE, "shared": SHARED_REFS, "deep": deep, "big": big,
                          "victim": VICTIM}, [(1,), (2,), (3,)])
    for name in ("raise", "shared", "deep", "big"):
        assert all(c.exception.startswith("UnsafeOutput") for c in results[name]), name
    assert "size bound" in results["shared"][0].exception
    assert "deeper" in results["deep"][0].exception
    _assert_victim_unchanged(results)
    small, _, _ = _run({"big": big}, [(1,)], max_result_bytes=4 << 20)
    assert small["big"][0].ok and len(small["big"][0].output) == 2 << 20


def test_bounded_repr_is_bounded_for_self_sharing_values():
    value = []
    for _ in range(40):
        value = [value, value]
    text = bounded_repr(value, 300)
    assert len(text) <= 300 and "..." in text
    assert len(bounded_repr("y" * 10**6, 100)) <= 100


@needs_kernel
def test_a_hostile_output_does_not_raise_out_of_fit_and_the_prompt_is_bounded(tmp_path):
    marker = tmp_path / "marker"
    task = Task(preprocess=lambda x: ((x,), x), objective=lambda out, label, args: float(out == label))
    replies = [fence(RAISING_REDUCE), fence(SHARED_REFS), fence(REDUCE_EVAL.format(marker=str(marker))),
               fence("def f(x):\n    return x if x < 2 else -x\n")]
    optimizer = ScriptedOptimizer(setup=replies, update=[fence("def f(x):\n    return x\n")])
    config = TrainerConfig(epochs=1, batch_size=3, n_responses=len(replies), top_k=4, progress=False,
                           sandbox=SandboxConfig(workers=2, timeout_s=1.0, memory_mb=512))
    module = _module(tmp_path)
    result = Trainer(optimizer, config, run_dir=tmp_path / "run").fit(module, task, [1, 2, 3, 4, 5, 6])
    assert result.best_policy.source == "def f(x):\n    return x\n"
    assert not marker.exists()
    for request in optimizer.requests[1:]:
        assert len(request.messages[0].content) < 20_000


# -- 3: no secrets ----------------------------------------------------------------------------------

STEAL = """
import os
def f(x):
    found = [os.environ.get(k, "") for k in ("OPENAI_API_KEY", "LANGPROP_LLM_API_KEY", "AZURE_OPENAI_API_KEY",
                                             "MY_SERVICE_TOKEN")]
    for path in ("/proc/%d/environ" % os.getppid(), "/proc/1/environ", "/proc/self/environ"):
        try:
            found.append(open(path, "rb").read().decode("latin-1"))
        except OSError as exc:
            found.append(type(exc).__name__)
    print(found)
    return found
"""


@needs_kernel
def test_secrets_reach_no_script(secret_env):
    results, _, _ = _run({"steal": STEAL}, [(1,)])
    call = results["steal"][0]
    assert call.ok
    assert SECRET not in json.dumps(call.output) and SECRET not in call.stdout
    assert call.output[:4] == ["", "", "", ""]
    assert all(text == "PermissionError" for text in call.output[4:])


def test_the_trainer_masks_the_api_key_in_prompts_index_and_metrics(tmp_path, secret_env):
    # In-process (trusted) mode hands the key to the script: the trainer's mask is the last defence.
    leak = "import os\ndef f(x):\n    print(os.environ['OPENAI_API_KEY'])\n    return os.environ['OPENAI_API_KEY']\n"
    task = Task(preprocess=lambda x: ((x,), x), objective=lambda out, label, args: float(out == label))
    optimizer = ScriptedOptimizer(setup=[fence(leak)], update=[fence("def f(x):\n    return x\n")])
    config = TrainerConfig(epochs=1, batch_size=2, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    run_dir = tmp_path / "run"
    Trainer(optimizer, config, run_dir=run_dir).fit(_module(tmp_path), task, [1, 2, 3, 4])
    prompts = "".join(m.content for r in optimizer.requests for m in r.messages)
    assert "***" in prompts and SECRET not in prompts
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".py"):
            assert SECRET not in path.read_text(), path


# -- 4: no writes, no network, no processes, no signals -------------------------------------------

WRITE = """
import os
def f(x):
    done = []
    for path in ({outside!r}, {checkpoint!r}, "/etc/langprop-hostile", "/tmp/langprop-hostile"):
        try:
            with open(path, "a") as out:
                out.write("owned")
            done.append(path)
        except OSError:
            pass
    with open("scratch.txt", "w") as out:  # the worker's own scratch directory
        out.write("fine")
    return done
"""


@needs_kernel
def test_no_file_is_written_outside_the_scratch(tmp_path):
    outside = tmp_path / "outside.txt"
    checkpoint = tmp_path / "checkpoint" / "index.json"
    checkpoint.parent.mkdir()
    checkpoint.write_text("{}")
    results, _, scratch = _run({"write": WRITE.format(outside=str(outside), checkpoint=str(checkpoint))},
                               [(1,)])
    assert results["write"][0].ok and results["write"][0].output == []
    assert not outside.exists() and checkpoint.read_text() == "{}"
    assert not Path("/tmp/langprop-hostile").exists() and not Path("/etc/langprop-hostile").exists()
    assert not any(Path(s).exists() for s in scratch)  # removed with its worker


NETWORK = """
import socket
def f(port):
    out = []
    for family in (socket.AF_INET, socket.AF_UNIX):
        try:
            s = socket.socket(family)
            if family == socket.AF_INET:
                s.connect(("127.0.0.1", port))
                s.sendall(b"stolen")
            out.append("connected")
        except OSError as exc:
            out.append(type(exc).__name__)
    return out
"""


@needs_kernel
def test_no_connection_reaches_a_local_listener(listener):
    results, _, _ = _run({"net": NETWORK}, [(listener.port,)])
    assert results["net"][0].output == ["PermissionError", "PermissionError"]
    assert not listener.accepted()


PROCESSES = """
import os, subprocess, threading
def f(x):
    out = []
    try:
        subprocess.Popen(["sleep", "301"])
        out.append("popen")
    except OSError:
        pass
    for _ in range(100):
        try:
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "302"])
            out.append("fork")
        except OSError:
            pass
    try:
        os.setsid()
        out.append("setsid")
    except OSError:
        pass
    t = threading.Thread(target=lambda: None)  # threads stay allowed (numpy may use them)
    t.start()
    t.join()
    return out
"""


@needs_kernel
def test_no_process_is_started_and_none_outlives_the_worker():
    results, pids, _ = _run({"procs": PROCESSES, "victim": VICTIM}, [(1,), (2,), (3,)])
    assert [c.output for c in results["procs"]] == [[], [], []]
    _assert_victim_unchanged(results)
    assert _group_members(pids) == []


SIGNALS = """
import os, signal, ctypes
def f(pid):
    out = []
    for target, sig in ((os.getppid(), signal.SIGKILL), (pid, signal.SIGKILL), (0, signal.SIGKILL),
                        (-1, signal.SIGKILL)):
        try:
            os.kill(target, sig)
            out.append(target)
        except OSError:
            pass
    if ctypes.CDLL(None).prctl(1, 0, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG: keep living when the parent dies
        out.append("pdeathsig")
    os.kill(os.getpid(), 0)  # itself: allowed
    return out
"""


@needs_kernel
def test_signals_reach_nothing_but_the_script_itself():
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=1.0)) as runner:
        results = runner.run_batch({"kill": SIGNALS, "victim": VICTIM}, "f", [(os.getpid(),)] * 3)
        assert runner.workers_replaced == 0
    assert [c.output for c in results["kill"]] == [[], [], []]
    assert [c.output for c in results["victim"]] == [os.getpid()] * 3


def test_a_worker_dies_with_its_parent(tmp_path):
    # The parent (a stand-in for the trainer) is killed with SIGKILL: its workers must not live on.
    code = textwrap.dedent("""
        import sys, time
        from langprop_core.sandbox import SandboxConfig, ScriptRunner
        r = ScriptRunner(SandboxConfig(workers=2, timeout_s=30.0))
        r.run_batch({"a": "def f(x):\\n    return x\\n"}, "f", [(1,)])
        print(" ".join(str(w.process.pid) for w in r._workers), flush=True)
        r.run_batch({"slow": "import time\\ndef f(x):\\n    time.sleep(300)\\n"}, "f", [(1,), (2,)])
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    time.sleep(0.5)  # the slow jobs are running in their forks
    parent.kill()
    parent.wait()
    for _ in range(100):
        if not _group_members(pids):
            break
        time.sleep(0.05)
    assert _group_members(pids) == []


# -- 5: scripts cannot touch each other ---------------------------------------------------------

PATCHER = """
import builtins, math
import numpy as np
builtins.abs = lambda v: 0
math.sqrt = lambda v: 0.0
np.add = None
GLOBAL_LEFT = 1
builtins.LEFT_BEHIND = True
with open("left-for-the-next.txt", "w") as note:  # in the worker's scratch directory
    note.write("hello")
def f(x):
    return 0
"""
CHECKER = """
import os
import numpy as np
def f(x):
    return (abs(-x) + int(__import__('math').sqrt(4)) - 2, hasattr(__builtins__, "LEFT_BEHIND")
            if not isinstance(__builtins__, dict) else "LEFT_BEHIND" in __builtins__,
            int(np.add(x, 1)), os.path.exists("left-for-the-next.txt"))
"""


@needs_kernel
def test_patches_of_one_script_are_not_seen_by_the_next():
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=1.0)) as runner:
        first = runner.run_batch({"patch": PATCHER, "check": CHECKER}, "f", [(1,), (2,), (3,)])
        again = runner.run_batch({"check": CHECKER, "victim": VICTIM}, "f", [(1,), (2,), (3,)])
    expected = [(1, False, 2, False), (2, False, 3, False), (3, False, 4, False)]
    assert [c.output for c in first["check"]] == expected
    assert [c.output for c in again["check"]] == expected
    _assert_victim_unchanged(again)


# -- stderr, time, strict, in-process ---------------------------------------------------------------

@needs_kernel
def test_writes_to_the_terminal_do_not_reach_it(capfd):
    noisy = "import os\ndef f(x):\n    os.write(2, b'NOISE' * (1 << 20))\n    os.write(1, b'NOISE')\n    return x\n"
    results, _, _ = _run({"noisy": noisy}, [(1,)])
    assert results["noisy"][0].output == 1
    captured = capfd.readouterr()
    assert "NOISE" not in captured.err and "NOISE" not in captured.out


def test_slow_scripts_pay_for_their_time():
    slow = "import time\ndef f(x):\n    time.sleep(0.05)\n    return x\n"
    fast = "def f(x):\n    return x\n"
    task = Task(preprocess=lambda x: ((x,), x), objective=lambda out, label, args: float(out == label),
                call_budget_s=0.01, time_charge=0.5)
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=1.0)) as runner:
        results = runner.run_batch({"slow": slow, "fast": fast}, "f", [(1,), (2,)])
    slow_scores = [score_call(task, r, i + 1, (i + 1,)).score for i, r in enumerate(results["slow"])]
    fast_scores = [score_call(task, r, i + 1, (i + 1,)).score for i, r in enumerate(results["fast"])]
    assert fast_scores == [1.0, 1.0] and all(s == 0.5 for s in slow_scores)


def test_the_mean_call_time_reaches_the_index_and_the_prompt(tmp_path):
    slow = "import time\ndef f(x):\n    time.sleep(0.02)\n    return x if x < 3 else 0\n"
    task = Task(preprocess=lambda x: ((x,), x), objective=lambda out, label, args: float(out == label))
    optimizer = ScriptedOptimizer(setup=[fence(slow)], update=[fence("def f(x):\n    return x\n")])
    config = TrainerConfig(epochs=1, batch_size=4, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(workers=1, timeout_s=1.0))
    run_dir = tmp_path / "run"
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "setup.txt").write_text("%% user\nWrite f.\n")
    (tdir / "update.txt").write_text("%% user\n{{ code }}\ntime: {{ mean_call_ms }} ms\n")
    Trainer(optimizer, config, run_dir=run_dir).fit(Module("m", "f", tdir), task, [1, 2, 3, 4, 5, 6, 7, 8])
    assert "time: 10-100 ms" in optimizer.requests[1].messages[0].content
    index = json.loads((run_dir / "checkpoints" / "m" / "index.json").read_text())
    means = {p["id"]: p["mean_call_s"] for p in index["policies"]}
    assert any(m is not None and m >= 0.02 for m in means.values())


@needs_kernel
def test_strict_runs_here_and_says_what_it_applied(caplog):
    with caplog.at_level(logging.INFO, logger="langprop_core.sandbox"):
        with ScriptRunner(SandboxConfig(workers=1, strict=True)) as runner:
            protections = runner.start()
            results = runner.run_batch({"victim": VICTIM}, "f", [(1,), (2,), (3,)])
    assert protections.landlock_abi >= 1 and protections.seccomp and not protections.missing
    _assert_victim_unchanged(results)


def test_strict_refuses_when_a_protection_is_missing(tmp_path):
    # seccomp made unavailable in a process of its own: strict must refuse, not go on without it.
    code = textwrap.dedent(f"""
        import os
        from langprop_core.sandbox import isolation
        isolation.seccomp.available = lambda: False
        try:
            isolation.lock_down_template({str(tmp_path)!r}, 512, 1, os.getppid(), strict=True,
                                         uid=0x70000000 + os.getpid(), namespaces_error=None)
        except isolation.IsolationError as exc:
            print("refused:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused: strict sandbox" in out.stdout and "seccomp" in out.stdout


def test_inprocess_mode_is_loud_and_catches_sys_exit(caplog):
    with caplog.at_level(logging.WARNING, logger="langprop_core.sandbox"):
        with ScriptRunner(SandboxConfig(mode="inprocess")) as runner:
            results = runner.run_batch({"exit": "import sys\ndef f(x):\n    sys.exit(0)\n"}, "f", [(1,)])
    assert "trusted code only" in caplog.text
    assert results["exit"][0].exception.startswith("SystemExit")


# -- through the agent and inference ------------------------------------------------------------------

def _agent(tmp_path, monkeypatch, source: str):
    from team_code.langprop_agent import LangPropAgent
    from tests.helpers.agent_doubles import make_scene, script, start

    for name in list(os.environ):
        if name.startswith("LANGPROP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LANGPROP_SANDBOX", "true")
    monkeypatch.setenv("LANGPROP_TIMEOUT_S", "1.0")
    monkeypatch.setenv("LANGPROP_MAX_TIMEOUTS", "2")
    return start(LangPropAgent(str(script(tmp_path, source))), [make_scene(i) for i in range(6)])


@needs_kernel
def test_the_agent_brakes_on_a_hostile_output_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    source = REDUCE_EVAL.format(marker=str(marker)).replace("def f(x)", "def predict_speed_and_steering(x)")
    agent = _agent(tmp_path, monkeypatch, source)
    try:
        controls = [agent.run_step({}, 0.05 * i) for i in range(3)]
    finally:
        agent.destroy()
    assert [c.brake for c in controls] == [1.0] * 3
    assert "UnsafeOutput" in agent.last_exception and not marker.exists()


@needs_kernel
def test_the_agent_gives_up_on_a_script_that_kills_its_worker(tmp_path, monkeypatch):
    source = "import os\ndef predict_speed_and_steering(scene):\n    os._exit(9)\n"
    agent = _agent(tmp_path, monkeypatch, source)
    try:
        controls = [agent.run_step({}, 0.05 * i) for i in range(6)]
    finally:
        agent.destroy()
    assert [c.brake for c in controls] == [1.0] * 6
    meta = agent.route_meta()
    assert meta["policy_worker_deaths"] == 2 and meta["policy_calls"] == 2
    assert meta["policy_abandoned_at_tick"] is not None


@needs_kernel
def test_loading_a_hostile_checkpoint_runs_nothing_here(tmp_path):
    from langprop_core.checkpoint import save_checkpoint
    from langprop_core.inference import load_policy
    from langprop_core.policy import Policy

    marker = tmp_path / "marker"
    source = (f"try:\n    open({str(marker)!r}, 'a').write('loaded')\nexcept OSError:\n    pass\n"
              + REDUCE_EVAL.format(marker=str(marker)))
    save_checkpoint(tmp_path / "ck", "m", "f", [Policy.from_source(source, "f")])
    with load_policy(tmp_path / "ck", function_name="f") as policy:
        with pytest.raises(ScriptError, match="UnsafeOutput"):
            policy(1)
    assert not marker.exists()
    killer = "import os\ndef f(x):\n    os._exit(3)\n"
    save_checkpoint(tmp_path / "ck2", "m", "f", [Policy.from_source(killer, "f")])
    with load_policy(tmp_path / "ck2", function_name="f") as policy:
        with pytest.raises(WorkerKilled):
            policy(1)


@needs_kernel
def test_a_resume_retires_a_checkpointed_worker_killer_and_progresses(tmp_path):
    killer = ("import os, signal\ndef f(x):\n    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n"
              "    except OSError:\n        pass\n    os._exit(1)\n")
    task = Task(preprocess=lambda x: ((x,), x), objective=lambda out, label, args: float(out == label))
    optimizer = ScriptedOptimizer(setup=[fence(killer), fence("def f(x):\n    return 0\n")],
                                  update=[fence("def f(x):\n    return x\n")])
    config = TrainerConfig(epochs=2, batch_size=2, n_responses=2, top_k=1, progress=False,
                           sandbox=SandboxConfig(workers=1, timeout_s=1.0))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run")
    result = trainer.fit(_module(tmp_path), task, [1, 2, 3, 4])
    assert result.best_policy.source == "def f(x):\n    return x\n"
    retired = [pid for r in result.history if r["kind"] == "train" for pid in r["retired"]]
    assert len(retired) == 1
    resumed = Trainer(optimizer, TrainerConfig(epochs=3, batch_size=2, n_responses=2, top_k=1, progress=False,
                                               sandbox=SandboxConfig(workers=1, timeout_s=1.0)),
                      run_dir=tmp_path / "run").fit(_module(tmp_path), task, [1, 2, 3, 4], resume=True)
    assert resumed.history[-1]["epoch"] == 2


# -- the pipeline: no orphans, no duplicates ------------------------------------------------------------

def test_a_route_process_dies_with_its_parent(tmp_path):
    # As sumo_world.run.runner starts a route: a forkserver child that watches the evaluator
    # (the forkserver itself outlives the evaluator while one of its children runs).
    code = textwrap.dedent("""
        import multiprocessing, os, time
        def child(evaluator):
            from langprop_common.processes import die_with
            die_with(evaluator)
            time.sleep(300)
        if __name__ == "__main__":
            ctx = multiprocessing.get_context("forkserver")
            p = ctx.Process(target=child, args=(os.getpid(),), daemon=True)
            p.start()
            print(p.pid, flush=True)
            time.sleep(300)
    """)
    path = tmp_path / "evaluator.py"
    path.write_text(code)
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.3)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(200):
        if not _alive(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the route process outlived its evaluator")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_rerun_records_a_route_once(tmp_path):
    from driving.dataset import SceneDataset, SceneRecord

    dataset = SceneDataset(tmp_path / "data")
    records = [SceneRecord(scene={"t": i}, label=None, meta={"route_id": "r1", "time_s": i}) for i in range(3)]
    dataset.append(records[:2], "collect-r1", replace=True)  # a half-written import
    dataset.append(records, "collect-r1", replace=True)       # the rerun
    assert len(dataset) == 3 and len(dataset.chunks()) == 1
    assert len(list((tmp_path / "data").rglob("*.jsonl.gz"))) == 1


def _module(tmp_path: Path) -> Module:
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "setup.txt").write_text("%% user\nWrite {{ function_name }}(x).\n")
    (tdir / "update.txt").write_text("%% user\n```python\n{{ code }}\n```\n"
                                     "{% for c in failures %}CASE:\n{{ c }}\n{% endfor %}")
    return Module("m", "f", tdir)


def test_strict_is_a_choice_of_the_pipeline_and_the_agent(monkeypatch):
    from langprop_driving.pipeline.config import TrainConfig
    from team_code.config import load_agent_config

    assert TrainConfig(sandbox_mode="strict").sandbox_mode == "strict"
    with pytest.raises(ValueError, match="strict"):
        TrainConfig(sandbox_mode="thread")
    monkeypatch.setenv("LANGPROP_SANDBOX_STRICT", "true")
    assert load_agent_config(None).sandbox_strict is True


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...)."""
    children: dict[int, list[int]] = {}
    for child, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.slow
@needs_kernel
def test_kill_9_of_evaluate_leaves_nothing_running(world_setup, tmp_path):
    # A real `langprop evaluate` of a sandboxed script: its route process, the forkserver, the
    # policy's worker and that worker's fork must all be gone after a kill -9 of the command.
    script = tmp_path / "slow.py"
    script.write_text("import time\ndef predict_speed_and_steering(scene):\n    time.sleep(0.05)\n"
                      "    return 'MOVE', 0.0\n")
    config = tmp_path / "agent.yaml"
    config.write_text("sandbox: true\n")
    command = [str(Path(sys.executable).parent / "langprop"), "evaluate", "--town", "testgrid",
               "--routes", str(world_setup["routes"]), "--towns-dir", str(world_setup["towns"]),
               "--agent", str(script), "--agent-config", str(config), "--results", str(tmp_path / "r.json"),
               "--traffic", "none", "--route-id", world_setup["ids"][1], "--no-progress"]
    evaluator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    for _ in range(1200):  # until the policy's worker and its fork run (a route process, 3 levels down)
        seen |= _descendants(evaluator.pid)
        if any("langprop_core.sandbox.worker" in _cmdline(p) for p in seen) and len(seen) >= 4:
            break
        time.sleep(0.05)
    else:
        evaluator.kill()
        pytest.fail("the route never started its policy worker")
    seen |= _descendants(evaluator.pid)
    evaluator.send_signal(signal.SIGKILL)
    evaluator.wait()
    for _ in range(200):
        if not any(_alive(p) for p in seen):
            break
        time.sleep(0.05)
    left = [p for p in seen if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
