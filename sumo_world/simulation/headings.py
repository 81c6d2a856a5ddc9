"""Background vehicles' bodies follow the path of their front bumper, as a car's do.

SUMO places a vehicle by its front bumper on its lane and turns its body to
the lane's direction at that point. Where that direction jumps (a netconvert
connection across an imported town's lane drop, a kink between an internal
lane and the next edge), the body swings round its front bumper in one tick
and its rear sweeps sideways into the next lane: on Town06 a car at 15.5 m/s
turned 40 degrees in 50 ms and its rear swept 1.6 m onto the ego beside it.
A car's rear axle instead trails its front along the path the front drove.
:class:`BodyHeadings` moves each vehicle's rear axle that way (a tractrix:
each tick it moves straight towards the front bumper's new position, keeping
its distance) and reports the heading from the rear axle to the front
bumper. On a straight lane that is the lane's direction; through a turn the
body lies on the chord of its path, as a car's does, instead of on the
tangent at its front (whose rear lies outside the turn).
"""
from __future__ import annotations

import math

import numpy as np

from sumo_world.ego.dynamics import EgoParams

__all__ = ["BodyHeadings", "MAX_GAP_S", "JUMP_DEG"]

# A vehicle not read for longer than this (it left the sensing radius and came back) starts afresh.
MAX_GAP_S = 0.2
# A front bumper that moved farther than this in one read was placed, not driven: it starts afresh.
_MAX_MOVE_M = 5.0
# A body this far from SUMO's heading counts as one of SUMO's jumps (BodyHeadings.jumps).
JUMP_DEG = 10.0


class BodyHeadings:
    """Each vehicle's heading from its rear axle, trailing its front bumper (SUMO frame and angles).

    The rear axle sits behind the front bumper at the share of the vehicle's
    length the ego's has (:class:`~sumo_world.ego.dynamics.EgoParams`: front
    overhang plus wheelbase). Reading twice at the same time gives the same headings.
    """

    def __init__(self, params: EgoParams = EgoParams()) -> None:
        self.rear_axle_share = (params.half_length_m + params.wheelbase_m / 2.0) / (2.0 * params.half_length_m)
        self.jumps = 0  # times a body's heading came JUMP_DEG from SUMO's (SUMO turned it faster than it drove)
        self._time_s = math.nan
        self._rear_now: dict[str, tuple[float, float, float, float]] = {}  # id -> (rear x, y, front x, y)
        self._rear_before: dict[str, tuple[float, float, float, float]] = {}
        self._before_s = math.nan
        self._apart: set[str] = set()  # vehicles JUMP_DEG from SUMO's heading at the last time read
        self._apart_before: set[str] = set()

    def __call__(self, time_s: float, ids: list[str], front_xy: np.ndarray, angle_deg: np.ndarray,
                 half_length_m: np.ndarray) -> np.ndarray:
        """The SUMO angles (degrees, clockwise from north) of the bodies of vehicles ``ids``.

        ``front_xy`` (N, 2): their front bumpers (SUMO frame); ``angle_deg``:
        SUMO's angles; ``half_length_m``: half their lengths.
        """
        if time_s != self._time_s:
            self._rear_before, self._before_s = self._rear_now, self._time_s
            self._apart_before, self._apart = self._apart, set()
            self._rear_now, self._time_s = {}, time_s
        front = np.asarray(front_xy, dtype=float).reshape(-1, 2)
        sumo_angle = np.asarray(angle_deg, dtype=float)
        if not len(ids):
            return sumo_angle.copy()
        axle = 2.0 * np.asarray(half_length_m, dtype=float) * self.rear_axle_share
        rad = np.radians(sumo_angle)
        rear = front - axle[:, None] * np.stack([np.sin(rad), np.cos(rad)], axis=1)  # SUMO's own body
        if 0.0 < time_s - self._before_s <= MAX_GAP_S and self._rear_before:
            for i, vid in enumerate(ids):
                before = self._rear_before.get(vid)
                if before is None or math.hypot(front[i, 0] - before[2], front[i, 1] - before[3]) > _MAX_MOVE_M:
                    continue
                dx, dy = front[i, 0] - before[0], front[i, 1] - before[1]
                gap = math.hypot(dx, dy)
                if gap > 1e-6:  # the rear axle moves straight towards the front, keeping its distance
                    rear[i, 0] = front[i, 0] - axle[i] * dx / gap
                    rear[i, 1] = front[i, 1] - axle[i] * dy / gap
        along = front - rear
        out = np.degrees(np.arctan2(along[:, 0], along[:, 1]))
        for i, vid in enumerate(ids):
            self._rear_now[vid] = (float(rear[i, 0]), float(rear[i, 1]), float(front[i, 0]), float(front[i, 1]))
            if abs((out[i] - sumo_angle[i] + 180.0) % 360.0 - 180.0) > JUMP_DEG:
                if vid not in self._apart_before and vid not in self._apart:
                    self.jumps += 1
                self._apart.add(vid)
        return out
