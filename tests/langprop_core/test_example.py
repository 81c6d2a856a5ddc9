"""The example task and the ``langprop example`` command."""
from __future__ import annotations

import json

from click.testing import CliRunner

from langprop_core.examples.thermostat import ACTIONS, expert_action, make_dataset, make_task
from langprop_core.inference import load_policy
from langprop_driving.cli.example_cmd import example


def test_dataset_is_deterministic_and_labelled_by_the_rule():
    data = make_dataset(50, seed=4)
    assert data == make_dataset(50, seed=4) != make_dataset(50, seed=5)
    assert {d["action"] for d in data} <= set(ACTIONS)
    assert all(d["action"] == expert_action(d["temperature_c"], d["rate_c_per_min"]) for d in data)
    task = make_task()
    args, label = task.preprocess(data[0])
    assert task.objective(label, label, args) == 1.0


def test_example_command_trains_offline_and_checkpoint_loads(tmp_path, monkeypatch):
    for var in ("OPENAI_API_KEY", "LANGPROP_LLM_BASE_URL", "OPENAI_BASE_URL", "LANGPROP_OPTIMIZER",
                "LANGPROP_LLM_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(example, ["--run-dir", str(run_dir), "--epochs", "2", "--in-process",
                                          "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "optimizer: mutation" in result.output and "no LLM endpoint configured" in result.output
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["kind"] == "train"]
    assert len(train) == 16 and (run_dir / "training_curve.png").is_file()
    # Mutation improves on the seed script's first batch.
    assert max(r["best_priority"] for r in train[1:]) > train[0]["best_priority"]
    with load_policy(run_dir, sandbox=False) as fn:
        assert fn(10.0, 0.0) == "heat" and fn(30.0, 0.0) == "cool"

    resumed = CliRunner().invoke(example, ["--run-dir", str(run_dir), "--epochs", "3", "--in-process",
                                           "--no-progress", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "train"] == list(range(1, 25))


def test_resume_with_a_different_batch_size_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--run-dir", str(run_dir), "--epochs", "1", "--in-process", "--no-progress",
            "--optimizer", "mutation"]
    assert CliRunner().invoke(example, args).exit_code == 0
    result = CliRunner().invoke(example, args + ["--resume", "--batch-size", "16"])
    assert result.exit_code != 0
    assert "batch_size was 32, now 16" in str(result.exception)
