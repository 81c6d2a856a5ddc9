"""Background vehicles' headings as a car could turn them.

SUMO places a vehicle by its front bumper on its lane and turns it to the
lane's direction there. Where that direction changes abruptly (a netconvert
connection across an imported town's lane drop, a kink between an internal
lane and the next edge) SUMO turns the vehicle by tens of degrees in one
tick, and its rear swings sideways into the next lane: on Town06 a car at
15.5 m/s turned 40 degrees in 50 ms, and its rear swung 1.6 m onto the car
beside it. No car turns like that, CARLA's included. The world reports the
heading a car could reach instead: from one tick to the next it turns by at
most the distance it travelled over the tightest radius it can drive at its
speed (its minimum turning radius, or ``v**2 / a_lat`` where grip binds; the
ego's own limits, :class:`sumo_world.ego.dynamics.EgoParams`). Its front
bumper stays where SUMO put it. SUMO's own turns keep within this (it slows
for curves at lower lateral acceleration), so only the jumps are changed.
"""
from __future__ import annotations

import math

import numpy as np

from sumo_world.ego.dynamics import EgoParams

__all__ = ["HeadingLimit", "MAX_GAP_S"]

# A vehicle not read for longer than this (it left the sensing radius and came back) starts afresh.
MAX_GAP_S = 0.2
# A correction this large counts as a jump SUMO made (:attr:`HeadingLimit.jumps`).
JUMP_DEG = 10.0


class HeadingLimit:
    """Limits the turn of each vehicle between reads to what a car can turn (SUMO angles, degrees).

    Reading twice at the same time gives the same headings.
    """

    def __init__(self, params: EgoParams = EgoParams()) -> None:
        self.min_radius_m = params.wheelbase_m / math.tan(math.radians(params.max_steer_deg))
        self.max_lateral_accel_mps2 = params.max_lateral_accel_mps2
        self.jumps = 0  # times SUMO turned a vehicle JUMP_DEG further than a car could follow
        self._jumping: set[str] = set()  # vehicles corrected by more than JUMP_DEG at the last time read
        self._time_s = math.nan
        self._now: dict[str, float] = {}  # headings given at self._time_s
        self._before: dict[str, float] = {}  # headings given at self._before_s
        self._before_s = math.nan

    def __call__(self, time_s: float, ids: list[str], angle_deg: np.ndarray, speed_mps: np.ndarray) -> np.ndarray:
        """The headings to report for vehicles ``ids`` whose SUMO angles and speeds are given."""
        if time_s != self._time_s:
            self._before, self._before_s = self._now, self._time_s
            self._now, self._time_s = {}, time_s
            jumping_before, self._jumping = self._jumping, set()
        else:
            jumping_before = set()
        out = np.asarray(angle_deg, dtype=float).copy()
        dt = time_s - self._before_s
        if 0.0 < dt <= MAX_GAP_S and self._before:
            speed = np.maximum(np.asarray(speed_mps, dtype=float), 0.0)
            radius = np.maximum(self.min_radius_m, speed * speed / self.max_lateral_accel_mps2)
            max_turn = np.degrees(speed * dt / radius)
            for i, vid in enumerate(ids):
                before = self._before.get(vid)
                if before is None:
                    continue
                turn = (out[i] - before + 180.0) % 360.0 - 180.0
                limited = min(max(turn, -max_turn[i]), max_turn[i])
                if abs(turn - limited) > JUMP_DEG:
                    if vid not in jumping_before and vid not in self._jumping:
                        self.jumps += 1
                    self._jumping.add(vid)
                out[i] = before + limited
        self._now.update(zip(ids, out.tolist()))
        return out
