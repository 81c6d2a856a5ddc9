"""Units and planar geometry in CARLA's left-handed world frame.

Pure functions, one place for every conversion. Yaw is in degrees, clockwise
seen from above; the ego's right-hand side is (-sin yaw, cos yaw).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)

__all__ = [
    "kmh_to_mps", "mps_to_kmh", "wrap_angle_deg", "yaw_to_unit_vector", "unit_vector_to_yaw",
    "to_ego_frame", "relative_angle_deg", "box_corners", "Boxes", "boxes_overlap",
]


def kmh_to_mps(speed_kmh: float) -> float:
    """km/h -> m/s."""
    return speed_kmh / 3.6


def mps_to_kmh(speed_mps: float) -> float:
    """m/s -> km/h."""
    return speed_mps * 3.6


def wrap_angle_deg(angle_deg: FloatOrArray) -> FloatOrArray:
    """Wrap an angle in degrees (or an array of them) to [-180, 180)."""
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


@dataclass
class Boxes:
    """Oriented boxes, broadcastable arrays: centres (..., 2), unit forward (..., 2),
    half lengths (...), half widths (...)."""

    center: np.ndarray
    forward: np.ndarray
    half_length: np.ndarray
    half_width: np.ndarray


def _radius(box: Boxes, axis: np.ndarray) -> np.ndarray:
    """Half the extent of ``box`` projected on unit ``axis`` (..., 2)."""
    f_dot = np.abs(np.sum(box.forward * axis, axis=-1))
    r_dot = np.abs(box.forward[..., 1] * axis[..., 0] * -1.0 + box.forward[..., 0] * axis[..., 1])
    return box.half_length * f_dot + box.half_width * r_dot


def boxes_overlap(a: Boxes, b: Boxes) -> np.ndarray:
    """Element-wise (broadcast) overlap of two sets of oriented boxes (separating axes)."""
    delta = b.center - a.center
    overlap = None
    for box in (a, b):
        fwd = box.forward
        right = np.stack([-fwd[..., 1], fwd[..., 0]], axis=-1)
        for axis in (fwd, right):
            sep = np.abs(np.sum(delta * axis, axis=-1)) > _radius(a, axis) + _radius(b, axis)
            overlap = ~sep if overlap is None else overlap & ~sep
    return overlap
