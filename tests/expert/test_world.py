"""The expert agent drives a generated town in the embedded world (closed loop, real traffic)."""
from __future__ import annotations

from pathlib import Path

import pytest

from driving.dataset import SceneDataset

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_expert_agent_completes_a_route_without_rule_infractions(tmp_path, monkeypatch):
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.random_routes import random_routes
    from sumo_world.routes.files import write_routes
    from sumo_world.run.runner import EvaluationConfig, evaluate
    from sumo_world.towns.store import TownStore

    town = TownStore(tmp_path / "towns").generate("expert_grid", kind="grid", size=3, seed=3)
    routes = random_routes(RoadNetwork.load(town.net_path), 1, seed=3, town="expert_grid",
                           min_length_m=200.0, max_length_m=350.0)
    routes_file = write_routes(routes, tmp_path / "routes.xml")
    monkeypatch.setenv("LANGPROP_RECORD_DIR", str(tmp_path / "scenes"))
    results = evaluate(EvaluationConfig(
        town="expert_grid", routes=routes_file, agent=str(REPO_ROOT / "team_code" / "expert_agent.py"),
        results=tmp_path / "results.json", towns_dir=tmp_path / "towns", traffic="light", seed=3,
        progress=False))
    record = results["_checkpoint"]["records"][0]
    assert record["status"] == "Completed", record
    assert record["scores"]["score_route"] == pytest.approx(100.0)
    for kind in ("red_light", "stop_infraction", "collisions_layout", "route_dev", "vehicle_blocked"):
        assert not record["infractions"].get(kind), (kind, record["infractions"])
    # The recorded scenes carry the expert's labels, and relabelling reproduces them.
    from expert import Expert

    expert = Expert()
    recorded = list(SceneDataset(tmp_path / "scenes"))
    assert len(recorded) > 100
    assert all(r.label == expert.predict(r.scene) for r in recorded[::25])
