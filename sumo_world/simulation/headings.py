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
from dataclasses import dataclass

import numpy as np

from driving.geometry import wrap_angle_deg
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
        self._now: _Read | None = None  # what was read at self._time_s
        self._before: _Read | None = None  # and at the time read before it
        self._before_s = math.nan

    def __call__(self, time_s: float, ids: list[str], front_xy: np.ndarray, angle_deg: np.ndarray,
                 half_length_m: np.ndarray) -> np.ndarray:
        """The SUMO angles (degrees, clockwise from north) of the bodies of vehicles ``ids``.

        ``front_xy`` (N, 2): their front bumpers (SUMO frame); ``angle_deg``:
        SUMO's angles; ``half_length_m``: half their lengths.
        """
        first_read = time_s != self._time_s
        if first_read:
            self._before, self._before_s = self._now, self._time_s
            self._now, self._time_s = None, time_s
        front = np.asarray(front_xy, dtype=float).reshape(-1, 2)
        sumo_angle = np.asarray(angle_deg, dtype=float)
        out = sumo_angle.copy()
        trailing: dict[str, tuple[float, float]] = {}
        before = self._before
        n = len(ids)
        if n and before is not None and 0.0 < time_s - self._before_s <= MAX_GAP_S:
            k = np.fromiter((before.index.get(vid, -1) for vid in ids), dtype=np.intp, count=n)
            seen = k >= 0
            k = np.where(seen, k, 0)
            driven = seen & (np.hypot(*(front - before.front[k]).T) <= _MAX_MOVE_M)
            jump = driven & (np.abs(wrap_angle_deg(sumo_angle - before.angle[k])) > JUMP_DEG)
            was_trailing = (driven & np.fromiter((vid in before.trailing for vid in ids), dtype=bool, count=n)
                            if before.trailing else np.zeros(n, dtype=bool))
            if first_read:
                self.jumps += int(np.count_nonzero(jump & ~was_trailing))
            for i in np.nonzero(jump | was_trailing)[0]:  # a few vehicles at a time
                vid = ids[i]
                axle = 2.0 * float(half_length_m[i]) * self.rear_axle_share
                if vid in before.trailing:
                    rear_x, rear_y = before.trailing[vid]
                else:  # SUMO's body the tick before
                    rad = math.radians(before.angle[k[i]])
                    rear_x = before.front[k[i], 0] - axle * math.sin(rad)
                    rear_y = before.front[k[i], 1] - axle * math.cos(rad)
                dx, dy = front[i, 0] - rear_x, front[i, 1] - rear_y
                gap = math.hypot(dx, dy)
                if gap <= 1e-6:
                    continue
                # the rear axle moves straight towards the front, keeping its distance
                heading = math.degrees(math.atan2(dx, dy))
                if abs(wrap_angle_deg(heading - sumo_angle[i])) > SETTLE_DEG:
                    trailing[vid] = (front[i, 0] - axle * dx / gap, front[i, 1] - axle * dy / gap)
                    out[i] = heading
        self._now = _Read(dict(zip(ids, range(n))), front.copy(), sumo_angle.copy(), trailing)
        return out


@dataclass(frozen=True)
class _Read:
    """The vehicles of one read: their rows, front bumpers, SUMO's angles, and the trailing ones' rear axles."""

    index: dict[str, int]
    front: np.ndarray
    angle: np.ndarray
    trailing: dict[str, tuple[float, float]]

