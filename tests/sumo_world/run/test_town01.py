"""CARLA's Town01, imported from OpenDRIVE, with the first leaderboard-1.0 training route."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from langprop_driving.cli.evaluate_cmd import evaluate as evaluate_command
from sumo_world.routes.files import read_routes
from sumo_world.run.runner import EvaluationConfig, evaluate
from sumo_world.towns.store import TownStore


def test_town01_first_training_route_completes(shared_data: Path, tmp_path: Path) -> None:
    towns = tmp_path / "towns"
    TownStore(towns).import_opendrive(shared_data / "carla_town01" / "Town01.xodr")
    routes_file = shared_data / "carla_town01" / "routes_town01_training.xml"
    first = read_routes(routes_file)[0]
    config = EvaluationConfig(town="Town01", routes=routes_file, agent="builtin:follow", route_ids=[first.route_id],
                              results=tmp_path / "town01.json", towns_dir=towns, traffic="none", progress=False,
                              warmup_s=1.0)
    data = evaluate(config)
    record = data["_checkpoint"]["records"][0]
    assert record["status"] == "Completed"
    assert record["scores"]["score_route"] == 100.0
    assert record["meta"]["town"] == "Town01"
    # The dense route follows the lanes from the first to the last waypoint: at least the straight-line
    # distances between the sparse waypoints, and not wildly longer.
    sparse = sum(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5
                 for a, b in zip(first.waypoints, first.waypoints[1:]))
    length = record["meta"]["route_length"]
    assert sparse - 1.0 <= length <= 1.5 * sparse + 50.0
    assert length / 7.0 < record["meta"]["duration_game"] < length / 4.0 + 20.0
    assert record["meta"]["outside_route_lanes_percent"] < 5.0
    assert data["_checkpoint"]["progress"] == [1, 1]


def test_evaluate_command_prints_summary_and_rejects_unknown_town(shared_data: Path, tmp_path: Path) -> None:
    towns = tmp_path / "towns"
    TownStore(towns).import_opendrive(shared_data / "carla_town01" / "Town01.xodr")
    routes_file = shared_data / "carla_town01" / "routes_town01_training.xml"
    first = read_routes(routes_file)[0].route_id
    runner = CliRunner()
    args = ["--town", "Town01", "--routes", str(routes_file), "--agent", "builtin:stopped", "--towns-dir", str(towns),
            "--traffic", "none", "--route-id", first, "--results", str(tmp_path / "cli.json"), "--no-progress",
            "--timeout-factor", "0.01"]
    result = runner.invoke(evaluate_command, args)
    assert result.exit_code == 0, result.output
    assert f"RouteScenario_{first}" in result.output and "Failed - Agent timed out" in result.output
    assert (tmp_path / "cli.json").is_file()

    result = runner.invoke(evaluate_command, [*args[:1], "Town07", *args[2:]])
    assert result.exit_code != 0
    assert "Town07" in result.output

    result = runner.invoke(evaluate_command, ["--world", "carla", "--routes", str(routes_file), "--agent", "a.py"])
    assert result.exit_code == 0 and "run_evaluation.sh" in result.output
