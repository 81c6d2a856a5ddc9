"""The main job, shrunk: killed after collection, resumed, finished, then rerun (nothing redone)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driving.dataset import SceneDataset
from langprop_core.llm.factory import OptimizerConfig
from langprop_driving.pipeline.config import TrainConfig
from langprop_driving.pipeline.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def tiny_config(work_dir: Path) -> DemoConfig:
    # two epochs: after one the offline population is the seed and its clones, and selection
    # has no second script to drive
    return DemoConfig(work_dir=work_dir, n_train_routes=1, n_val_routes=1, dagger_iterations=1, workers=2,
                      train=TrainConfig(epochs=2, batch_size=32, max_keep=4, record_stride=10, max_records=200,
                                        progress=False, sandbox_mode="inprocess"))


_CHILD = """
import sys
from pathlib import Path
from langprop_core.llm.factory import OptimizerConfig
from langprop_driving.pipeline.demo import run_demo
from tests.langprop_driving.pipeline.test_demo import tiny_config

if __name__ == "__main__":
    run_demo(tiny_config(Path(sys.argv[1])), OptimizerConfig(kind="mutation"), progress=False)
"""


def run_until_collected_then_kill(work_dir: Path) -> None:
    script = work_dir.parent / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(script), str(work_dir)], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (work_dir / "stages" / "collect.json").exists():
            assert child.poll() is None, "the demo ended before collecting"
            assert time.monotonic() < deadline, "collection did not finish in 120 s"
            time.sleep(0.1)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the demo and its route processes, like a kill -9
        child.wait()


def test_demo_resumes_after_a_kill_and_reports(tmp_path: Path):
    work_dir = tmp_path / "demo"
    run_until_collected_then_kill(work_dir)
    dataset = SceneDataset(work_dir / "data")
    collected = {c["file"] for c in dataset.chunks()}
    assert dataset.runs() == ["collect-0", "collect-1"]

    lines: list[str] = []
    result = run_demo(tiny_config(work_dir), OptimizerConfig(kind="mutation"), echo=lines.append, progress=False)
    text = "\n".join(lines)
    # the expert data of the killed run was kept, not collected again
    assert {c["file"] for c in dataset.chunks() if c["run_id"].startswith("collect")} == collected
    assert "optimizer: mutation" in text and "no LLM" in text
    assert "LLM, all trainings: 0 LLM calls (0 replayed from the cache), 0 tokens in, 0 out" in text
    for label in ("expert", "seed script", "offline-trained", "DAgger-trained"):
        assert label in result.rows_train and len(result.rows_train[label]) == 1
        assert len(result.rows_val[label]) == 1
    assert result.rows_train["expert"][0]["scores"]["score_composed"] > 50.0
    assert "Held-out routes (1)" in result.tables and "DAgger-trained" in result.tables
    # the demo town's generated scenario file ran along the routes, and the tables count its scenarios
    assert (work_dir / "routes" / "scenarios.json").is_file() and "scen_inf" in result.tables
    assert "scenarios" in result.rows_train["expert"][0]["meta"]
    for name in ("summary", "training curve (offline)", "training curve (dagger-1)"):
        assert Path(result.outputs[name]).is_file()
    pictures = list(Path(result.outputs["bird's-eye pictures"]).glob("*.png"))
    assert len(pictures) == 2
    summary = json.loads((work_dir / "report" / "dagger.json").read_text())
    assert summary["iterations"][0]["driven_policy_id"] == result.trainings[0].best_policy_id
    # select by driving: every stage drove its top scripts on the held-out route, and the deployed
    # script's validation DS never fell; the summary shows both figures, the correlation and beta
    ds = [t.validation_ds for t in result.trainings]
    assert all(d is not None for d in ds) and ds == sorted(ds)
    assert all(len(t.candidates) >= 2 for t in result.trainings)
    report = (work_dir / "report" / "summary.md").read_text()
    assert "Select by driving" in report and "| offline |" in report and "| dagger-1 |" in report
    assert all(t.min_gain == 5.0 for t in result.trainings) and "more than 5 DS points better" in report
    assert "beta 0.00" in report
    assert "validation DS" in text

    # a finished demo reruns from its markers: same table, no new data
    n_records = len(dataset)
    again = run_demo(tiny_config(work_dir), OptimizerConfig(kind="mutation"), echo=lambda _: None, progress=False)
    assert again.tables == result.tables
    assert len(dataset) == n_records
