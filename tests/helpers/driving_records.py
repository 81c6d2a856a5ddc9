"""Hand-made scenes, labels and datasets of the driving contract, for tests that need no simulator."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from driving.dataset import SceneDataset, SceneRecord
from driving.labels import DrivingLabel


def make_scene(speed: float = 5.0, red_m: float | None = None, target_angle_deg: float = 0.0,
               vehicles: dict | None = None, t: float = 0.0) -> dict:
    """A strict scene: ego at the origin heading +x, target 6 m away at the given angle (positive right)."""
    a = math.radians(target_angle_deg)
    return {
        "ego_location_world_coord": np.array([0.0, 0.0]),
        # left-handed frame: +y is to the right of a car heading +x
        "ego_target_location_world_coord": np.array([6.0 * math.cos(a), 6.0 * math.sin(a)]),
        "ego_orientation_unit_vector": np.array([1.0, 0.0]),
        "ego_forward_speed": float(speed),
        "ego_length": 2.4, "ego_width": 1.0,
        "distance_to_red_light": red_m,
        "distance_to_stop_sign": None,
        "vehicles": vehicles or {},
        "pedestrians": {},
        "timestamp_s": t, "ego_yaw_deg": 0.0, "ego_velocity_mps": np.array([speed, 0.0]),
        "ego_length_m": 4.8, "ego_width_m": 2.0,
        "route_ahead_world_coord": np.array([[1.0, 0.0], [2.0, 0.0]]),
        "route_command": "LANEFOLLOW", "speed_limit_mps": 8.3,
        "traffic_light_state": None if red_m is None else "red",
        "distance_to_traffic_light_m": red_m, "ego_in_junction": False, "distance_to_junction_m": None, "distance_to_junction_exit_m": None, "static_props": {},
    }


def vehicle(x: float, y: float, speed: float = 0.0) -> dict:
    """A car at (x, y) heading +x, for a scene's ``vehicles``."""
    return {"location_world_coord": np.array([x, y]), "orientation_unit_vector": np.array([1.0, 0.0]),
            "forward_speed": speed, "forward_length": 2.4, "sideways_width": 1.0, "actor_type": "car",
            "yaw_deg": 0.0, "velocity_mps": np.array([speed, 0.0]), "length_m": 4.8, "width_m": 2.0}


def label(level: str, steer: float = 0.0, reason: str = "free_road") -> DrivingLabel:
    """The expert's label for a speed level (MOVE, SLOW or STOP)."""
    return DrivingLabel({"MOVE": 6.0, "SLOW": 0.1, "STOP": 0.0}[level], steer, level, reason)


def drive(n: int, speed: float = 5.0, dt: float = 0.5, stop_after: int | None = None) -> list[SceneRecord]:
    """A car going +x at ``speed``; from tick ``stop_after`` on it stands still."""
    out, x = [], 0.0
    for i in range(n):
        moving = stop_after is None or i < stop_after
        scene = make_scene(speed if moving else 0.0, t=i * dt)
        scene["ego_location_world_coord"][0] = x
        scene["ego_target_location_world_coord"][0] += x
        out.append(SceneRecord(scene, label("MOVE"), {"route_id": "7", "run_id": "r", "time_s": i * dt,
                                                       "controller": "policy",
                                                       "action": {"target_speed_mps": 6.0, "steering_deg": 0.0}}))
        if moving:
            x += speed * dt
    return out


def make_dataset(root: Path) -> None:
    """Two routes of 30 ticks each, stopping at a red light the naive seed script runs."""
    dataset = SceneDataset(root)
    for route in ("1", "2"):
        ticks = drive(30, stop_after=20)
        for i, r in enumerate(ticks):
            r.meta["route_id"] = route
            if i >= 20:  # a red light the naive seed script drives through: there is something to learn
                r.scene["distance_to_red_light"] = 2.0
                r.label = label("STOP", 0.0, "red_light")
        dataset.append(ticks, f"collect-{route}")
