"""Controllers that turn (target speed, steering angle) into throttle, steer, brake.

Shared by every agent (the expert, LangProp scripts, the embedded world's
built-in agents), so that a policy's output means the same car motion wherever
it runs.

The gains are the LangProp paper's (inherited from TransFuser's agent): the
steering PID works on ``steering_deg / 90`` with Kp 1.25, Ki 0.75, Kd 0.3; the
speed PID on the speed error with Kp 5.0, Ki 0.5, Kd 1.0; throttle at most 0.75.
Those gains were tuned for a PID whose integral term is the *mean* error over a
one-second window and whose derivative term is the error change per 20 Hz tick;
:class:`PIDController` keeps that form so that the gains carry over.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from driving.clock import TICK_S

__all__ = ["PIDController", "VehicleControllerConfig", "VehicleController"]

# The tick the paper's gains were tuned at (CARLA leaderboard, 20 Hz).
REFERENCE_DT_S = TICK_S


class PIDController:
    """A PID in the paper's form: integral = mean error over the last ``window_s``
    seconds, derivative = error change per reference tick (0.05 s).

    The windowed mean keeps the integral bounded (no wind-up after a long stop);
    the derivative is rescaled by ``REFERENCE_DT_S / dt`` so that the same gains
    behave the same at another tick rate.
    """

    def __init__(self, kp: float, ki: float, kd: float, dt: float = REFERENCE_DT_S,
                 window_s: float = 1.0) -> None:
        if dt <= 0.0:
            raise ValueError(f"dt must be positive, got {dt}")
        if window_s <= 0.0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.kp, self.ki, self.kd, self.dt = float(kp), float(ki), float(kd), float(dt)
        self._window: deque[float] = deque(maxlen=max(2, int(round(window_s / dt))))

    def reset(self) -> None:
        """Forget the error history."""
        self._window.clear()

    def step(self, error: float) -> float:
        """One tick: the control output for the current ``error``."""
        self._window.append(float(error))
        integral = float(np.mean(self._window))
        derivative = 0.0
        if len(self._window) >= 2:
            derivative = (self._window[-1] - self._window[-2]) * (REFERENCE_DT_S / self.dt)
        return self.kp * error + self.ki * integral + self.kd * derivative


@dataclass(frozen=True)
class VehicleControllerConfig:
    """The controller's constants (defaults: the paper's)."""

    steer_kp: float = 1.25
    steer_ki: float = 0.75
    steer_kd: float = 0.3
    speed_kp: float = 5.0
    speed_ki: float = 0.5
    speed_kd: float = 1.0
    max_throttle: float = 0.75
    # The speed error fed to the speed PID is clipped to [0, max_speed_error_mps]:
    # throttle rises gently instead of jumping to the clip on every start.
    max_speed_error_mps: float = 0.25
    # Below this target speed the car brakes to a halt (the paper's SLOW 0.1 and STOP 0).
    stop_below_mps: float = 0.4
    # Brake when faster than this ratio of the target speed ...
    overspeed_ratio: float = 1.1
    # ... with a brake that grows with the excess speed, from min to 1 over this many m/s.
    overspeed_brake_min: float = 0.3
    overspeed_full_brake_mps: float = 3.0
    # Steering angle (degrees) that maps to a full steering error of 1.
    steer_scale_deg: float = 90.0


class VehicleController:
    """(current speed, target speed, steering angle) -> (throttle, steer, brake).

    Outputs follow CARLA's ``VehicleControl``: throttle in [0, max_throttle],
    steer in [-1, 1] (+1 = full right), brake in [0, 1]. ``full_brake`` (the
    paper's STOP) always gives brake 1 and no throttle.
    """

    def __init__(self, dt: float = REFERENCE_DT_S, config: VehicleControllerConfig | None = None) -> None:
        self.config = config or VehicleControllerConfig()
        c = self.config
        self.dt = dt
        self.turn_pid = PIDController(c.steer_kp, c.steer_ki, c.steer_kd, dt=dt)
        self.speed_pid = PIDController(c.speed_kp, c.speed_ki, c.speed_kd, dt=dt)

    def reset(self) -> None:
        """Forget both PIDs' history (call at the start of a route)."""
        self.turn_pid.reset()
        self.speed_pid.reset()

    def control(self, current_speed_mps: float, target_speed_mps: float, steering_deg: float,
                full_brake: bool = False) -> tuple[float, float, float]:
        """One tick of control; returns ``(throttle, steer, brake)``."""
        c = self.config
        steer = float(np.clip(self.turn_pid.step(float(steering_deg) / c.steer_scale_deg), -1.0, 1.0))

        speed = max(0.0, float(current_speed_mps))
        target = max(0.0, float(target_speed_mps))
        error = float(np.clip(target - speed, 0.0, c.max_speed_error_mps))
        throttle = float(np.clip(self.speed_pid.step(error), 0.0, c.max_throttle))

        if full_brake or target < c.stop_below_mps:
            return 0.0, steer, 1.0
        if speed > c.overspeed_ratio * target:
            excess = (speed - target) / c.overspeed_full_brake_mps
            brake = float(np.clip(c.overspeed_brake_min + excess, c.overspeed_brake_min, 1.0))
            return 0.0, steer, brake
        return throttle, steer, 0.0
