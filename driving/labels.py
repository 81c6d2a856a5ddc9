"""Driving labels and the policy-output convention.

A policy (a LangProp script, the expert) answers a scene with a speed and a
steering angle. Two output forms are accepted, both with the angle in degrees in
the ego frame, positive to the right:

- the paper's ``(speed_level, turn_angle_deg)`` with level ``"MOVE"``, ``"SLOW"``
  or ``"STOP"`` (STOP means full brake);
- ``(target_speed_mps, turn_angle_deg)`` with a number for the speed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from langprop_common.reprs import bounded_repr
from driving.geometry import wrap_angle_deg

__all__ = [
    "SPEED_LEVEL_MPS",
    "SPEED_LEVELS",
    "REASONS",
    "DrivingLabel",
    "PolicyAction",
    "InvalidPolicyOutput",
    "parse_policy_output",
    "speed_level_for",
]

# The paper's controller targets for each level.
SPEED_LEVEL_MPS: dict[str, float] = {"MOVE": 6.0, "SLOW": 0.1, "STOP": 0.0}
SPEED_LEVELS: tuple[str, ...] = tuple(SPEED_LEVEL_MPS)
# Why the expert chose its speed; the first that applies, in priority order.
REASONS: tuple[str, ...] = (
    "red_light", "stop_sign", "pedestrian", "lead_vehicle", "junction_yield", "turn", "free_road",
)
MAX_TARGET_SPEED_MPS = 40.0


class InvalidPolicyOutput(ValueError):
    """A policy returned something that is not a (speed, steering) pair."""


@dataclass(frozen=True)
class PolicyAction:
    """A policy output in one normal form."""

    target_speed_mps: float
    steering_deg: float
    full_brake: bool = False


@dataclass(frozen=True)
class DrivingLabel:
    """What the expert would do in a scene, and why."""

    target_speed_mps: float
    steering_deg: float
    speed_level: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DrivingLabel":
        return cls(
            target_speed_mps=float(data["target_speed_mps"]),
            steering_deg=float(data["steering_deg"]),
            speed_level=str(data["speed_level"]),
            reason=str(data["reason"]),
        )


def speed_level_for(target_speed_mps: float) -> str:
    """The paper's level nearest in meaning to a target speed."""
    if target_speed_mps <= 0.05:
        return "STOP"
    if target_speed_mps < 1.0:
        return "SLOW"
    return "MOVE"


def parse_policy_output(output: Any) -> PolicyAction:
    """Normalize a policy's return value, or raise :class:`InvalidPolicyOutput`."""
    if isinstance(output, PolicyAction):
        return output
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise InvalidPolicyOutput(
            f"expected a pair (speed_level or target_speed_mps, turn_angle_deg), got {bounded_repr(output, 200)}"
        )
    speed, angle = output
    try:
        angle_deg = float(angle)
    except (TypeError, ValueError):
        raise InvalidPolicyOutput(f"turn angle is not a number: {bounded_repr(angle, 100)}") from None
    if not math.isfinite(angle_deg):
        raise InvalidPolicyOutput(f"turn angle is not finite: {angle_deg}")
    # Wrap to (-180, 180]: scripts sometimes return 350 for -10.
    angle_deg = wrap_angle_deg(angle_deg)
    if angle_deg == -180.0:
        angle_deg = 180.0
    if isinstance(speed, str):
        level = speed.strip().upper()
        if level not in SPEED_LEVEL_MPS:
            raise InvalidPolicyOutput(f"speed level {bounded_repr(speed, 50)} is not one of {', '.join(SPEED_LEVELS)}")
        return PolicyAction(SPEED_LEVEL_MPS[level], angle_deg, full_brake=level == "STOP")
    if isinstance(speed, bool):
        raise InvalidPolicyOutput(f"speed is a bool: {speed!r}")
    try:
        speed_mps = float(speed)
    except (TypeError, ValueError):
        raise InvalidPolicyOutput(f"speed is neither a level nor a number: {bounded_repr(speed, 100)}") from None
    if not math.isfinite(speed_mps) or speed_mps < 0.0 or speed_mps > MAX_TARGET_SPEED_MPS:
        raise InvalidPolicyOutput(f"target speed {speed_mps} m/s is outside [0, {MAX_TARGET_SPEED_MPS}]")
    return PolicyAction(speed_mps, angle_deg, full_brake=speed_mps == 0.0)
