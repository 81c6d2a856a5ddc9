"""The trainer: setup phase, failures scored and survived, selection, callbacks, exact resume."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from langprop_core.callbacks import Callback
from langprop_core.checkpoint import load_checkpoint
from langprop_core.metrics import read_metrics
from langprop_core.sandbox import SandboxConfig
from langprop_core.trainer import SetupError, Trainer, TrainerConfig
from tests.helpers.scripted_training import TASK, ScriptedOptimizer, checkpoint_snapshot, doubling_module, fence

PERFECT = "def f(x):\n    return 2 * x\n"
DECENT = "def f(x):\n    print('x is', x)\n    return x + x if x < 5 else 0\n"
BAD = {
    "loop": "def f(x):\n    while True:\n        pass\n",
    "memory": "def f(x):\n    return len(bytearray(10**9))\n",
    "exit": "import os\ndef f(x):\n    os._exit(1)\n",
    "raise": "def f(x):\n    raise RuntimeError('boom')\n",
    "wrong_type": "def f(x):\n    return str(2 * x)\n",
}


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer, module):
        self.events.append("fit_start")

    def on_batch_end(self, trainer, module, record):
        self.events.append("batch")

    def on_epoch_end(self, trainer, module, record):
        self.events.append("epoch")

    def on_fit_end(self, trainer, module, result):
        self.events.append("fit_end")


@pytest.mark.slow
def test_bad_scripts_are_scored_as_exceptions_and_training_completes(tmp_path):
    replies = (["no code at all", fence("def f(x)\n    return x\n"), fence("def g(x):\n    return x\n")]
               + [fence(s) for s in BAD.values()] + [fence(DECENT)])
    optimizer = ScriptedOptimizer(setup=replies, update=[fence(PERFECT)])
    recorder = Recorder()
    config = TrainerConfig(epochs=2, batch_size=4, n_responses=len(replies), top_k=1,
                           sandbox=SandboxConfig(workers=2, timeout_s=0.2, memory_mb=256),
                           progress=False)
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run", callbacks=[recorder])
    module = doubling_module(tmp_path)
    result = trainer.fit(module, TASK, list(range(8)), val_data=[10], resume=False)

    assert result.best_policy.source == PERFECT
    assert result.best_policy.parent_id is not None and result.best_policy.generation == 1
    assert dict(trainer.rejected) == {"no_code": 1, "syntax_error": 1, "missing_function": 1}
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "double")
    by_source = {p.source: p for p in ck.policies}
    # The script that ends its worker on every call is scored, then retired.
    retired = [pid for r in result.history if r["kind"] == "train" for pid in r["retired"]]
    assert BAD["exit"] not in by_source and len(retired) == 1
    for name, src in BAD.items():
        if name == "exit":
            continue
        p = by_source[src]
        assert p.n_calls > 0 and p.n_exceptions == p.n_calls, name
        # every batch scored it as exceptions; its priority is relative to the
        # batches, below every script that returned something
        assert p.scores and set(p.scores) == {-1.0}, name
        assert p.priority < by_source[DECENT].priority, name
    assert ck.best.sampling == {"model": "test-model", "temperature": 0.0}
    assert ck.best.prompt[0]["role"] == "user"
    # The update prompt of the decent parent shows its failures, printed output included.
    update = optimizer.requests[1]
    text = update.messages[0].content
    assert update.parent_source == DECENT and "CASE:" in text
    case = re.search(r"Inputs: \((\d+),\)\nExpected: (\d+)\nActual output: 0\n", text)
    assert case and int(case.group(2)) == 2 * int(case.group(1)) >= 10
    assert f"Printed output:\nx is {case.group(1)}" in text
    assert recorder.events == ["fit_start", "batch", "batch", "epoch", "batch", "batch", "epoch", "fit_end"]
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in lines if r["kind"] == "val"] == [-1, 0, 1]
    assert lines[-1]["best_val_score"] == 1.0
    assert (tmp_path / "run" / "training_curve.png").stat().st_size > 1000


def test_perfect_scripts_are_not_sent_for_rewriting(tmp_path):
    optimizer = ScriptedOptimizer(setup=[], update=[fence(DECENT)])
    module = doubling_module(tmp_path, seed_sources=[PERFECT])
    config = TrainerConfig(epochs=1, batch_size=2, top_k=2, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    Trainer(optimizer, config, run_dir=tmp_path / "run").fit(module, TASK, range(6))
    assert optimizer.requests == []


def test_update_calls_run_for_top_k_and_children_join(tmp_path):
    optimizer = ScriptedOptimizer(setup=[], update=[fence(PERFECT), fence(PERFECT + "\n# same\n")])
    module = doubling_module(tmp_path, seed_sources=[DECENT, "def f(x):\n    return x\n"])
    config = TrainerConfig(epochs=1, batch_size=8, top_k=2, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run")
    result = trainer.fit(module, TASK, range(16))
    assert len(optimizer.requests) == 2  # one batch proposes (the last does not)
    assert {r.parent_source for r in optimizer.requests} == set(module.seed_sources)
    assert trainer.rejected["duplicate"] == 3  # the same child from both parents, twice each
    assert result.best_policy.source == PERFECT


def test_setup_without_usable_scripts_fails_clearly(tmp_path):
    optimizer = ScriptedOptimizer(setup=["no code"])
    config = TrainerConfig(progress=False, sandbox=SandboxConfig(mode="inprocess"))
    with pytest.raises(SetupError, match="no_code"):
        Trainer(optimizer, config, run_dir=tmp_path / "run").fit(doubling_module(tmp_path), TASK, range(4))


def test_evaluate_scores_every_script(tmp_path):
    module = doubling_module(tmp_path, seed_sources=[PERFECT, DECENT])
    module.seed()
    trainer = Trainer(ScriptedOptimizer([]), TrainerConfig(progress=False,
                                                         sandbox=SandboxConfig(mode="inprocess")))
    scores = trainer.evaluate(module, TASK, range(10))
    assert sorted(scores.values()) == [0.5, 1.0]


_TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from langprop_core.callbacks import Callback
    from langprop_core.examples.thermostat import seed_sources
    from langprop_core.examples.thermostat.train import train_example
    from langprop_core.llm.mutation import MutationOptimizer
    from langprop_core.sandbox import SandboxConfig

    class Announce(Callback):
        def on_batch_end(self, trainer, module, record):
            print("step", record["step"], flush=True)
            time.sleep(0.05)  # the parent kills it while it sleeps or in the next batch

    run_dir, resume = Path(sys.argv[1]), sys.argv[2] == "resume"
    train_example(run_dir, epochs=2, batch_size=16, n_train=96, n_val=32, resume=resume,
                  optimizer=MutationOptimizer(seed=3, seed_sources=seed_sources()),
                  sandbox=SandboxConfig(workers=2), progress=False, callbacks=(Announce(),))
    print("done", flush=True)
""")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_checkpoint(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_TRAIN_SCRIPT)
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def run(run_dir, mode):
        return subprocess.run([sys.executable, str(script), str(run_dir), mode], env=env,
                              capture_output=True, text=True, timeout=120)

    full = run(tmp_path / "full", "fresh")
    assert full.returncode == 0, full.stderr
    assert full.stdout.count("step") == 12

    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), "fresh"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.strip() == "step 4":  # epoch 0 has 6 batches: this is mid-epoch
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = json.loads((tmp_path / "killed" / "checkpoints" / "thermostat" / "trainer_state.json").read_text())
    # Normally epoch 0, batch 4 or 5 (mid-epoch); a slow machine may let it run further.
    assert 4 <= state["step"] < 12

    resumed = run(tmp_path / "killed", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "step 4" not in resumed.stdout and "step 12" in resumed.stdout
    assert checkpoint_snapshot(tmp_path / "killed") == checkpoint_snapshot(tmp_path / "full")
    metrics = read_metrics(tmp_path / "killed" / "metrics.jsonl")
    assert [r["step"] for r in metrics if r["kind"] == "train"] == list(range(1, 13))


def test_top_k_llm_calls_run_concurrently(tmp_path):
    import threading

    barrier = threading.Barrier(2, timeout=10)

    class Concurrent(ScriptedOptimizer):
        def propose(self, request):
            if request.parent_source is not None:
                barrier.wait()  # breaks (raises) unless both parents' calls are in flight together
            return super().propose(request)

    optimizer = Concurrent(setup=[], update=[fence(PERFECT)])
    module = doubling_module(tmp_path, seed_sources=[DECENT, "def f(x):\n    return x\n"])
    config = TrainerConfig(epochs=1, batch_size=4, top_k=2, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    result = Trainer(optimizer, config, run_dir=tmp_path / "run").fit(module, TASK, range(8))
    assert len(optimizer.requests) == 2 and result.best_policy.source == PERFECT


def test_original_langprop_checkpoint_trains_further(tmp_path):
    orig = tmp_path / "orig"
    orig.mkdir()
    (orig / "config.json").write_text(json.dumps({"name": "f", "step": 1, "records": {
        "0": {"main": {"priority": 0.5, "count": 4, "avg_score": 0.5}}}}))
    (orig / "record_0.txt").write_text(DECENT)
    seeds = [p.source for p in load_checkpoint(orig).policies]
    optimizer = ScriptedOptimizer(setup=[], update=[fence(PERFECT)])
    config = TrainerConfig(epochs=1, batch_size=4, progress=False, sandbox=SandboxConfig(mode="inprocess"))
    result = Trainer(optimizer, config, run_dir=tmp_path / "run").fit(
        doubling_module(tmp_path, seed_sources=seeds), TASK, range(8))
    assert result.best_policy.source == PERFECT
    assert load_checkpoint(tmp_path / "run").best.parent_id == load_checkpoint(orig).best.id
