"""Leaderboard-format results files, the summary table and the ``langprop results`` command."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from driving.penalties import INFRACTION_TYPES
from langprop_driving.cli.results_cmd import results as results_command
from sumo_world.scoring.records import Infraction, RouteOutcome, TrajectorySample
from sumo_world.scoring.leaderboard_statistics import LABELS, compute_global_record, route_config_id, route_record
from sumo_world.scoring.results import ResultsFile, ResultsFileError, load_results
from sumo_world.scoring.summary import format_comparison_table, format_summary_table, render_scores_chart


def _straight(n: int, speed: float) -> list[TrajectorySample]:
    return [TrajectorySample(time_s=i * 0.05, x=float(i), y=0.0, yaw_deg=0.0, speed_mps=speed) for i in range(n)]


def completed_with_collision() -> RouteOutcome:
    return RouteOutcome(
        route_id="3", town="Grid", status="Completed", route_completion_percent=100.0, route_length_m=1000.0,
        duration_game_s=120.0, duration_system_s=6.0, outside_route_lanes_percent=10.0,
        infractions=[Infraction("collisions_vehicle", 12.0, 5.0, 0.0,
                                "Agent collided against object with type=vehicle.car and id=7 at (x=5.0, y=0.0, z=0.0)",
                                actor_id=7)],
        trajectory=_straight(101, 5.0), meta={"agent": "builtin:follow"})


def blocked_after_red_light() -> RouteOutcome:
    return RouteOutcome(
        route_id="8", town="Grid", status="Failed - Agent got blocked", route_completion_percent=50.0,
        route_length_m=400.0, duration_game_s=300.0, duration_system_s=9.0,
        infractions=[Infraction("red_light", 20.0, 50.0, 0.0, "Agent ran a red light 12 at (x=50.0, y=0.0, z=0.0)"),
                     Infraction("vehicle_blocked", 290.0, 60.0, 0.0, "Agent got blocked at (x=60.0, y=0.0, z=0.0)")])


def test_route_record_scores_and_layout() -> None:
    record = route_record(completed_with_collision(), index=0, run_meta={"seed": 3})
    assert record["route_id"] == "RouteScenario_3" and record["index"] == 0
    assert set(record["infractions"]) == set(INFRACTION_TYPES)
    assert record["infractions"]["collisions_vehicle"][0].startswith("Agent collided against object")
    # outside-lanes driving gets the leaderboard's message and costs (1 - 10 %)
    assert "10.0% of the completed route" in record["infractions"]["outside_route_lanes"][0]
    assert record["scores"] == pytest.approx({"score_route": 100.0, "score_penalty": 0.54, "score_composed": 54.0})
    assert record["meta"]["route_length"] == 1000.0 and record["meta"]["seed"] == 3
    assert record["meta"]["route_config_id"] == "3" and record["meta"]["agent"] == "builtin:follow"


def test_global_record_arithmetic_on_two_routes() -> None:
    records = [route_record(completed_with_collision(), 0), route_record(blocked_after_red_light(), 1)]
    glob = compute_global_record(records)
    assert glob["scores"] == pytest.approx({"score_composed": (54.0 + 35.0) / 2, "score_route": 75.0,
                                            "score_penalty": (0.54 + 0.7) / 2})
    # sample standard deviation (n - 1 = 1)
    assert glob["scores_std_dev"]["score_composed"] == pytest.approx(math.sqrt((54 - 44.5) ** 2 + (35 - 44.5) ** 2))
    # infractions per km driven: route 0 drove 1.0 km, route 1 0.2 km
    assert glob["infractions"]["collisions_vehicle"] == pytest.approx(1.0)
    assert glob["infractions"]["outside_route_lanes"] == pytest.approx(1.0)
    assert glob["infractions"]["red_light"] == pytest.approx(5.0)
    assert glob["infractions"]["vehicle_blocked"] == pytest.approx(5.0)
    assert glob["status"] == "Failed" and glob["meta"]["total_length"] == 1400.0
    assert glob["meta"]["exceptions"] == [["RouteScenario_8", 1, "Failed - Agent got blocked"]]
    assert compute_global_record(records[:1])["scores_std_dev"]["score_composed"] == "NaN"


def test_results_file_resume_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    first = ResultsFile(path, run_meta={"run": "a"})
    first.set_total_routes(2)
    first.add(completed_with_collision(), index=0)
    assert load_results(path)["entry_status"] == "Started"

    resumed = ResultsFile(path)  # a new process resuming the run
    assert resumed.finished_route_ids() == {"3"} and resumed.progress == [1, 2]
    resumed.add(blocked_after_red_light(), index=1)
    data = load_results(path)
    checkpoint = data["_checkpoint"]
    assert [r["route_id"] for r in checkpoint["records"]] == ["RouteScenario_3", "RouteScenario_8"]
    assert checkpoint["progress"] == [2, 2]
    assert checkpoint["global_record"]["scores"]["score_composed"] == pytest.approx(44.5)
    assert data["labels"] == list(LABELS) and data["values"][0] == "44.500"
    assert data["entry_status"] == "Finished with agent errors" and data["eligible"] is True
    assert json.loads(path.read_text())["_checkpoint"]["records"][0]["meta"]["run"] == "a"

    fresh = ResultsFile(path, resume=False)
    assert fresh.records() == [] and (tmp_path / "results.json.bak").is_file()


def test_broken_results_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('{"_checkpoint": {"records": [')
    with pytest.raises(ResultsFileError, match="cut.json: not valid JSON"):
        load_results(path)
    path.write_text('{"_checkpoint": {"records": [{"route_id": "RouteScenario_0"}]}}')
    with pytest.raises(ResultsFileError, match="record 0 has no 'status'"):
        load_results(path)


def test_summary_table_and_chart(tmp_path: Path) -> None:
    records = [route_record(completed_with_collision(), 0), route_record(blocked_after_red_light(), 1)]
    table = format_summary_table(records)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["route", "status", "DS", "RC", "penalty", "off_lane%"]
    row = next(line for line in lines if line.startswith("RouteScenario_8"))
    assert "35.00" in row and "50.00" in row and "0.700" in row
    mean = next(line for line in lines if line.startswith("mean (2 routes)"))
    assert "1 completed" in mean and "44.50" in mean and "75.00" in mean
    comparison = format_comparison_table({"agent A": records, "agent B": records[:1]})
    assert "agent A" in comparison and "54.00" in comparison
    chart = render_scores_chart(records, tmp_path / "chart.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_command(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    results_file = ResultsFile(path)
    results_file.set_total_routes(2)
    results_file.add(completed_with_collision(), 0)
    results_file.add(blocked_after_red_light(), 1)
    other = tmp_path / "other.json"
    ResultsFile(other).add(completed_with_collision(), 0)
    runner = CliRunner()
    result = runner.invoke(results_command, [str(path), str(other), "--chart", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert "(2/2 routes, Finished with agent errors)" in result.output
    assert "RouteScenario_8" in result.output and "44.50" in result.output
    assert (tmp_path / "c.png").is_file() and "chart written" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = runner.invoke(results_command, [str(bad)])
    assert result.exit_code != 0 and "bad.json" in result.output


def test_leaderboard_2_0_results_are_read_and_summarised(tmp_path: Path) -> None:
    record = {
        "route_id": "RouteScenario_4_rep1", "index": 0, "status": "Perfect", "num_infractions": 1,
        "infractions": {"collisions_layout": [], "collisions_pedestrian": [], "collisions_vehicle": [],
                        "outside_route_lanes": [], "red_light": [], "route_dev": [], "route_timeout": [],
                        "stop_infraction": [], "vehicle_blocked": [], "yield_emergency_vehicle_infractions": [],
                        "scenario_timeouts": [], "min_speed_infractions": ["Average agent speed is 60%"]},
        "scores": {"score_route": 100.0, "score_penalty": 0.9, "score_composed": 90.0},
        "meta": {"route_length": 500.0, "duration_game": 60.0, "duration_system": 30.0},
    }
    document = {"_checkpoint": {"records": [record], "progress": [1, 1],
                                "global_record": {"scores_mean": {"score_composed": 90.0}}},
                "entry_status": "Finished", "eligible": True, "labels": [], "values": [], "sensors": []}
    path = tmp_path / "lb2.json"
    path.write_text(json.dumps(document))
    loaded = load_results(path)
    (only,) = loaded["_checkpoint"]["records"]
    assert route_config_id(only) == "4"
    table = format_summary_table(loaded["_checkpoint"]["records"])
    assert "min_speed_infractions" in table.splitlines()[0] and "1 completed" in table
