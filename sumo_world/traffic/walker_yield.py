"""SUMO's walkers do not walk into the ego's body.

SUMO's walkers keep to sidewalks, walking areas and crossings and do not look
at cars: where netconvert's guessed walking area at a junction corner reaches
into a car lane (Town10HD: a walker's path 0.15 m inside the lane), a walker
walks into the ego standing there, in a queue at a red. CARLA's walkers keep
to a navigation mesh of sidewalks and crosswalks and never enter a lane
beside them. :class:`WalkerYield` stops each SUMO walker near the ego whose
next :data:`LOOK_AHEAD_S` of walking would touch the ego's body (its footprint
plus :data:`MARGIN_M`), and lets it walk on once its way is clear. A walker
held :data:`GIVE_UP_S` (the ego stands across its way for good) ends its
walk: it is removed, as a person would turn back, and nobody waits for the
other for ever. Scenario walkers are the scenarios' business and are left
alone.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from driving.geometry import to_ego_frame, yaw_to_unit_vector
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.simulation.snapshot import PEDESTRIAN_HALF_SIZE_M

__all__ = ["WalkerYield", "LOOK_AHEAD_S", "MARGIN_M", "GIVE_UP_S"]

LOOK_AHEAD_S = 0.5  # how far ahead a walker's way is checked, in seconds of its walking speed (SUMO stops it at once)
MARGIN_M = 0.2  # the distance a walker keeps to the ego's body
GIVE_UP_S = 20.0  # a walker held this long ends its walk
_RANGE_M = 12.0  # walkers farther from the ego's centre cannot reach its body within LOOK_AHEAD_S
_REACH_M = PEDESTRIAN_HALF_SIZE_M * math.sqrt(2.0)  # a walker's footprint reaches this far from its centre
_SAMPLES = 6  # points checked along a walker's way


class WalkerYield:
    """Holds the SUMO walkers about to walk into the ego (see the module docstring)."""

    def __init__(self, world: Any, ego_params: EgoParams | None = None) -> None:
        self.world = world
        self.ego_params = ego_params or getattr(world, "ego_params", None) or EgoParams()
        self._held: dict[str, tuple[float, float]] = {}  # walker -> (its walking speed, time it was held)
        self.holds = 0  # walkers held for the ego (once per approach)
        self.gave_up = 0  # walkers removed after GIVE_UP_S held

    def update(self, ego: EgoState, snapshot: Any) -> None:
        """Hold the walkers of ``snapshot`` about to walk into ``ego``; let the others walk on."""
        person = self.world.sumo.person
        walkers = snapshot.pedestrians
        near = np.nonzero(np.linalg.norm(walkers.xy - ego.xy, axis=1) < _RANGE_M)[0] if len(walkers) else []
        if not len(near) and not self._held:
            return
        in_sumo = set(person.getIDList())
        blocked: dict[str, float] = {}  # walker -> its walking speed
        for k in near:
            walker_id = walkers.sumo_ids[k]
            if walker_id not in in_sumo:
                continue  # a scenario's or a static walker
            held = self._held.get(walker_id)
            speed = held[0] if held is not None else float(person.getMaxSpeed(walker_id))
            if self._walks_into(ego, walkers.xy[k], float(walkers.yaw_deg[k]), speed):
                blocked[walker_id] = speed
        now = snapshot.time_s
        for walker_id, speed in blocked.items():
            if walker_id not in self._held:
                self._held[walker_id] = (speed, now)
                self.holds += 1
                person.setSpeed(walker_id, 0.0)
            elif now - self._held[walker_id][1] >= GIVE_UP_S:
                del self._held[walker_id]
                self.gave_up += 1
                person.remove(walker_id)
        for walker_id in [w for w in self._held if w not in blocked]:
            speed, _ = self._held.pop(walker_id)
            if walker_id in in_sumo:
                person.setSpeed(walker_id, speed)

    def _walks_into(self, ego: EgoState, xy: np.ndarray, yaw_deg: float, speed_mps: float) -> bool:
        """Whether a walker at ``xy`` heading ``yaw_deg`` comes within :data:`MARGIN_M` of the ego's body in
        :data:`LOOK_AHEAD_S` of walking, coming closer to it (one walking away is never held)."""
        steps = np.linspace(0.0, speed_mps * LOOK_AHEAD_S, _SAMPLES)
        points = xy + steps[:, None] * yaw_to_unit_vector(yaw_deg)
        gaps = self._gaps(ego, points)
        return bool(gaps[1:].min() < _REACH_M + MARGIN_M and gaps[1:].min() < gaps[0])

    def _gaps(self, ego: EgoState, points: np.ndarray) -> np.ndarray:
        """Distances of ``points`` from the ego's footprint (0 inside it)."""
        p = self.ego_params
        local = np.abs(to_ego_frame(points, ego.xy, ego.forward))
        along, across = local[:, 0] - p.half_length_m, local[:, 1] - p.half_width_m
        return np.hypot(np.maximum(along, 0.0), np.maximum(across, 0.0))
