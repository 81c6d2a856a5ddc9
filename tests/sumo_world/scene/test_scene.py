"""The embedded world's pieces: ego dynamics, scenes, lights and stop signs, the agent API."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sumo_world.ego.dynamics import EgoState, EgoVehicle
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.planner import plan_route
from sumo_world.routes.random_routes import random_routes
from sumo_world.routes.files import write_routes
from sumo_world.run.runner import EvaluationConfig, evaluate
from sumo_world.scene.builder import RouteContext
from sumo_world.towns.store import TownStore
from tests.helpers.child_process import run_in_child

TOWN = "scenegrid"


# ----------------------------------------------------------------------------- ego model


def test_ego_accelerates_turns_right_on_positive_steer_and_never_reverses() -> None:
    ego = EgoVehicle(EgoState(0.0, 0.0, 0.0))
    for _ in range(60):  # 3 s full throttle, straight
        ego.apply(1.0, 0.0, 0.0, 0.05)
    assert 8.0 < ego.state.speed_mps < 12.5
    assert abs(ego.state.y) < 1e-9 and ego.state.x > 10.0
    for _ in range(20):  # steer +1 = right = clockwise = yaw grows, car moves to +y (CARLA frame)
        ego.apply(0.3, 1.0, 0.0, 0.05)
    assert ego.state.yaw_deg > 10.0 and ego.state.y > 0.5
    for _ in range(100):
        ego.apply(0.0, 0.0, 1.0, 0.05)
    assert ego.state.speed_mps == 0.0
    x = ego.state.x
    ego.apply(0.0, 0.0, 1.0, 0.05)
    assert ego.state.x == x


# ----------------------------------------------------------------------------- in a child process

@pytest.fixture(scope="module")
def town_routes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("scene")
    town = TownStore(root / "towns").generate(TOWN, kind="grid", size=3, seed=0)
    network = RoadNetwork.load(town.net_path)
    light_route = stop_route = None
    for route in random_routes(network, 30, seed=5, town=TOWN, min_length_m=120, max_length_m=240):
        controls = RouteContext.from_dense_route(network, plan_route(network, route)).controls
        first = controls[0] if controls else None
        if first is None or not 30.0 < first.distance_m < 120.0:
            continue
        if first.kind == "light" and light_route is None:
            light_route = route
        if first.kind == "stop" and stop_route is None:
            stop_route = route
    assert light_route is not None and stop_route is not None
    return {"root": root, "towns": root / "towns", "town": town, "light": light_route, "stop": stop_route}


def _force_red(world, context) -> None:
    world.force_traffic_lights("r")


def scenes_on_red(town, route) -> dict:
    """Follow agent with every light red: collect what the scenes said, validating each one strictly."""
    from driving.scene import validate_scene
    from sumo_world.run.runner import run_route

    seen = {"n": 0, "red": [], "states": set(), "ids_ok": True, "vehicles": 0, "pedestrians": 0, "times": []}

    def on_tick(info) -> None:
        scene = info.provider.get_scene()
        validate_scene(scene, strict=True)
        seen["n"] += 1
        seen["times"].append(scene["timestamp_s"])
        if scene["distance_to_red_light"] is not None:
            seen["red"].append(scene["distance_to_red_light"])
        seen["states"].add(scene["traffic_light_state"])
        seen["vehicles"] = max(seen["vehicles"], len(scene["vehicles"]))
        seen["pedestrians"] = max(seen["pedestrians"], len(scene["pedestrians"]))
        for group in ("vehicles", "pedestrians"):
            for actor in scene[group].values():
                if np.linalg.norm(actor["location_world_coord"] - scene["ego_location_world_coord"]) > 50.0:
                    seen["ids_ok"] = False

    outcome = run_route(route, town, "builtin:follow", traffic="default", warmup_s=5.0, blocked_time_s=5.0,
                        scene_setup=_force_red, on_tick=on_tick)
    seen["kinds"] = [i.kind for i in outcome.infractions]
    return seen


def test_scenes_are_strict_and_report_red_lights(town_routes: dict) -> None:
    seen = run_in_child(scenes_on_red, town_routes["town"], town_routes["light"])
    assert seen["n"] > 100 and seen["ids_ok"]
    assert seen["times"][0] == 0.0 and seen["times"][1] == pytest.approx(0.05)
    assert seen["vehicles"] > 0 and seen["pedestrians"] > 0
    assert "red" in seen["states"]
    red = seen["red"]
    assert len(red) > 20 and max(red) <= 55.0
    assert red[0] > red[len(red) // 2]  # approaching the stop line
    assert "red_light" in seen["kinds"]  # the follow agent obeys nothing


STOPPING_AGENT = '''
from driving.carla_compat import VehicleControl
from driving.controllers import VehicleController
from driving.geometry import relative_angle_deg


def get_entry_point():
    return "StopSignAgent"


class StopSignAgent:
    """Follows the route at 5 m/s and halts for 1 s at stop signs."""

    def __init__(self, path_to_conf_file):
        self.setup(path_to_conf_file)

    def setup(self, path_to_conf_file):
        self.controller = VehicleController()
        self.stopped_ticks = 0
        self.log = []

    def sensors(self):
        return [{"type": "sensor.speedometer", "id": "speed"}]

    def set_global_plan(self, gps, world):
        pass

    def set_scene_provider(self, provider):
        self.provider = provider

    def run_step(self, input_data, timestamp):
        scene = self.provider.get_scene()
        angle = relative_angle_deg(scene["ego_location_world_coord"], scene["ego_orientation_unit_vector"],
                                   scene["ego_target_location_world_coord"])
        distance = scene["distance_to_stop_sign"]
        stop = distance is not None and distance < 7.0
        throttle, steer, brake = self.controller.control(scene["ego_forward_speed"], 0.0 if stop else 5.0,
                                                         angle, full_brake=stop)
        return VehicleControl(throttle=throttle, steer=steer, brake=brake)

    def destroy(self):
        pass
'''


def test_stop_sign_needs_a_stop(town_routes: dict, tmp_path: Path) -> None:
    routes_file = tmp_path / "stop.xml"
    write_routes([town_routes["stop"]], routes_file)
    agent_file = tmp_path / "stop_agent.py"
    agent_file.write_text(STOPPING_AGENT)
    kinds = {}
    for agent in ("builtin:follow", str(agent_file)):
        config = EvaluationConfig(town=TOWN, routes=routes_file, agent=agent, results=tmp_path / "r.json",
                                  towns_dir=town_routes["towns"], traffic="none", resume=False, progress=False,
                                  warmup_s=1.0, blocked_time_s=20.0)
        record = evaluate(config)["_checkpoint"]["records"][0]
        assert record["status"] == "Completed", record
        kinds[agent] = record["infractions"]["stop_infraction"]
    assert len(kinds["builtin:follow"]) >= 1
    assert "Agent ran a stop with id=" in kinds["builtin:follow"][0]
    assert kinds[str(agent_file)] == []


API_AGENT = '''
import json
import numpy as np
from driving.carla_compat import VehicleControl


def get_entry_point():
    return "ApiAgent"


class ApiAgent:
    def __init__(self, carla_host, carla_port, debug=False):
        self.calls = ["__init__"]
        self.ticks = 0

    def setup(self, path_to_conf_file):
        self.calls.append("setup")
        self.log_path = path_to_conf_file

    def sensors(self):
        self.calls.append("sensors")
        return [{"type": "sensor.speedometer", "id": "speed"}, {"type": "sensor.other.gnss", "id": "gps"},
                {"type": "sensor.other.imu", "id": "imu"}, {"type": "sensor.camera.rgb", "id": "rgb"}]

    def set_global_plan(self, gps, world):
        self.calls.append("set_global_plan")
        self.plan = (len(gps), len(world), sorted(gps[0][0]), type(world[0][0]).__name__, world[0][1].name)

    def set_scene_provider(self, provider):
        self.calls.append("set_scene_provider")

    def run_step(self, input_data, timestamp):
        if self.ticks == 0:
            self.calls.append("run_step")
            self.first = {key: [value[0], type(value[1]).__name__,
                                len(value[1]) if hasattr(value[1], "__len__") else None]
                          for key, value in input_data.items()}
        self.ticks += 1
        if self.ticks % 10 == 0:
            raise RuntimeError("a bug in the agent")
        return VehicleControl(throttle=0.5, steer=0.0, brake=0.0)

    def destroy(self):
        self.calls.append("destroy")
        with open(self.log_path, "w") as handle:
            json.dump({"calls": self.calls, "plan": self.plan, "first": self.first, "ticks": self.ticks}, handle)
'''


def test_leaderboard_2_agent_api_order_sensors_and_exceptions(town_routes: dict, tmp_path: Path) -> None:
    routes_file = tmp_path / "one.xml"
    write_routes([town_routes["light"]], routes_file)
    agent_file = tmp_path / "api_agent.py"
    agent_file.write_text(API_AGENT)
    log = tmp_path / "log.json"
    config = EvaluationConfig(town=TOWN, routes=routes_file, agent=str(agent_file), agent_config=str(log),
                              results=tmp_path / "r.json", towns_dir=town_routes["towns"], traffic="none",
                              progress=False, warmup_s=1.0, blocked_time_s=5.0, timeout_factor=0.05)
    record = evaluate(config)["_checkpoint"]["records"][0]
    data = json.loads(log.read_text())
    assert data["calls"] == ["__init__", "set_global_plan", "setup", "set_scene_provider", "sensors",
                             "run_step", "destroy"]
    n_points, n_world, gps_keys, transform_type, command = data["plan"]
    assert n_points == n_world > 50 and gps_keys == ["lat", "lon", "z"] and transform_type == "Transform"
    assert command in ("LANEFOLLOW", "STRAIGHT", "LEFT", "RIGHT")
    first = data["first"]
    assert set(first) == {"speed", "gps", "imu"}  # no camera in the embedded world
    assert first["speed"][:2] == [0, "dict"]
    assert first["gps"][1:] == ["ndarray", 3] and first["imu"][1:] == ["ndarray", 7]
    # Every 10th run_step raised: counted, and the run went on.
    assert record["meta"]["agent_exceptions"] == data["ticks"] // 10 > 0
    assert record["status"] == "Failed - Agent timed out"
    assert record["infractions"]["route_timeout"] == ["Route timeout."]
    assert math.isclose(record["meta"]["timeout_s"], record["meta"]["duration_game"], abs_tol=0.1)
