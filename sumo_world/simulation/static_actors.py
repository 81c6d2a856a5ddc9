"""Scripted actors only the ego sees (parked cars, standing walkers), merged into every snapshot."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sumo_world.simulation.snapshot import PEDESTRIAN_HALF_SIZE_M, ActorIds

__all__ = ["StaticActor", "StaticActors"]


@dataclass(frozen=True)
class StaticActor:
    """A scripted actor only the ego sees, merged into every snapshot's ``group``.

    Not :class:`sumo_world.scoring.records.ActorSample`, whose fields it shares: that is
    a time-stamped picture record in the picture's type names ("vehicle",
    "walker"); this is a pose without a time, in the world's type names.
    """

    group: str  # "vehicles" | "pedestrians"
    actor_id: int
    actor_type: str
    x: float
    y: float
    yaw_deg: float
    half_length_m: float
    half_width_m: float


class StaticActors:
    """The static actors of one world; their ids come from the world's :class:`ActorIds`."""

    def __init__(self, actor_ids: ActorIds) -> None:
        self._actor_ids = actor_ids
        self._actors: list[StaticActor] = []

    def add_vehicle(self, x: float, y: float, yaw_deg: float, half_length_m: float = 2.4,
                    half_width_m: float = 1.0, actor_type: str = "car") -> int:
        """Add a parked vehicle (CARLA frame); returns its id."""
        return self._add("vehicles", x, y, yaw_deg, half_length_m, half_width_m, actor_type)

    def add_pedestrian(self, x: float, y: float, yaw_deg: float = 0.0) -> int:
        """Add a standing pedestrian (CARLA frame); returns its id."""
        return self._add("pedestrians", x, y, yaw_deg, PEDESTRIAN_HALF_SIZE_M, PEDESTRIAN_HALF_SIZE_M, "pedestrian")

    def _add(self, group: str, x: float, y: float, yaw_deg: float, half_length_m: float,
             half_width_m: float, actor_type: str) -> int:
        actor_id = self._actor_ids(f"static_{len(self._actors)}")
        self._actors.append(StaticActor(group, actor_id, actor_type, float(x), float(y), float(yaw_deg),
                                        float(half_length_m), float(half_width_m)))
        return actor_id

    def merge(self, group: str, rows: np.ndarray | None, ids: list[int], sumo_ids: list[str],
              types: list[str], z: list[float]) -> np.ndarray | None:
        """Append ``group``'s static actors to SUMO's rows (cx, cy, yaw, speed, half_l, half_w) and lists."""
        statics = [a for a in self._actors if a.group == group]
        if not statics:
            return rows
        z += [float("nan")] * len(statics)  # placed by (x, y) only: on every level
        extra = np.array([(a.x, a.y, a.yaw_deg, 0.0, a.half_length_m, a.half_width_m) for a in statics])
        ids += [a.actor_id for a in statics]
        sumo_ids += [f"static_{a.actor_id}" for a in statics]
        types += [a.actor_type for a in statics]
        return extra if rows is None else np.vstack([rows, extra])
