"""The demo's shipped LLM recording replays on this revision's prompts, every reply used, nothing missed."""
from __future__ import annotations

import dataclasses

import pytest

from langprop_core.llm.factory import OptimizerConfig
from langprop_driving.pipeline.demo import DemoConfig, demo_optimizer_config, run_demo
from langprop_driving.pipeline.recorded_run import shipped_demo_recording
from sumo_world.scoring.summary import mean_scores

pytestmark = pytest.mark.slow


def test_the_demo_replays_its_shipped_recording_without_a_miss(tmp_path):
    recording = shipped_demo_recording()
    assert recording is not None, "the package ships the demo's recorded LLM run"
    # with nothing configured, the demo replays the recording (the mutation baseline where it misses) ...
    config, chosen = demo_optimizer_config(OptimizerConfig())
    assert chosen == recording and config.on_miss == "mutation"
    # ... here a miss is an error: a prompt that changed since the recording fails this test (re-record:
    # see langprop_driving/pipeline/recorded_run.py)
    strict = dataclasses.replace(config, on_miss="error")
    result = run_demo(DemoConfig(work_dir=tmp_path / "demo", workers=2, pictures=False), strict,
                      echo=lambda _: None, progress=False)
    # every recorded reply replayed, none asked anew
    assert sum(t.llm["cached_calls"] for t in result.trainings) == recording.replies
    assert sum(t.llm["calls"] for t in result.trainings) == 0
    assert recording.results is not None
    for label, recorded in recording.results.items():
        assert mean_scores(result.rows_train[label])["score_composed"] == pytest.approx(recorded["train"], abs=0.01)
        assert mean_scores(result.rows_val[label])["score_composed"] == pytest.approx(recorded["held_out"], abs=0.01)
