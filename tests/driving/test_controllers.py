"""The shared PID controllers: clipping, full brake, convergence on a point mass."""
from __future__ import annotations

import math

import numpy as np
import pytest

from driving.controllers import PIDController, VehicleController


def _point_mass_speed_run(target_mps: float, seconds: float, start_mps: float = 0.0) -> list[float]:
    """A car as a point mass: throttle accelerates (max ~4 m/s^2), brake decelerates, drag slows."""
    controller = VehicleController(dt=0.05)
    speed = start_mps
    speeds = []
    for _ in range(int(seconds / 0.05)):
        throttle, _, brake = controller.control(speed, target_mps, 0.0)
        accel = 5.0 * throttle - 8.0 * brake - 0.05 * speed - 0.3 * (speed > 0)
        speed = max(0.0, speed + accel * 0.05)
        speeds.append(speed)
    return speeds


def test_speed_converges_to_target_and_holds():
    speeds = _point_mass_speed_run(6.0, 20.0)
    tail = np.array(speeds[-100:])
    assert abs(tail.mean() - 6.0) < 0.5
    assert tail.max() < 6.0 * 1.15


def test_slows_down_from_overspeed_and_stops_for_zero_target():
    speeds = _point_mass_speed_run(3.0, 10.0, start_mps=8.0)
    assert abs(speeds[-1] - 3.0) < 0.6
    stopped = _point_mass_speed_run(0.0, 5.0, start_mps=8.0)
    assert stopped[-1] == 0.0


def test_heading_converges_with_kinematic_bicycle():
    """A bicycle model following a target point on the line y = 5 (to the right) ends on it."""
    controller = VehicleController(dt=0.05)
    x, y, yaw, v = 0.0, 0.0, 0.0, 5.0
    for _ in range(400):
        target = np.array([x + 8.0, 5.0])
        angle = math.degrees(math.atan2(target[1] - y, target[0] - x)) - math.degrees(yaw)
        _, steer, _ = controller.control(v, v, angle)
        wheel = math.radians(70.0) * steer
        yaw += v / 2.9 * math.tan(wheel) * 0.05
        x += v * math.cos(yaw) * 0.05
        y += v * math.sin(yaw) * 0.05
    assert abs(y - 5.0) < 0.5
    assert abs(math.degrees(yaw)) < 5.0


@pytest.mark.parametrize("speed,target,angle", [
    (0.0, 40.0, 500.0), (30.0, 0.5, -500.0), (5.0, 5.0, 0.0), (0.0, 6.0, 90.0),
])
def test_outputs_are_clipped(speed, target, angle):
    controller = VehicleController()
    for _ in range(30):
        throttle, steer, brake = controller.control(speed, target, angle)
        assert 0.0 <= throttle <= 0.75
        assert -1.0 <= steer <= 1.0
        assert 0.0 <= brake <= 1.0
        assert throttle == 0.0 or brake == 0.0


def test_steer_sign_follows_angle_sign():
    right = VehicleController().control(5.0, 5.0, 30.0)[1]
    left = VehicleController().control(5.0, 5.0, -30.0)[1]
    assert right > 0.0 > left


def test_full_brake_brakes_fully_whatever_the_target():
    throttle, _, brake = VehicleController().control(3.0, 10.0, 0.0, full_brake=True)
    assert (throttle, brake) == (0.0, 1.0)


def test_pid_reset_forgets_integral():
    pid = PIDController(0.0, 1.0, 0.0)
    for _ in range(10):
        pid.step(1.0)
    assert pid.step(1.0) == pytest.approx(1.0)
    pid.reset()
    assert pid.step(0.0) == 0.0


def test_pid_rejects_bad_dt():
    with pytest.raises(ValueError, match="dt"):
        PIDController(1.0, 0.0, 0.0, dt=0.0)
