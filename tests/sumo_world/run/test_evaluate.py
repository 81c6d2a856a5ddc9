"""End-to-end runs of the embedded world: built-in agents on a generated town, results JSON, errors."""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from driving.penalties import INFRACTION_TYPES, infraction_penalty
from sumo_world.scoring.leaderboard_statistics import LABELS
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.routes.files import RouteFileError, read_routes, write_routes
from sumo_world.run.runner import STATUS_CRASHED, EvaluationConfig, EvaluationError, evaluate
from sumo_world.towns.info import TownNotFoundError
from sumo_world.towns.store import TownStore
from tests.fixtures.small_world import TOWN


def _config(setup: dict, tmp_path: Path, **overrides) -> EvaluationConfig:
    values = dict(town=TOWN, routes=setup["routes"], agent="builtin:follow", results=tmp_path / "results.json",
                  towns_dir=setup["towns"], traffic="none", seed=0, progress=False, blocked_time_s=6.0,
                  warmup_s=2.0)
    values.update(overrides)
    return EvaluationConfig(**values)


# Scripted scenes: module-level so that the route's child process can unpickle them.
PARKED_CAR_M = 30.0


def walker_and_red_lights(world, context) -> None:
    """A pedestrian standing on the route 50 m ahead, every light red."""
    x, y = context.points[int(np.searchsorted(context.cumulative_m, 50.0))]
    world.add_static_pedestrian(float(x), float(y))
    world.force_traffic_lights("r")


def parked_car(world, context) -> None:
    """A car parked on the route 30 m ahead."""
    index = int(np.searchsorted(context.cumulative_m, PARKED_CAR_M))
    x, y = context.points[index]
    dx, dy = context.points[index + 1] - context.points[index]
    world.add_static_vehicle(float(x), float(y), float(np.degrees(np.arctan2(dy, dx))))


def log_tick(path: str, info) -> None:
    """A tick hook: one line per tick with the time, the ego's speed and the infractions so far."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps([info.time_s, info.ego.speed_mps, [i.kind for i in info.infractions]]) + "\n")


def abort_on_route(route_id: str, world, context) -> None:
    """Kill the simulation process the way a fatal SUMO error does, on one route only."""
    if context.route_id == route_id:
        os.abort()


def test_follow_agent_completes_with_leaderboard_format(world_setup: dict, tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    config = _config(world_setup, tmp_path, route_ids=[world_setup["ids"][1]], pictures_dir=pictures)
    data = evaluate(config)

    on_disk = json.loads(config.results.read_text())
    assert on_disk == data
    assert set(data) >= {"_checkpoint", "entry_status", "eligible", "labels", "values", "sensors"}
    assert data["labels"] == list(LABELS) and len(data["values"]) == len(LABELS)
    assert data["entry_status"] == "Finished" and data["eligible"] is True
    assert data["sensors"] == ["carla_speedometer"]
    checkpoint = data["_checkpoint"]
    assert checkpoint["progress"] == [1, 1]
    record = checkpoint["records"][0]
    assert record["route_id"] == f"RouteScenario_{world_setup['ids'][1]}"
    assert record["status"] == "Completed"
    assert set(record["infractions"]) == set(INFRACTION_TYPES)
    assert record["infractions"]["collisions_vehicle"] == []  # no traffic
    assert record["infractions"]["collisions_layout"] == []
    assert record["scores"]["score_route"] == 100.0
    meta = record["meta"]
    length = meta["route_length"]
    assert 100.0 < length < 260.0
    # 6 m/s cruise: the run takes about length / 6 s, plus the start.
    assert length / 7.0 < meta["duration_game"] < length / 6.0 + 15.0
    assert meta["agent"] == "builtin:follow" and meta["seed"] == 0
    assert meta["outside_route_lanes_percent"] < 5.0
    assert checkpoint["global_record"]["scores"]["score_route"] == 100.0
    assert (pictures / f"route_{world_setup['ids'][1]}_rep0.png").stat().st_size > 10_000


def _speeds_at_first(ticks: Path, kind: str) -> tuple[float, float]:
    """The ego's speed at the tick before the first ``kind`` infraction and at that tick."""
    lines = [json.loads(line) for line in ticks.read_text().splitlines()]
    hit = next(i for i, line in enumerate(lines) if kind in line[2])
    return lines[hit - 1][1], lines[hit][1]


def test_reckless_agent_hits_a_pedestrian_and_runs_red_light(world_setup: dict, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.jsonl"
    config = _config(world_setup, tmp_path, agent="builtin:reckless", route_ids=[world_setup["ids"][0]],
                     scene_setup=walker_and_red_lights, tick_hook=functools.partial(log_tick, str(ticks)))
    record = evaluate(config)["_checkpoint"]["records"][0]
    infractions = record["infractions"]
    assert len(infractions["collisions_pedestrian"]) == 1
    assert "type=walker.pedestrian" in infractions["collisions_pedestrian"][0]
    assert len(infractions["red_light"]) >= 1
    assert record["scores"]["score_penalty"] <= 0.5 * 0.7 + 1e-9
    assert_events_match_infractions(record)
    # the crash costs the ego its speed
    before, after = _speeds_at_first(ticks, "collisions_pedestrian")
    assert before > 5.0 and after == 0.0


def test_driving_into_a_parked_car_stops_the_ego_behind_it(world_setup: dict, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.jsonl"
    config = _config(world_setup, tmp_path, agent="builtin:reckless", route_ids=[world_setup["ids"][1]],
                     scene_setup=parked_car, blocked_time_s=3.0, tick_hook=functools.partial(log_tick, str(ticks)))
    record = evaluate(config)["_checkpoint"]["records"][0]
    assert len(record["infractions"]["collisions_vehicle"]) == 1
    assert "type=vehicle.car" in record["infractions"]["collisions_vehicle"][0]
    before, after = _speeds_at_first(ticks, "collisions_vehicle")
    assert before > 5.0 and after == 0.0
    # Full throttle does not take it through the car: it is blocked there, its centre more than
    # 3 m behind the car's (both are about 4.8 m long), and its route is not completed.
    assert record["status"] == "Failed - Agent got blocked"
    network = RoadNetwork.load(TownStore(world_setup["towns"]).net_path(TOWN))
    route = [r for r in read_routes(world_setup["routes"]) if r.route_id == world_setup["ids"][1]][0]
    length = plan_route(network, route).length_m
    assert 0.0 < record["scores"]["score_route"] < 100.0 * (PARKED_CAR_M - 3.0) / length


_PLACE = re.compile(r"x=(-?[\d.]+), y=(-?[\d.]+)")


def assert_events_match_infractions(record: dict) -> None:
    """The meta's timed events are the record's infractions: same kinds, counts, order and places."""
    events = record["meta"]["infraction_events"]
    assert all(set(e) == {"kind", "time_s", "x", "y"} for e in events)
    times = [e["time_s"] for e in events]
    assert times == sorted(times)
    assert all(0.0 <= t <= record["meta"]["duration_game"] + 1e-6 for t in times)
    for kind, messages in record["infractions"].items():
        if kind == "outside_route_lanes":  # a share of the distance, written by the results, not an event
            continue
        of_kind = [e for e in events if e["kind"] == kind]
        assert len(of_kind) == len(messages), kind
        for event, message in zip(of_kind, messages):
            place = _PLACE.search(message)
            if place:
                assert event["x"] == pytest.approx(float(place.group(1)), abs=2e-3)
                assert event["y"] == pytest.approx(float(place.group(2)), abs=2e-3)


def test_stopped_agent_gets_blocked(world_setup: dict, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.jsonl"
    config = _config(world_setup, tmp_path, agent="builtin:stopped", route_ids=[world_setup["ids"][1]],
                     blocked_time_s=3.0, tick_hook=functools.partial(log_tick, str(ticks)))
    data = evaluate(config)
    lines = [json.loads(line) for line in ticks.read_text().splitlines()]
    assert len(lines) == 60 and lines[0][0] == 0.0 and all(line[1] == 0.0 for line in lines)
    record = data["_checkpoint"]["records"][0]
    assert record["status"] == "Failed - Agent got blocked"
    assert len(record["infractions"]["vehicle_blocked"]) == 1
    assert record["scores"]["score_route"] == 0.0
    assert 2.9 <= record["meta"]["duration_game"] <= 3.5
    # the event is timed in the ticks' clock: blocked from the first tick, for blocked_time_s
    (event,) = record["meta"]["infraction_events"]
    assert event["kind"] == "vehicle_blocked" and event["time_s"] == pytest.approx(3.0, abs=0.051)
    assert event["time_s"] == pytest.approx(lines[-1][0] + 0.05, abs=1e-6)
    assert data["_checkpoint"]["global_record"]["status"] == "Failed"


def test_same_seed_same_results(world_setup: dict, tmp_path: Path) -> None:
    runs = []
    for name, workers in (("a", 1), ("b", 2)):  # parallel routes give the same results too
        config = _config(world_setup, tmp_path, traffic="light", seed=7, results=tmp_path / f"{name}.json",
                         workers=workers)
        records = evaluate(config)["_checkpoint"]["records"]
        for record in records:
            record["meta"].pop("duration_system")
        runs.append(records)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 2


def test_crashed_simulation_keeps_other_routes(world_setup: dict, tmp_path: Path) -> None:
    config = _config(world_setup, tmp_path, scene_setup=functools.partial(abort_on_route, world_setup["ids"][1]))
    data = evaluate(config)
    records = data["_checkpoint"]["records"]
    assert [r["status"] for r in records] == ["Completed", STATUS_CRASHED]
    assert "died" in records[1]["meta"]["error"]
    assert data["entry_status"] == "Crashed"
    # Resume runs the crashed route again and keeps the finished one as it was (not run again).
    config.scene_setup = None
    data = evaluate(config)
    assert [r["status"] for r in data["_checkpoint"]["records"]] == ["Completed", "Completed"]
    assert data["_checkpoint"]["records"][0] == records[0]
    assert data["entry_status"] == "Finished"


def test_waypoint_off_network_fails_only_that_route(world_setup: dict, tmp_path: Path) -> None:
    good = [r for r in read_routes(world_setup["routes"]) if r.route_id == world_setup["ids"][1]][0]
    bad = type(good)(route_id="far", town=TOWN, waypoints=[(5000.0, 5000.0, 0.0, 0.0), (5100.0, 5000.0, 0.0, 0.0)],
                     extra={})
    routes_file = tmp_path / "mixed.xml"
    write_routes([good, bad], routes_file)
    data = evaluate(_config(world_setup, tmp_path, routes=routes_file))
    records = data["_checkpoint"]["records"]
    assert records[0]["status"] == "Completed"
    assert records[1]["status"] == STATUS_CRASHED
    assert "5000" in records[1]["meta"]["error"]


def test_cli_refuses_an_unplannable_route_before_any_route_runs(world_setup: dict, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from langprop_driving.cli import main

    good = [r for r in read_routes(world_setup["routes"]) if r.route_id == world_setup["ids"][1]][0]
    bad = type(good)(route_id="far", town=TOWN, waypoints=[(5000.0, 5000.0, 0.0, 0.0), (5100.0, 5000.0, 0.0, 0.0)],
                     extra={})
    routes_file = tmp_path / "mixed.xml"
    write_routes([good, bad], routes_file)
    args = ["evaluate", "--town", TOWN, "--routes", str(routes_file), "--towns-dir", str(world_setup["towns"]),
            "--agent", "builtin:follow", "--results", str(tmp_path / "mixed.json"), "--traffic", "none",
            "--timeout-factor", "0.12", "--no-progress"]
    outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == 1, outcome.output
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {routes_file}: route far cannot be planned in {TOWN}")
    assert not (tmp_path / "mixed.json").exists()  # checked before any world started


def test_malformed_routes_file_names_the_problem(world_setup: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text('<routes>\n<route id="0" town="testgrid">\n<waypoint x="1" y="oops" z="0"/>\n'
                      '</route>\n</routes>\n')
    with pytest.raises(RouteFileError) as info:
        evaluate(_config(world_setup, tmp_path, routes=broken))
    assert "broken.xml" in str(info.value)


def test_unknown_town_and_agent_are_clear_errors(world_setup: dict, tmp_path: Path) -> None:
    routes = read_routes(world_setup["routes"])
    elsewhere = tmp_path / "elsewhere.xml"
    write_routes([type(r)(route_id=r.route_id, town="Town99", waypoints=r.waypoints, extra={}) for r in routes],
                 elsewhere)
    with pytest.raises(TownNotFoundError) as info:
        evaluate(_config(world_setup, tmp_path, town="", routes=elsewhere))
    assert "Town99" in str(info.value) and TOWN in str(info.value)  # names the missing and the known towns
    with pytest.raises(EvaluationError, match="is in town 'Town99'"):
        evaluate(_config(world_setup, tmp_path, routes=elsewhere))
    with pytest.raises(EvaluationError, match="agent file not found"):
        evaluate(_config(world_setup, tmp_path, agent=str(tmp_path / "missing_agent.py")))
    with pytest.raises(EvaluationError, match="no route with id"):
        evaluate(_config(world_setup, tmp_path, route_ids=["nope"]))
    assert not (tmp_path / "results.json").exists() or json.loads((tmp_path / "results.json").read_text())


HANGING_AGENT = '''
import tempfile
import time
from pathlib import Path
from driving.carla_compat import VehicleControl


def get_entry_point():
    return "HangingAgent"


class HangingAgent:
    def __init__(self, path_to_conf_file):
        if path_to_conf_file:  # where the route's process keeps its temporary files (the world's among them)
            Path(path_to_conf_file).write_text(tempfile.gettempdir())

    def sensors(self):
        return []

    def set_global_plan(self, gps, world):
        pass

    def run_step(self, input_data, timestamp):
        time.sleep(3600)
        return VehicleControl()

    def destroy(self):
        pass
'''


def test_hanging_agent_is_killed_after_the_wall_limit(world_setup: dict, tmp_path: Path) -> None:
    agent = tmp_path / "hanging_agent.py"
    agent.write_text(HANGING_AGENT)
    told = tmp_path / "route_tmp.txt"
    config = _config(world_setup, tmp_path, agent=str(agent), agent_config=str(told),
                     route_ids=[world_setup["ids"][1]], route_wall_limit_s=4.0)
    record = evaluate(config)["_checkpoint"]["records"][0]
    assert record["status"] == STATUS_CRASHED
    assert "wall-clock limit" in record["meta"]["error"]
    # the killed route could not remove its world's folder (its route files); the runner did, with the
    # folder it had given the route for its temporary files
    route_tmp = Path(told.read_text())
    assert route_tmp.name.startswith("langprop_route_") and not route_tmp.exists()


def test_agent_setup_failure_and_broken_agent_file(world_setup: dict, tmp_path: Path) -> None:
    failing = tmp_path / "failing_agent.py"
    failing.write_text("def get_entry_point():\n    return 'Failing'\n\n\nclass Failing:\n"
                       "    def __init__(self, path_to_conf_file):\n"
                       "        raise FileNotFoundError('no checkpoint at ' + repr(path_to_conf_file))\n")
    config = _config(world_setup, tmp_path, agent=str(failing), agent_config="/nowhere",
                     route_ids=[world_setup["ids"][1]])
    record = evaluate(config)["_checkpoint"]["records"][0]
    assert record["status"] == "Failed - Agent couldn't be set up"
    assert "no checkpoint at '/nowhere'" in record["meta"]["error"]

    broken = tmp_path / "broken_agent.py"
    broken.write_text("def get_entry_point(:\n")
    with pytest.raises(EvaluationError, match="broken_agent.py: importing the agent failed: SyntaxError"):
        evaluate(_config(world_setup, tmp_path, agent=str(broken)))
    no_entry = tmp_path / "no_entry.py"
    no_entry.write_text("class Agent:\n    pass\n")
    with pytest.raises(EvaluationError, match="no module-level get_entry_point"):
        evaluate(_config(world_setup, tmp_path, agent=str(no_entry)))


MISBEHAVING_AGENT = '''
import numpy as np
from driving.carla_compat import VehicleControl
from driving.controllers import VehicleController
from driving.geometry import relative_angle_deg


def get_entry_point():
    return "MisbehavingAgent"


class MisbehavingAgent:
    """mode "left": follows the route 3.5 m to its left (the opposite lane);
    mode "away": heads for a point 200 m to the left of its start, across everything."""

    def __init__(self, path_to_conf_file):
        self.mode = path_to_conf_file
        self.controller = VehicleController()
        self.goal = None

    def sensors(self):
        return []

    def set_global_plan(self, gps, world):
        pass

    def set_scene_provider(self, provider):
        self.provider = provider

    def run_step(self, input_data, timestamp):
        scene = self.provider.get_scene()
        ego, forward = scene["ego_location_world_coord"], scene["ego_orientation_unit_vector"]
        left = np.array([forward[1], -forward[0]])  # CARLA is left-handed: left of (x, y) is (y, -x)
        if self.mode == "away":
            if self.goal is None:
                self.goal = ego + 200.0 * left
            target = self.goal
        else:
            route = scene["route_ahead_world_coord"]
            point = scene["ego_target_location_world_coord"]
            direction = route[min(len(route) - 1, 6)] - route[0]
            direction = direction / max(1e-6, np.linalg.norm(direction))
            target = point + 3.5 * np.array([direction[1], -direction[0]])
        angle = relative_angle_deg(ego, forward, target)
        throttle, steer, brake = self.controller.control(scene["ego_forward_speed"], 6.0, angle)
        return VehicleControl(throttle=throttle, steer=steer, brake=brake)

    def destroy(self):
        pass
'''


def test_leaving_the_road_deviates_and_wrong_lane_costs_penalty(world_setup: dict, tmp_path: Path) -> None:
    agent = tmp_path / "misbehaving_agent.py"
    agent.write_text(MISBEHAVING_AGENT)
    route = [world_setup["ids"][1]]
    away = evaluate(_config(world_setup, tmp_path, agent=str(agent), agent_config="away", route_ids=route,
                            results=tmp_path / "away.json"))["_checkpoint"]["records"][0]
    assert away["status"] == "Failed - Agent deviated from the route"
    assert len(away["infractions"]["route_dev"]) == 1
    assert len(away["infractions"]["collisions_layout"]) >= 1
    assert away["scores"]["score_route"] < 30.0
    assert_events_match_infractions(away)
    assert away["meta"]["infraction_events"][-1]["kind"] == "route_dev"

    left = evaluate(_config(world_setup, tmp_path, agent=str(agent), agent_config="left", route_ids=route,
                            results=tmp_path / "left.json"))["_checkpoint"]["records"][0]
    outside = left["meta"]["outside_route_lanes_percent"]
    assert outside > 40.0
    assert len(left["infractions"]["outside_route_lanes"]) == 1
    counts = {kind: len(messages) for kind, messages in left["infractions"].items()}
    assert left["scores"]["score_penalty"] == pytest.approx(infraction_penalty(counts, outside))
    assert left["scores"]["score_penalty"] <= 1.0 - outside / 100.0 + 1e-9


# ----------------------------------------------------------------------------- the command line

SCRIPT_MOVE = """import math


def predict_speed_and_steering(scene):
    ego_x, ego_y = scene["ego_location_world_coord"]
    fwd_x, fwd_y = scene["ego_orientation_unit_vector"]
    dx = scene["ego_target_location_world_coord"][0] - ego_x
    dy = scene["ego_target_location_world_coord"][1] - ego_y
    ahead, right = dx * fwd_x + dy * fwd_y, -dx * fwd_y + dy * fwd_x
    return "MOVE", math.degrees(math.atan2(right, ahead))
"""
SCRIPT_STOP = "def predict_speed_and_steering(scene):\n    return 'STOP', 0.0\n"
SCRIPT_LOOPS = "def predict_speed_and_steering(scene):\n    while True:\n        pass\n"


def _cli(world_setup: dict, tmp_path: Path, agent: str, name: str, *extra: str):
    from click.testing import CliRunner

    from langprop_driving.cli.evaluate_cmd import evaluate as evaluate_command

    results = tmp_path / f"{name}.json"
    args = ["--town", TOWN, "--routes", str(world_setup["routes"]), "--towns-dir", str(world_setup["towns"]),
            "--agent", agent, "--results", str(results), "--traffic", "none", "--route-id",
            world_setup["ids"][1], "--timeout-factor", "0.12", "--no-progress", *extra]
    outcome = CliRunner().invoke(evaluate_command, args, catch_exceptions=False)
    return outcome, results


def test_cli_runs_the_expert_a_script_and_a_checkpoint(world_setup: dict, tmp_path: Path) -> None:
    from langprop_core.checkpoint import save_checkpoint
    from langprop_core.policy import Policy

    outcome, results = _cli(world_setup, tmp_path, "expert", "expert")
    assert outcome.exit_code == 0, outcome.output
    (expert,) = json.loads(results.read_text())["_checkpoint"]["records"]
    assert expert["meta"]["agent"] == "expert" and expert["meta"]["agent_exceptions"] == 0
    assert expert["scores"]["score_route"] > 5.0  # it drove (the short timeout ends the route early)

    script = tmp_path / "mover.py"
    script.write_text(SCRIPT_MOVE)
    outcome, results = _cli(world_setup, tmp_path, str(script), "script")
    assert outcome.exit_code == 0, outcome.output
    (moved,) = json.loads(results.read_text())["_checkpoint"]["records"]
    meta = moved["meta"]
    assert meta["agent"] == f"script:{script.resolve()}"
    assert moved["scores"]["score_route"] > 5.0 and meta["agent_exceptions"] == 0
    # the policy ran every tick, within the closed-loop default limit, with no timeouts
    assert meta["policy_calls"] > 100 and meta["policy_timeouts"] == 0 and meta["policy_timeout_s"] == 10.0
    assert meta["policy_abandoned_at_tick"] is None

    checkpoint = tmp_path / "run" / "checkpoints" / "driving"
    save_checkpoint(checkpoint, "driving", "predict_speed_and_steering",
                    [Policy.from_source(SCRIPT_STOP, "predict_speed_and_steering")])
    outcome, results = _cli(world_setup, tmp_path, str(tmp_path / "run"), "checkpoint")
    assert outcome.exit_code == 0, outcome.output
    (stopped,) = json.loads(results.read_text())["_checkpoint"]["records"]
    assert stopped["meta"]["agent"] == f"checkpoint:{checkpoint}"
    assert stopped["scores"]["score_route"] < 2.0 and stopped["meta"]["policy_calls"] > 100


def test_cli_runaway_script_is_timed_out_counted_and_abandoned(world_setup: dict, tmp_path: Path) -> None:
    script = tmp_path / "loops.py"
    script.write_text(SCRIPT_LOOPS)
    config = tmp_path / "agent.yaml"
    config.write_text("sandbox: true\ntimeout_s: 0.3\nmax_timeouts: 2\n")
    outcome, results = _cli(world_setup, tmp_path, str(script), "loops", "--agent-config", str(config))
    assert outcome.exit_code == 0, outcome.output
    (record,) = json.loads(results.read_text())["_checkpoint"]["records"]
    meta = record["meta"]
    # two calls timed out (visible, not silent), then the script was not called again and the car braked
    assert meta["policy_timeouts"] == 2 and meta["policy_calls"] == 2 and meta["policy_abandoned_at_tick"] == 2
    assert meta["policy_timeout_s"] == 0.3 and meta["agent_exceptions"] == 2
    assert "the policy timed out 2 time(s)" in outcome.output
    assert record["scores"]["score_route"] < 2.0
    written = json.loads((tmp_path / "loops_agent_config.json").read_text())
    assert written == {"sandbox": True, "timeout_s": 0.3, "max_timeouts": 2, "checkpoint": str(script.resolve())}


def test_cli_bad_agent_is_a_usage_error(world_setup: dict, tmp_path: Path) -> None:
    outcome, _ = _cli(world_setup, tmp_path, str(tmp_path / "missing.py"), "missing")
    assert outcome.exit_code == 2 and "does not exist" in outcome.output and "expert" in outcome.output
    helper = tmp_path / "helper.py"
    helper.write_text("def something_else(scene):\n    return 1\n")
    outcome, _ = _cli(world_setup, tmp_path, str(helper), "helper")
    assert outcome.exit_code == 2 and "predict_speed_and_steering" in outcome.output


def test_cli_carla_command_runs_a_script_with_the_langprop_agent(world_setup: dict, tmp_path: Path) -> None:
    import shlex

    from click.testing import CliRunner

    from langprop_driving.cli.evaluate_cmd import evaluate as evaluate_command

    script = tmp_path / "mover.py"
    script.write_text(SCRIPT_MOVE)
    outcome = CliRunner().invoke(evaluate_command, ["--world", "carla", "--routes", str(world_setup["routes"]),
                                                    "--agent", str(script), "--results", str(tmp_path / "r.json")])
    assert outcome.exit_code == 0, outcome.output
    words = shlex.split(outcome.output.strip().splitlines()[-1])
    assert any(w.startswith("TEAM_AGENT=") and w.endswith("team_code/langprop_agent.py") for w in words)
    assert f"TEAM_CONFIG={script.resolve()}" in words


def test_several_evaluations_share_one_scheduler(world_setup: dict, tmp_path: Path) -> None:
    """evaluate_all: every evaluation is planned first, then all their route jobs go to the scheduler at
    once (here the local one, two at a time), and each outcome lands in its own evaluation's file."""
    from sumo_world.run.runner import evaluate_all, run_route_jobs

    calls = []

    def scheduler(jobs, on_done):
        calls.append([(str(job.config.results), job.route.route_id) for job in jobs])
        run_route_jobs(jobs, on_done, workers=2)

    first, second = world_setup["ids"]
    configs = [_config(world_setup, tmp_path, results=tmp_path / "a.json", route_ids=[first]),
               _config(world_setup, tmp_path, results=tmp_path / "b.json", route_ids=[second])]
    docs = evaluate_all(configs, route_executor=scheduler)
    assert calls == [[(str(tmp_path / "a.json"), first), (str(tmp_path / "b.json"), second)]]
    for doc, route_id, name in zip(docs, (first, second), ("a.json", "b.json")):
        records = doc["_checkpoint"]["records"]
        assert [r["route_id"] for r in records] == [f"RouteScenario_{route_id}"] or \
            [r["route_id"] for r in records] == [route_id]
        assert records[0]["status"] == "Completed" and doc["entry_status"] == "Finished"
        assert json.loads((tmp_path / name).read_text()) == doc
