"""The world at one tick, read from SUMO's subscriptions: the other actors in CARLA's frame.

SUMO's vehicle position is the front bumper, so centres are computed from it.
Actor ids given out are ints, assigned in order of first appearance
(deterministic for a seeded simulation); static actors
(:mod:`sumo_world.simulation.static_actors`) draw theirs from the same
:class:`ActorIds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from driving.geometry import wrap_angle_deg
from sumo_world.roads.transform import CarlaSumoTransform
from sumo_world.simulation.headings import BodyHeadings

__all__ = ["ActorArrays", "WorldSnapshot", "ActorIds", "SnapshotReader", "vehicle_vars", "LEVEL_SEPARATION_M",
           "PEDESTRIAN_HALF_SIZE_M"]

# Actors more than this far apart in height are on different levels (a bridge over a road, an
# overpass: about 10 m in CARLA's Town04/05): they neither collide nor see each other.
LEVEL_SEPARATION_M = 3.0
PEDESTRIAN_HALF_SIZE_M = 0.3  # a walker's footprint (CARLA walkers are about 0.6 m across)

_VCLASS_TO_ACTOR_TYPE = {
    "bicycle": "bicycle", "motorcycle": "motorcycle", "moped": "motorcycle",
    "truck": "truck", "trailer": "truck", "delivery": "truck",
    "bus": "bus", "coach": "bus", "tram": "bus",
}


@dataclass
class ActorArrays:
    """Other actors at one tick, as parallel arrays (CARLA frame, centres, SI units)."""

    ids: list[int] = field(default_factory=list)
    sumo_ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    yaw_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    speed_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_length_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_width_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # height of the lane under it; NaN: unknown

    def __len__(self) -> int:
        return len(self.ids)

    def on_level(self, z_m: float) -> np.ndarray:
        """(N,) True for actors at the height ``z_m`` (within :data:`LEVEL_SEPARATION_M`; unknown counts)."""
        if len(self.z_m) != len(self.ids) or not math.isfinite(z_m):
            return np.ones(len(self.ids), dtype=bool)
        return ~(np.abs(self.z_m - z_m) > LEVEL_SEPARATION_M)  # NaN compares False: kept


@dataclass
class WorldSnapshot:
    """The world at one tick: time, the ego's SUMO lane (and its height), vehicles and pedestrians.

    ``props`` holds static props (types are CARLA blueprint ids such as
    ``static.prop.vendingmachine``); only scenarios add them
    (:mod:`sumo_world.scenarios`).
    """

    time_s: float
    ego_lane_id: str
    vehicles: ActorArrays
    pedestrians: ActorArrays
    props: ActorArrays = field(default_factory=ActorArrays)
    ego_z_m: float = float("nan")  # the height of the lane SUMO maps the ego to (the net keeps OpenDRIVE's)


class ActorIds:
    """Int actor ids for SUMO ids (and static actors' names), in order of first appearance."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        actor_id = self._ids.get(name)
        if actor_id is None:
            actor_id = len(self._ids) + 1
            self._ids[name] = actor_id
        return actor_id


def vehicle_vars(c: Any) -> list[int]:
    """The vehicle variables a snapshot reads (libsumo constants ``c``)."""
    return [c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE]


# Rows merged into a snapshot's group: (rows, ids, sumo ids, types, heights) -> rows (see StaticActors.merge).
MergeRows = Callable[[str, "np.ndarray | None", list[int], list[str], list[str], list[float]], "np.ndarray | None"]


class SnapshotReader:
    """Builds :class:`WorldSnapshot` from the subscribed variables of a running simulation.

    ``vehicle_values`` returns the subscribed variables of the vehicles a
    snapshot holds (all, or those near the ego); ``merge`` adds the static
    actors to a group's rows; ``skip`` are SUMO ids never reported (the ego
    and its shadow).
    """

    def __init__(self, sumo: Any, transform: CarlaSumoTransform, actor_ids: ActorIds, skip: tuple[str, ...],
                 merge: MergeRows, headings: BodyHeadings | None = None) -> None:
        self._sumo = sumo
        self._transform = transform
        self._int_id = actor_ids
        self._skip = skip
        self._merge = merge
        self._type_cache: dict[str, tuple[str, float, float]] = {}
        self.headings = headings or BodyHeadings()

    def read(self, time_s: float, vehicle_values: dict[str, dict[int, Any]], ego_lane_id: str,
             ego_z_m: float) -> WorldSnapshot:
        """Every other actor's state now (CARLA frame, centres)."""
        sumo = self._sumo
        int_id = self._int_id
        v_ids: list[int] = []
        v_sumo: list[str] = []
        v_types: list[str] = []
        raw: list[tuple[float, float, float, float, float, float]] = []
        c = sumo.constants
        pos, ang, spd, typ = c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE
        v_z: list[float] = []
        for vid, values in vehicle_values.items():
            if vid in self._skip or not values:
                continue
            actor_type, half_l, half_w = self._vehicle_type(values[typ])
            px, py, *z = values[pos]  # 2 values for a vehicle without a valid position (teleporting)
            pz = z[0] if z else math.nan
            raw.append((px, py, values[ang], values[spd], half_l, half_w))
            v_z.append(pz)
            v_ids.append(int_id(vid))
            v_sumo.append(vid)
            v_types.append(actor_type)
        rows = np.asarray(raw, dtype=float) if raw else None
        if rows is not None:
            rows[:, 2] = self.headings(time_s, v_sumo, rows[:, :2], rows[:, 2], rows[:, 4])
        vehicles = self._merge("vehicles", self._to_carla(rows, front=True), v_ids, v_sumo, v_types, v_z)

        p_ids: list[int] = []
        p_sumo: list[str] = []
        p_z: list[float] = []
        p_raw: list[tuple[float, float, float, float, float, float]] = []
        for pid, values in sumo.person.getAllSubscriptionResults().items():
            if not values:
                continue
            px, py, *z = values[pos]
            pz = z[0] if z else math.nan
            p_raw.append((px, py, values[ang], values[spd], PEDESTRIAN_HALF_SIZE_M, PEDESTRIAN_HALF_SIZE_M))
            p_z.append(pz)
            p_ids.append(int_id("person:" + pid))
            p_sumo.append(pid)
        p_types = ["pedestrian"] * len(p_ids)
        pedestrians = self._merge("pedestrians", self._to_carla(p_raw, front=False), p_ids, p_sumo, p_types, p_z)
        return WorldSnapshot(time_s, ego_lane_id, _arrays(v_ids, v_sumo, v_types, vehicles, v_z),
                             _arrays(p_ids, p_sumo, p_types, pedestrians, p_z), ego_z_m=ego_z_m)

    def _vehicle_type(self, type_id: str) -> tuple[str, float, float]:
        cached = self._type_cache.get(type_id)
        if cached is None:
            vehicletype = self._sumo.vehicletype
            vclass = vehicletype.getVehicleClass(type_id)
            cached = (_VCLASS_TO_ACTOR_TYPE.get(vclass, "car"),
                      max(0.5, vehicletype.getLength(type_id) / 2.0),
                      max(0.5, vehicletype.getWidth(type_id) / 2.0))
            self._type_cache[type_id] = cached
        return cached

    def _to_carla(self, raw: list[tuple[float, ...]] | np.ndarray | None, front: bool) -> np.ndarray | None:
        """SUMO rows (x, y, angle, speed, half_l, half_w) -> CARLA rows (cx, cy, yaw, speed, half_l, half_w)."""
        if raw is None or not len(raw):
            return None
        data = np.asarray(raw, dtype=float)
        x, y = self._transform.to_carla(data[:, 0], data[:, 1])
        yaw = data[:, 2] - 90.0
        if front:  # SUMO's vehicle position is the front bumper
            rad = np.radians(yaw)
            x = x - data[:, 4] * np.cos(rad)
            y = y - data[:, 4] * np.sin(rad)
        data[:, 0], data[:, 1], data[:, 2] = x, y, yaw
        return data


def _arrays(ids: list[int], sumo_ids: list[str], types: list[str], data: np.ndarray | None,
            z: list[float]) -> ActorArrays:
    if data is None or not len(data):
        return ActorArrays()
    return ActorArrays(ids=ids, sumo_ids=sumo_ids, types=types, xy=data[:, :2].copy(),
                       yaw_deg=wrap_angle_deg(data[:, 2]), speed_mps=data[:, 3].copy(),
                       half_length_m=data[:, 4].copy(), half_width_m=data[:, 5].copy(),
                       z_m=np.asarray(z, dtype=float))
