"""Background vehicles' bodies do not swing round their front bumpers in one tick.

SUMO places a vehicle by its front bumper on its lane and turns its body to
the lane's direction at that point. Where that direction jumps (a netconvert
connection across an imported town's lane drop, a kink between an internal
lane and the next edge), the body swings round its front bumper in one tick
and its rear sweeps sideways into the next lane: on Town06 a car at 15.5 m/s
turned 40 degrees in 50 ms and its rear swept 1.6 m onto the ego beside it.
A car's rear axle instead trails its front along the path the front drove.
:class:`BodyHeadings` keeps SUMO's heading until it turns more than
:data:`JUMP_DEG` in one tick (no car turns that fast; SUMO's turns through
junctions step by less); from there the vehicle's rear axle trails its front
bumper (a tractrix: each tick it moves straight towards the front's new
position, keeping its distance) until the body's heading is back within
:data:`SETTLE_DEG` of SUMO's. Trailing everywhere would put every turning
car's body on the chord of its path, as a real car's; it was tried, and it
left cars that stopped during SUMO's steep low-speed lane changes standing
across two lanes, where the ego waited for them and they for the ego.
"""
from __future__ import annotations

import math

import numpy as np

from sumo_world.ego.dynamics import EgoParams

__all__ = ["BodyHeadings", "MAX_GAP_S", "JUMP_DEG", "SETTLE_DEG"]

# A vehicle not read for longer than this (it left the sensing radius and came back) starts afresh.
MAX_GAP_S = 0.2
# A front bumper that moved farther than this in one read was placed, not driven: it starts afresh.
_MAX_MOVE_M = 5.0
# SUMO turning a vehicle more than this in one tick is a jump no car makes: its rear trails from there.
JUMP_DEG = 25.0
# A trailing body this close to SUMO's heading takes SUMO's heading again.
SETTLE_DEG = 2.0


class BodyHeadings:
    """Each vehicle's heading: SUMO's, or after one of SUMO's jumps its rear axle's, trailing the front.

    The rear axle sits behind the front bumper at the share of the vehicle's
    length the ego's has (:class:`~sumo_world.ego.dynamics.EgoParams`: front
    overhang plus wheelbase). Reading twice at the same time gives the same headings.
    """

    def __init__(self, params: EgoParams = EgoParams()) -> None:
        self.rear_axle_share = (params.half_length_m + params.wheelbase_m / 2.0) / (2.0 * params.half_length_m)
        self.jumps = 0  # SUMO's turns of more than JUMP_DEG in one tick
        self._time_s = math.nan
        # id -> (rear axle x, y, front x, y, SUMO's angle, trailing) at self._time_s, and the read before it
        self._now: dict[str, tuple[float, float, float, float, float, bool]] = {}
        self._before: dict[str, tuple[float, float, float, float, float, bool]] = {}
        self._before_s = math.nan

    def __call__(self, time_s: float, ids: list[str], front_xy: np.ndarray, angle_deg: np.ndarray,
                 half_length_m: np.ndarray) -> np.ndarray:
        """The SUMO angles (degrees, clockwise from north) of the bodies of vehicles ``ids``.

        ``front_xy`` (N, 2): their front bumpers (SUMO frame); ``angle_deg``:
        SUMO's angles; ``half_length_m``: half their lengths.
        """
        if time_s != self._time_s:
            self._before, self._before_s = self._now, self._time_s
            self._now, self._time_s = {}, time_s
        front = np.asarray(front_xy, dtype=float).reshape(-1, 2)
        sumo_angle = np.asarray(angle_deg, dtype=float)
        out = sumo_angle.copy()
        if not len(ids):
            return out
        axle = 2.0 * np.asarray(half_length_m, dtype=float) * self.rear_axle_share
        rad = np.radians(sumo_angle)
        rear = front - axle[:, None] * np.stack([np.sin(rad), np.cos(rad)], axis=1)  # SUMO's own body
        follow = 0.0 < time_s - self._before_s <= MAX_GAP_S
        for i, vid in enumerate(ids):
            before = self._before.get(vid) if follow else None
            trailing = False
            if before is not None and math.hypot(front[i, 0] - before[2], front[i, 1] - before[3]) <= _MAX_MOVE_M:
                jump = abs(_wrap(sumo_angle[i] - before[4])) > JUMP_DEG
                if jump and not before[5] and vid not in self._now:  # counted at its first read
                    self.jumps += 1
                if jump or before[5]:
                    dx, dy = front[i, 0] - before[0], front[i, 1] - before[1]
                    gap = math.hypot(dx, dy)
                    if gap > 1e-6:  # the rear axle moves straight towards the front, keeping its distance
                        heading = math.degrees(math.atan2(dx, dy))
                        trailing = abs(_wrap(heading - sumo_angle[i])) > SETTLE_DEG
                        if trailing:
                            rear[i] = front[i, 0] - axle[i] * dx / gap, front[i, 1] - axle[i] * dy / gap
                            out[i] = heading
            self._now[vid] = (float(rear[i, 0]), float(rear[i, 1]), float(front[i, 0]), float(front[i, 1]),
                              float(sumo_angle[i]), trailing)
        return out


def _wrap(angle_deg: float) -> float:
    """``angle_deg`` in [-180, 180)."""
    return (angle_deg + 180.0) % 360.0 - 180.0
