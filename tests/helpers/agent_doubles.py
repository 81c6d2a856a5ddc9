"""Test doubles of the leaderboard's world for the team_code agents: scripted scenes, a route, a policy file.

Child processes import this module too (by its dotted name, with the repository on ``sys.path``).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import carla
import numpy as np

from driving.carla_compat import RoadOption
from driving.scene import validate_scene

# A policy that always moves, 10 degrees to the right.
MOVE_RIGHT = """
def predict_speed_and_steering(scene):
    scene["vehicles"].clear()  # scripts edit their inputs; the agent must not care
    return "MOVE", 10.0
"""


def make_scene(step: int, speed_mps: float = 2.0, red_light_m: float | None = None) -> dict:
    """A strict scene: the ego on a straight road heading +x, 0.05 s per step."""
    x = 0.1 * step
    route = np.stack([np.arange(x, x + 50.0, 1.0), np.zeros(50)], axis=1)
    vehicle = {
        "location_world_coord": np.array([x + 30.0, 0.0]), "orientation_unit_vector": np.array([1.0, 0.0]),
        "forward_speed": 3.0, "forward_length": 2.0, "sideways_width": 0.9, "actor_type": "car",
        "yaw_deg": 0.0, "velocity_mps": np.array([3.0, 0.0]), "length_m": 4.0, "width_m": 1.8,
    }
    scene = {
        "ego_location_world_coord": np.array([x, 0.0]),
        "ego_target_location_world_coord": np.array([x + 5.0, 0.0]),
        "ego_orientation_unit_vector": np.array([1.0, 0.0]),
        "ego_forward_speed": speed_mps, "ego_length": 2.45, "ego_width": 1.05,
        "distance_to_red_light": red_light_m, "distance_to_stop_sign": None,
        "vehicles": {7: vehicle}, "pedestrians": {},
        "timestamp_s": 0.05 * step, "ego_yaw_deg": 0.0, "ego_velocity_mps": np.array([speed_mps, 0.0]),
        "ego_length_m": 4.9, "ego_width_m": 2.1, "route_ahead_world_coord": route,
        "route_command": "LANEFOLLOW", "speed_limit_mps": 8.33,
        "traffic_light_state": "red" if red_light_m is not None else None,
        "distance_to_traffic_light_m": red_light_m, "ego_in_junction": False, "distance_to_junction_m": None, "distance_to_junction_exit_m": None, "static_props": {},
    }
    validate_scene(scene, strict=True)
    return scene


class ScriptedProvider:
    """A SceneProvider playing back scenes."""

    def __init__(self, scenes: list[dict]) -> None:
        self.scenes = scenes
        self.calls = 0

    def get_scene(self) -> dict:
        scene = self.scenes[min(self.calls, len(self.scenes) - 1)]
        self.calls += 1
        return scene


def global_plan(n: int = 60, y: float = 0.0):
    """A straight route along +x (GPS and world), one point a metre, as the leaderboard passes it."""
    world = [(carla.Transform(carla.Location(x=float(i), y=y, z=0.0), carla.Rotation(yaw=0.0)), RoadOption.LANEFOLLOW)
             for i in range(n)]
    gps = [({"lat": 0.0, "lon": i * 1e-5, "z": 0.0}, RoadOption.LANEFOLLOW) for i in range(n)]
    return gps, world


def script(tmp_path: Path, source: str, name: str = "policy.py") -> Path:
    """``source`` written as a policy file."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def start(agent, scenes: list[dict]):
    """``agent`` given the global plan and a provider playing back ``scenes``."""
    gps, world = global_plan()
    agent.set_global_plan(gps, world)
    agent.set_scene_provider(ScriptedProvider(scenes))
    return agent


# The leaderboard-2.0 ``autonomous_agent`` module, as far as the agents use it (a stand-in package).
FAKE_LEADERBOARD_2 = '''
import enum
class Track(enum.Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
class AutonomousAgent:
    def __init__(self, carla_host, carla_port, debug=False):
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
    def setup(self, path_to_conf_file):
        pass
    def destroy(self):
        pass
    @staticmethod
    def get_ros_version():
        return -1
    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        # downsampled, as the real one does
        self._global_plan_world_coord = global_plan_world_coord[::10]
        self._global_plan = global_plan_gps[::10]
'''
