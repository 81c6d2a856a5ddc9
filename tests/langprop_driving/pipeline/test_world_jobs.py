"""One mapping from a world to route jobs: evaluation, collection, validation and DAgger drive a route alike.

Validation once drove its routes under other conditions than evaluation (a twin
of the mapping had drifted). Here each stage's route runs are captured where
they reach the runner, and the settings the runner would run a route with
(``sumo_world.run.runner.route_settings``: seed, traffic, time limits, scenarios)
must be equal, as must the town, routes and backend settings.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import sumo_world.run.runner as runner
from driving.dataset import SceneDataset
from langprop_core.policy import Policy
from langprop_driving.pipeline.config import WorkDir, WorldConfig
from langprop_driving.pipeline.evaluate import evaluate_agent, team_code_agent
from langprop_driving.pipeline.rollouts import record_rollouts
from langprop_driving.pipeline.validation import RoadValidator, ValidationConfig

SCRIPT = "def predict_speed_and_steering(scene):\n    return 'MOVE', 0.0\n"


@pytest.fixture
def captured(monkeypatch) -> dict[str, list]:
    """The EvaluationConfigs each stage hands the runner (nothing is driven)."""
    seen: dict[str, list] = {"evaluate": [], "evaluate_all": []}

    def evaluate(config):
        seen["evaluate"].append(config)
        return {}

    def evaluate_all(configs, **kwargs):
        seen["evaluate_all"].extend(configs)
        return [{} for _ in configs]

    monkeypatch.setattr(runner, "evaluate", evaluate)
    monkeypatch.setattr(runner, "evaluate_all", evaluate_all)
    return seen


def _route_run(config) -> tuple:
    """What decides how a route of ``config`` is driven, besides the agent."""
    return (runner.route_settings(config), config.town, config.towns_dir, Path(config.routes).resolve(),
            list(config.route_ids or []), config.workers)


def test_every_stage_builds_the_same_route_job_from_one_world(captured, shared_data, tmp_path):
    routes = shared_data / "carla_town01" / "routes_town01_training.xml"
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text('{"available_scenarios": []}')
    # every setting away from its default, so that a stage that drops one differs
    world = WorldConfig(town="Town01", towns_dir=tmp_path / "towns", traffic="busy", seed=7, workers=2,
                        timeout_factor=1.5, blocked_time_s=33.0, scenarios=scenarios)
    work = WorkDir(tmp_path / "work")

    evaluate_agent("expert", world, routes, tmp_path / "eval.json", route_ids=["0"], progress=False)
    record_rollouts(work, "collect", world, routes, ["0"], str(team_code_agent("expert_agent")),
                    SceneDataset(work.data), agent_settings={"sandbox": False}, relabel=False, progress=False)
    record_rollouts(work, "dagger-1", world, routes, ["0"], str(team_code_agent("langprop_agent")),
                    SceneDataset(work.data), agent_settings={"checkpoint": "x.py"}, progress=False)
    validator = RoadValidator(work, "offline", ValidationConfig(world=world, routes=routes, route_ids=("0",)),
                              progress=False)
    with pytest.raises(RuntimeError, match="validation rollouts failed"):  # nothing was driven
        validator([Policy.from_source(SCRIPT, "predict_speed_and_steering")])

    evaluation, = captured["evaluate"]
    collection, dagger, validation = captured["evaluate_all"]
    expected = _route_run(evaluation)
    assert expected[0].seed == 7 and expected[0].blocked_time_s == 33.0 and expected[0].timeout_factor == 1.5
    assert expected[0].traffic == "busy" and Path(expected[0].scenarios) == scenarios
    for stage in (collection, dagger, validation):
        assert _route_run(stage) == expected
