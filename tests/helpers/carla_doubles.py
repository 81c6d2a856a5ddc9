"""Test doubles of a CARLA server (actors, lights, stop signs, the world) on CARLA's own maps and waypoints.

Only what cannot exist without a server is a double; maps, waypoints, transforms
and boxes come from the real carla wheel.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

import carla
import numpy as np

from driving.geometry import to_ego_frame

# --- test doubles: actors, lights, world ---------------------------------------------
@dataclass
class FakeActor:
    id: int
    type_id: str
    transform: Any
    bounding_box: Any
    velocity: Any = field(default_factory=lambda: carla.Vector3D(0.0, 0.0, 0.0))
    attributes: dict = field(default_factory=dict)
    speed_limit_kmh: float = 30.0

    def get_transform(self):
        # A fresh copy each call, as the server returns one.
        loc, rot = self.transform.location, self.transform.rotation
        return carla.Transform(carla.Location(loc.x, loc.y, loc.z), carla.Rotation(rot.pitch, rot.yaw, rot.roll))

    def get_velocity(self):
        return self.velocity

    def get_speed_limit(self):
        return self.speed_limit_kmh


@dataclass
class FakeLight:
    id: int
    transform: Any
    trigger_volume: Any
    stop_waypoints: list
    state: Any = carla.TrafficLightState.Red
    type_id: str = "traffic.traffic_light"

    def get_transform(self):
        return self.transform

    def get_stop_waypoints(self):
        return list(self.stop_waypoints)

    def get_state(self):
        return self.state


@dataclass
class FakeStopSign:
    id: int
    transform: Any
    trigger_volume: Any
    type_id: str = "traffic.stop"

    def get_transform(self):
        return self.transform


class FakeWorld:
    def __init__(self, actors: list) -> None:
        self.actors = actors
        self.elapsed_s = 12.5

    def get_actors(self):
        return list(self.actors)

    def get_snapshot(self):
        return types.SimpleNamespace(timestamp=types.SimpleNamespace(elapsed_seconds=self.elapsed_s))


# --- helpers ------------------------------------------------------------------------------
def dense_route(ego_wp, behind_m: int = 10, ahead_m: int = 70) -> list:
    points = [ego_wp.previous(float(behind_m))[0]]
    while len(points) < behind_m + ahead_m:
        points.append(points[-1].next(1.0)[0])
    option = types.SimpleNamespace(name="LANEFOLLOW")  # like agents.navigation RoadOption
    return [(wp.transform, option) for wp in points]


def along(wp, metres: float):
    return wp.next(metres)[0] if metres > 0 else wp.previous(-metres)[0]


def make_hero(wp, speed_mps: float = 5.0, box_offset_x: float = 0.4):
    transform = carla.Transform(carla.Location(wp.transform.location.x, wp.transform.location.y, 0.0),
                                carla.Rotation(yaw=wp.transform.rotation.yaw))
    forward = transform.get_forward_vector()
    return FakeActor(
        id=1, type_id="vehicle.lincoln.mkz_2017", transform=transform,
        bounding_box=carla.BoundingBox(carla.Location(box_offset_x, 0.0, 0.7), carla.Vector3D(2.45, 1.05, 0.75)),
        velocity=carla.Vector3D(forward.x * speed_mps, forward.y * speed_mps, 0.0), attributes={"role_name": "hero"},
        speed_limit_kmh=36.0)


def vehicle_at(actor_id: int, wp, speed_mps: float = 0.0, type_id: str = "vehicle.audi.a2",
               attributes: dict | None = None, yaw_offset: float = 0.0):
    yaw = wp.transform.rotation.yaw + yaw_offset
    transform = carla.Transform(carla.Location(wp.transform.location.x, wp.transform.location.y, 0.0),
                                carla.Rotation(yaw=yaw))
    forward = transform.get_forward_vector()
    return FakeActor(id=actor_id, type_id=type_id, transform=transform,
                     bounding_box=carla.BoundingBox(carla.Location(0.2, 0.0, 0.7), carla.Vector3D(1.85, 0.9, 0.75)),
                     velocity=carla.Vector3D(forward.x * speed_mps, forward.y * speed_mps, 0.0),
                     attributes=attributes or {"number_of_wheels": "4"})


def light_for(actor_id: int, stop_wp, state=carla.TrafficLightState.Red) -> FakeLight:
    # The light pole stands 4 m to the right of its stop line; its trigger volume sits on the lane.
    right = stop_wp.transform.get_right_vector()
    base = stop_wp.transform.location
    pole = carla.Transform(carla.Location(base.x + 4 * right.x, base.y + 4 * right.y, 0.0),
                           carla.Rotation(yaw=stop_wp.transform.rotation.yaw))
    local = carla.Location(base.x, base.y, 0.0)
    pole.inverse_transform(local)  # in place: world -> the pole's frame
    volume = carla.BoundingBox(local, carla.Vector3D(1.0, 1.5, 1.0))
    return FakeLight(id=actor_id, transform=pole, trigger_volume=volume, stop_waypoints=[stop_wp], state=state)


def stop_sign_for(actor_id: int, stop_wp) -> FakeStopSign:
    right = stop_wp.transform.get_right_vector()
    base = stop_wp.transform.location
    # The sign faces the traffic (rotated 90 deg from the lane); its volume is on the lane.
    sign = carla.Transform(carla.Location(base.x + 3 * right.x, base.y + 3 * right.y, 0.0),
                           carla.Rotation(yaw=stop_wp.transform.rotation.yaw + 90.0))
    local = carla.Location(base.x, base.y, 0.0)
    sign.inverse_transform(local)
    volume = carla.BoundingBox(local, carla.Vector3D(1.5, 1.5, 1.0))  # volume axes = sign axes
    return FakeStopSign(id=actor_id, transform=sign, trigger_volume=volume)


def forward_distance(scene, point_xy) -> float:
    return float(to_ego_frame(np.asarray(point_xy), scene["ego_location_world_coord"],
                              scene["ego_orientation_unit_vector"])[0])


def wp_xy(wp) -> np.ndarray:
    return np.array([wp.transform.location.x, wp.transform.location.y])
