"""Select by driving in the embedded world: scripts of known quality, real rollouts on a held-out route.

The demo's generated town with light traffic: the expert drives route "1" for training data; route "3"
(where the expert scores 100, a script that always moves runs a stop sign and hits a car, a stopped one
is blocked) is the validation route.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from driving.dataset import SceneDataset
from langprop_core.checkpoint import load_checkpoint
from langprop_core.llm.factory import OptimizerConfig
from langprop_core.policy import Policy
from langprop_driving.pipeline.collect import collect
from langprop_driving.pipeline.config import TrainConfig, WorkDir, WorldConfig
from langprop_driving.pipeline.demo import DemoConfig, prepare_town_and_routes, scenario_file_of
from langprop_driving.pipeline.rollouts import finished_route_record
from langprop_driving.pipeline.train import train_stage
from langprop_driving.pipeline.validation import RoadValidator, ValidationConfig, validation_key
from tests.helpers.driving_scripts import SCRIPTS

pytestmark = pytest.mark.slow

STOPPED = "def predict_speed_and_steering(scene):\n    return 'STOP', 0.0\n"
RECKLESS = SCRIPTS[1]  # always moves toward the route target
EXPERT = '''from expert import Expert

_EXPERT = Expert()


def predict_speed_and_steering(scene):
    label = _EXPERT.predict(scene)
    return label.target_speed_mps, label.steering_deg
'''


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory):
    work = WorkDir(tmp_path_factory.mktemp("selection"))
    towns_dir, routes, _, _ = prepare_town_and_routes(work, DemoConfig(work_dir=work.root))
    world = WorldConfig(town=DemoConfig().town, towns_dir=towns_dir, traffic="light", seed=0, workers=2,
                        blocked_time_s=20.0)
    results = collect(work, world, routes, ["1"], progress=False)
    assert results[0].record is not None
    return work, world, routes


def _train(work: WorkDir, name: str, seeds, optimizer, incumbent, world, routes, **train):
    config = TrainConfig(**{"epochs": 1, "batch_size": 40, "n_responses": 2, "top_k": 2, "record_stride": 4,
                            "max_records": 80, "progress": False, "sandbox_mode": "inprocess", **train})
    selection = ValidationConfig(world=world, routes=routes, route_ids=("3",), top_k=3, sandbox=False)
    return train_stage(work, name, SceneDataset(work.data), ["1"], None, optimizer, config, seed_sources=seeds,
                       selection=selection, incumbent=incumbent, progress=False)


def test_the_incumbent_stays_when_every_candidate_drives_worse(collected, tmp_path: Path):
    work, world, routes = collected
    expert_script = tmp_path / "expert_script.py"
    expert_script.write_text(EXPERT)
    outcome = _train(work, "worse", [STOPPED, RECKLESS], OptimizerConfig(kind="mutation", seed=0),
                     str(expert_script), world, routes)
    ck = load_checkpoint(Path(outcome.checkpoint))
    deployed = ck.best
    assert deployed.source == EXPERT and outcome.kept_incumbent is True
    assert outcome.best_policy_id == deployed.id
    rows = outcome.candidates
    candidates = [r for r in rows if r["id"] != deployed.id]
    assert len(candidates) == 3  # the top 3 by objective: stopped and reckless scripts and their mutants
    # the expert drives the route well; every stopped or reckless candidate drives it worse
    assert outcome.validation_ds >= 60.0
    assert all(r["validation"] < outcome.validation_ds for r in candidates)
    # both figures per script are in the checkpoint index
    selection = ck.extra["selection"]
    assert selection["deployed_id"] == deployed.id and selection["candidates"] == rows
    assert all(r["objective"] is not None for r in candidates)
    assert (Path(outcome.run_dir) / "objective_vs_validation.png").is_file()


def test_with_an_llm_serving_a_better_script_selection_deploys_it(collected, fake_llm_server, tmp_path: Path):
    work, world, routes = collected
    fake_llm_server.responder = lambda messages: f"Safer.\n\n```python\n{SCRIPTS[3]}```\n"
    seed = tmp_path / "reckless.py"
    seed.write_text(RECKLESS)
    optimizer = OptimizerConfig(kind="openai", base_url=fake_llm_server.base_url, api_key="test", model="fake")
    outcome = _train(work, "llm", [RECKLESS], optimizer, str(seed), world, routes, n_responses=1, top_k=1,
                     batch_size=20)
    assert fake_llm_server.chat_requests
    ck = load_checkpoint(Path(outcome.checkpoint))
    assert "# quality 3" in ck.best.source and outcome.kept_incumbent is False
    by_id = {r["id"]: r for r in outcome.candidates}
    reckless = next(r for r in by_id.values() if r["id"] != ck.best.id)
    assert by_id[ck.best.id]["validation"] > reckless["validation"]


def test_validation_drives_the_routes_with_the_worlds_scenarios(collected):
    # Candidates are judged under the conditions the evaluation drives them in: a world with a
    # scenario file runs its scenarios in validation too, and the scores are keyed apart.
    work, world, routes = collected
    scenarios = scenario_file_of(work, DemoConfig(work_dir=work.root))
    with_scenarios = dataclasses.replace(world, scenarios=scenarios)
    config = ValidationConfig(world=with_scenarios, routes=routes, route_ids=("3",), top_k=1, sandbox=False)
    policy = Policy.from_source(EXPERT, "predict_speed_and_steering")
    scores = RoadValidator(work, "scenarios", config, progress=False)([policy])
    assert set(scores) == {policy.id}
    record = finished_route_record(work.root / "validate" / "scenarios" / "results" / policy.id / "3.json")
    assert Path(record["meta"]["scenario_file"]).resolve() == scenarios.resolve()
    assert [s["type"] for s in record["meta"]["scenarios"]] == ["Scenario4"]
    without = dataclasses.replace(config, world=world)
    assert validation_key(config) != validation_key(without)
