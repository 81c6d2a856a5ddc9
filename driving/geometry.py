"""Units and planar geometry in CARLA's left-handed world frame.

Pure functions, one place for every conversion. Yaw is in degrees, clockwise
seen from above; the ego's right-hand side is (-sin yaw, cos yaw).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "kmh_to_mps", "mps_to_kmh", "wrap_angle_deg", "yaw_to_unit_vector", "unit_vector_to_yaw",
    "to_ego_frame", "relative_angle_deg", "box_corners",
]


def kmh_to_mps(speed_kmh: float) -> float:
    """km/h -> m/s."""
    return speed_kmh / 3.6


def mps_to_kmh(speed_mps: float) -> float:
    """m/s -> km/h."""
    return speed_mps * 3.6


def wrap_angle_deg(angle_deg: float) -> float:
    """Wrap to [-180, 180)."""
    return (angle_deg + 180.0) % 360.0 - 180.0


def yaw_to_unit_vector(yaw_deg: float) -> np.ndarray:
    """The unit forward vector (2,) of a yaw in degrees."""
    yaw = math.radians(yaw_deg)
    return np.array([math.cos(yaw), math.sin(yaw)])


def unit_vector_to_yaw(vector: np.ndarray) -> float:
    """The yaw in degrees of a forward vector (the inverse of :func:`yaw_to_unit_vector`)."""
    return math.degrees(math.atan2(float(vector[1]), float(vector[0])))


def to_ego_frame(points: np.ndarray, ego_xy: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """World points (..., 2) -> ego frame (..., 2) as (forward, right) in metres.

    ``forward`` is the ego's unit forward vector.
    """
    right = np.array([-forward[1], forward[0]])
    delta = np.asarray(points, dtype=float) - ego_xy
    return np.stack([delta @ forward, delta @ right], axis=-1)


def relative_angle_deg(ego_xy: np.ndarray, forward: np.ndarray, target_xy: np.ndarray) -> float:
    """Angle from the ego's heading to a target point, degrees, positive to the right."""
    fwd, right = to_ego_frame(np.asarray(target_xy, dtype=float), ego_xy, forward)
    return math.degrees(math.atan2(right, fwd))


def box_corners(center_xy: np.ndarray, forward: np.ndarray, half_length: float, half_width: float) -> np.ndarray:
    """The 4 corners (4, 2) of an oriented box, in order around it."""
    f = np.asarray(forward, dtype=float) * half_length
    r = np.array([-forward[1], forward[0]], dtype=float) * half_width
    c = np.asarray(center_xy, dtype=float)
    return np.array([c + f + r, c + f - r, c - f - r, c - f + r])
