"""Hand-built scenes that follow the contract (strict), for tests, demos and benchmarks.

``make_scene`` puts the ego on a route and fills every key of the contract;
``make_actor`` builds one actor entry. Defaults: ego at the origin heading +x
(yaw 0), a straight 50 m route ahead, no lights, no signs, empty roads.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from driving.geometry import yaw_to_unit_vector
from driving.route import TARGET_MIN_DISTANCE_M

__all__ = ["make_scene", "make_actor", "make_prop", "straight_route", "arc_route"]

# Sizes (full length, full width) per actor type, metres.
_SIZES = {
    "car": (4.6, 1.9), "truck": (8.0, 2.5), "bus": (11.0, 2.6), "motorcycle": (2.2, 0.8),
    "bicycle": (1.8, 0.6), "pedestrian": (0.5, 0.5),
}


def straight_route(start_xy: tuple[float, float] = (0.0, 0.0), yaw_deg: float = 0.0,
                   length_m: float = 50.0, spacing_m: float = 1.0) -> np.ndarray:
    """Points (N, 2) every ``spacing_m`` along a straight line."""
    s = np.arange(0.0, length_m + 1e-9, spacing_m)
    return np.asarray(start_xy, dtype=float) + s[:, None] * yaw_to_unit_vector(yaw_deg)[None, :]


def arc_route(radius_m: float, turn: str = "right", straight_m: float = 0.0, length_m: float = 50.0,
              spacing_m: float = 1.0) -> np.ndarray:
    """From the origin heading +x: ``straight_m`` straight, then an arc of ``radius_m``.

    "right" turns clockwise seen from above, i.e. towards +y in CARLA's frame.
    """
    s = np.arange(0.0, length_m + 1e-9, spacing_m)
    sign = 1.0 if turn == "right" else -1.0
    pts = []
    for d in s:
        if d <= straight_m:
            pts.append((d, 0.0))
        else:
            a = (d - straight_m) / radius_m
            pts.append((straight_m + radius_m * math.sin(a), sign * radius_m * (1.0 - math.cos(a))))
    return np.array(pts)


def make_actor(x: float, y: float, yaw_deg: float = 0.0, speed_mps: float = 0.0,
               actor_type: str = "car", length_m: float | None = None,
               width_m: float | None = None) -> dict[str, Any]:
    """One actor entry (all keys of the contract) moving forward at ``speed_mps``."""
    default_length, default_width = _SIZES[actor_type]
    length = float(length_m if length_m is not None else default_length)
    width = float(width_m if width_m is not None else default_width)
    forward = yaw_to_unit_vector(yaw_deg)
    return {
        "location_world_coord": np.array([x, y], dtype=float),
        "orientation_unit_vector": forward,
        "forward_speed": float(abs(speed_mps)),
        "forward_length": max(0.5, length / 2.0) if actor_type != "pedestrian" else length / 2.0,
        "sideways_width": max(0.5, width / 2.0) if actor_type != "pedestrian" else width / 2.0,
        "actor_type": actor_type,
        "yaw_deg": float(yaw_deg),
        "velocity_mps": forward * float(speed_mps),
        "length_m": length,
        "width_m": width,
    }


def make_prop(x: float, y: float, yaw_deg: float = 0.0, length_m: float = 0.9, width_m: float = 1.2,
              prop_type: str = "static.prop.vendingmachine") -> dict[str, Any]:
    """One ``static_props`` entry (all keys of the contract); defaults: a vending machine."""
    return {"location_world_coord": np.array([x, y], dtype=float),
            "orientation_unit_vector": yaw_to_unit_vector(yaw_deg),
            "length_m": float(length_m), "width_m": float(width_m), "prop_type": prop_type}


def make_scene(speed_mps: float = 0.0, route: np.ndarray | None = None,
               ego_xy: tuple[float, float] = (0.0, 0.0), yaw_deg: float = 0.0,
               vehicles: dict[int, dict] | None = None, pedestrians: dict[int, dict] | None = None,
               traffic_light_state: str | None = None, distance_to_traffic_light_m: float | None = None,
               distance_to_stop_sign: float | None = None, speed_limit_mps: float = 13.9,
               ego_in_junction: bool = False, distance_to_junction_m: float | None = None,
               distance_to_junction_exit_m: float | None = None, route_command: str = "LANEFOLLOW", timestamp_s: float = 0.0,
               static_props: dict[int, dict] | None = None) -> dict[str, Any]:
    """A strict scene; ``distance_to_red_light`` follows from the light's state and distance (the
    paper's key: only while the line is ahead of the centre)."""
    ego = np.asarray(ego_xy, dtype=float)
    if route is None:
        route = straight_route(tuple(ego), yaw_deg)
    route = np.asarray(route, dtype=float)
    far = np.nonzero(np.linalg.norm(route - ego, axis=1) > TARGET_MIN_DISTANCE_M)[0]
    target = route[far[0]] if len(far) else route[-1]
    forward = yaw_to_unit_vector(yaw_deg)
    red = (traffic_light_state in ("red", "yellow") and distance_to_traffic_light_m is not None
           and distance_to_traffic_light_m >= 0.0)
    return {
        "ego_location_world_coord": ego.copy(),
        "ego_target_location_world_coord": np.asarray(target, dtype=float).copy(),
        "ego_orientation_unit_vector": forward,
        "ego_forward_speed": float(abs(speed_mps)),
        "ego_length": 2.45,
        "ego_width": 1.05,
        "distance_to_red_light": float(distance_to_traffic_light_m) if red else None,
        "distance_to_stop_sign": distance_to_stop_sign,
        "vehicles": dict(vehicles or {}),
        "pedestrians": dict(pedestrians or {}),
        "timestamp_s": float(timestamp_s),
        "ego_yaw_deg": float(yaw_deg),
        "ego_velocity_mps": forward * float(speed_mps),
        "ego_length_m": 4.9,
        "ego_width_m": 2.1,
        "route_ahead_world_coord": route,
        "route_command": route_command,
        "speed_limit_mps": float(speed_limit_mps),
        "traffic_light_state": traffic_light_state,
        "distance_to_traffic_light_m": distance_to_traffic_light_m,
        "ego_in_junction": bool(ego_in_junction),
        "distance_to_junction_m": distance_to_junction_m,
        "distance_to_junction_exit_m": distance_to_junction_exit_m,
        "static_props": dict(static_props or {}),
    }
