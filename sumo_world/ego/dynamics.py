"""The ego car: a kinematic bicycle driven by CARLA-style throttle, steer and brake.

State and controls are in CARLA's frame and convention: yaw in degrees,
clockwise seen from above (left-handed x, y), ``steer`` +1 turns right. The
limits approximate CARLA's default hero (a Lincoln MKZ): wheelbase 2.9 m,
bounding-box extents 2.45 x 1.05 m. CARLA's per-wheel maximum of 70 degrees
is a physics-engine value for the inner wheel at parking speed; a kinematic
bicycle with that angle turns on a 1 m radius, so the bicycle's effective
front-wheel angle is limited to 35 degrees (a 4-5 m turning radius, as the car
has) and shrinks with speed the way the real car's lateral grip does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from driving.geometry import wrap_angle_deg

__all__ = ["EgoParams", "EgoState", "EgoVehicle"]


@dataclass(frozen=True)
class EgoParams:
    """Physical limits of the ego (SI units)."""

    wheelbase_m: float = 2.9
    half_length_m: float = 2.45
    half_width_m: float = 1.05
    max_steer_deg: float = 35.0
    # Lateral acceleration the steering may ask for at speed (keeps fast turns physical).
    max_lateral_accel_mps2: float = 8.0
    max_accel_mps2: float = 4.0  # full throttle from standstill
    max_brake_mps2: float = 8.0  # full brake
    rolling_decel_mps2: float = 0.3  # coasting: rolling resistance
    drag_per_mps: float = 0.015  # quadratic drag coefficient (decel = k v^2)
    max_speed_mps: float = 40.0


@dataclass
class EgoState:
    """Where the ego is: centre (x, y), CARLA frame, yaw (deg), forward speed (m/s, >= 0)."""

    x: float
    y: float
    yaw_deg: float
    speed_mps: float = 0.0
    accel_mps2: float = 0.0
    yaw_rate_dps: float = 0.0

    @property
    def forward(self) -> np.ndarray:
        yaw = math.radians(self.yaw_deg)
        return np.array([math.cos(yaw), math.sin(yaw)])

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])

    @property
    def velocity(self) -> np.ndarray:
        return self.forward * self.speed_mps


class EgoVehicle:
    """Integrates the bicycle model one tick at a time (semi-implicit Euler about the rear axle)."""

    def __init__(self, state: EgoState, params: EgoParams | None = None) -> None:
        self.params = params or EgoParams()
        self.state = state

    def apply(self, throttle: float, steer: float, brake: float, dt: float,
              hand_brake: bool = False, reverse: bool = False) -> EgoState:
        """Advance by ``dt`` seconds under the given control; returns the new state.

        Inputs are clipped to CARLA's ranges (throttle, brake in [0, 1], steer in
        [-1, 1]). Reverse gear is not modelled: the car never moves backwards.
        """
        p = self.params
        s = self.state
        throttle = _clip(throttle, 0.0, 1.0)
        brake = 1.0 if hand_brake else _clip(brake, 0.0, 1.0)
        steer = _clip(steer, -1.0, 1.0)
        if reverse:
            throttle = 0.0

        v = s.speed_mps
        accel = throttle * p.max_accel_mps2 * max(0.0, 1.0 - v / p.max_speed_mps)
        decel = brake * p.max_brake_mps2 + p.drag_per_mps * v * v
        if v > 0.0:
            decel += p.rolling_decel_mps2
        new_v = v + (accel - decel) * dt
        if new_v < 0.0:  # braking stops the car, never reverses it
            new_v = 0.0

        wheel = math.radians(steer * p.max_steer_deg)
        mean_v = 0.5 * (v + new_v)
        if mean_v > 1e-3:
            # Lateral grip: |v^2 tan(d) / L| <= a_lat.
            grip = math.atan(p.max_lateral_accel_mps2 * p.wheelbase_m / (mean_v * mean_v))
            wheel = max(-grip, min(grip, wheel))
        yaw_rate = mean_v * math.tan(wheel) / p.wheelbase_m  # rad/s, + = clockwise = right
        yaw = math.radians(s.yaw_deg)
        new_yaw = yaw + yaw_rate * dt
        # Move the rear axle along the mean heading, then place the centre ahead of it.
        half_wb = 0.5 * p.wheelbase_m
        rear_x = s.x - half_wb * math.cos(yaw)
        rear_y = s.y - half_wb * math.sin(yaw)
        mid_yaw = 0.5 * (yaw + new_yaw)
        rear_x += mean_v * dt * math.cos(mid_yaw)
        rear_y += mean_v * dt * math.sin(mid_yaw)
        x = rear_x + half_wb * math.cos(new_yaw)
        y = rear_y + half_wb * math.sin(new_yaw)
        yaw_deg = wrap_angle_deg(math.degrees(new_yaw))
        self.state = EgoState(x=x, y=y, yaw_deg=yaw_deg, speed_mps=new_v,
                              accel_mps2=(new_v - v) / dt if dt > 0 else 0.0,
                              yaw_rate_dps=math.degrees(yaw_rate))
        return self.state


def _clip(value: float, low: float, high: float) -> float:
    value = float(value)
    if math.isnan(value):
        return low
    return max(low, min(high, value))
