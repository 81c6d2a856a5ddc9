"""The one place that maps between CARLA's and SUMO's coordinate frames.

CARLA's world frame is left-handed (x east, y south when seen from above,
yaw in degrees clockwise from +x). SUMO's network frame is right-handed (x
east, y north) and shifted by the net's ``netOffset``; SUMO's vehicle angle
is a compass heading in degrees, clockwise from north (+y).

So ``x_sumo = x_carla + off_x`` and ``y_sumo = -y_carla + off_y``, where
``(off_x, off_y)`` is the net's location offset. A net imported with
``netconvert --offset.disable-normalization`` has a zero offset, and SUMO
coordinates are CARLA's with y negated.

Functions accept floats or numpy arrays (element-wise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from driving.geometry import wrap_angle_deg

__all__ = ["CarlaSumoTransform"]


@dataclass(frozen=True)
class CarlaSumoTransform:
    """CARLA <-> SUMO coordinates for one net (``off_x``, ``off_y``: the net's offset)."""

    off_x: float = 0.0
    off_y: float = 0.0

    @classmethod
    def from_net(cls, net: Any) -> "CarlaSumoTransform":
        """The transform of a sumolib net (reads ``net.getLocationOffset()``)."""
        off_x, off_y = net.getLocationOffset()
        return cls(float(off_x), float(off_y))

    # Positions ------------------------------------------------------------------

    def to_sumo(self, x: Any, y: Any) -> tuple[Any, Any]:
        """CARLA (x, y) -> SUMO (x, y)."""
        return _add(x, self.off_x), _add(_neg(y), self.off_y)

    def to_carla(self, x: Any, y: Any) -> tuple[Any, Any]:
        """SUMO (x, y) -> CARLA (x, y)."""
        return _add(x, -self.off_x), _neg(_add(y, -self.off_y))

    def points_to_carla(self, points: Any) -> np.ndarray:
        """(N, >=2) SUMO points -> (N, 2) CARLA points."""
        array = _as_points(points)
        x, y = self.to_carla(array[:, 0], array[:, 1])
        return np.column_stack([x, y])

    def points_to_sumo(self, points: Any) -> np.ndarray:
        """(N, >=2) CARLA points -> (N, 2) SUMO points."""
        array = _as_points(points)
        x, y = self.to_sumo(array[:, 0], array[:, 1])
        return np.column_stack([x, y])

    # Headings -------------------------------------------------------------------

    @staticmethod
    def yaw_to_sumo_angle(yaw_deg: Any) -> Any:
        """CARLA yaw (deg, clockwise from +x, y down) -> SUMO angle (deg, clockwise from north), in [0, 360).

        CARLA yaw 0 points +x (east) = SUMO 90; CARLA yaw 90 points +y_carla
        (south) = SUMO 180.
        """
        if isinstance(yaw_deg, np.ndarray):
            return (yaw_deg.astype(float) + 90.0) % 360.0
        return (float(yaw_deg) + 90.0) % 360.0

    @staticmethod
    def sumo_angle_to_yaw(angle: Any) -> Any:
        """SUMO angle (deg, clockwise from north) -> CARLA yaw in [-180, 180)."""
        return wrap_angle_deg(np.asarray(angle, dtype=float) - 90.0 if isinstance(angle, np.ndarray)
                              else float(angle) - 90.0)

    @staticmethod
    def sumo_direction_to_yaw(dx: Any, dy: Any) -> Any:
        """Yaw (CARLA deg) of a direction vector given in SUMO's frame."""
        return np.degrees(np.arctan2(-np.asarray(dy, dtype=float), np.asarray(dx, dtype=float))) \
            if isinstance(dx, np.ndarray) else float(np.degrees(np.arctan2(-float(dy), float(dx))))


def _neg(value: Any) -> Any:
    return -np.asarray(value, dtype=float) if isinstance(value, (np.ndarray, list, tuple)) else -float(value)


def _add(value: Any, offset: float) -> Any:
    return np.asarray(value, dtype=float) + offset if isinstance(value, (np.ndarray, list, tuple)) \
        else float(value) + offset


def _as_points(points: Any) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.size == 0:
        return np.zeros((0, 2))
    return array.reshape(len(array), -1)[:, :2]
