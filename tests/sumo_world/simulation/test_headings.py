"""Vehicles' headings turn no faster than a car's (sumo_world.simulation.headings)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sumo_world.ego.dynamics import EgoParams
from sumo_world.simulation.headings import MAX_GAP_S, HeadingLimit

TICK = 0.05


def _drive(limit: HeadingLimit, angles: list[float], speed: float, start_s: float = 0.0) -> list[float]:
    """Headings reported for one vehicle whose SUMO angle is ``angles[k]`` at tick k."""
    return [float(limit(start_s + k * TICK, ["car"], np.array([a]), np.array([speed]))[0])
            for k, a in enumerate(angles)]


def test_a_jump_at_speed_is_followed_at_the_rate_a_car_turns() -> None:
    # Town06's case: 15.5 m/s, SUMO turns the car 40 degrees in one tick.
    limit = HeadingLimit()
    out = _drive(limit, [77.0, 77.0, 117.0, 117.0, 117.0], 15.5)
    step = math.degrees(15.5 * TICK / (15.5 ** 2 / EgoParams().max_lateral_accel_mps2))
    assert out[:2] == [77.0, 77.0]
    assert out[2] == pytest.approx(77.0 + step)
    assert out[4] == pytest.approx(77.0 + 3 * step)
    assert limit.jumps == 1  # one jump, however many ticks it takes to follow


def test_a_jump_is_followed_until_the_heading_is_sumo_s_again() -> None:
    limit = HeadingLimit()
    out = _drive(limit, [10.0] + [50.0] * 60, 8.0)
    assert out[-1] == pytest.approx(50.0)
    assert all(b >= a for a, b in zip(out, out[1:]))


def test_a_turn_a_car_can_drive_is_reported_unchanged() -> None:
    # 90 degrees on a 10 m radius at 6 m/s (0.36 g: SUMO slows for curves below the limit).
    rate = math.degrees(6.0 / 10.0) * TICK
    angles = [min(90.0, k * rate) for k in range(60)]
    assert _drive(HeadingLimit(), angles, 6.0) == pytest.approx(angles)


def test_headings_wrap_the_short_way_round() -> None:
    out = _drive(HeadingLimit(), [359.0, 1.0], 10.0)
    assert out[1] == pytest.approx(361.0)


def test_a_standing_vehicle_does_not_turn() -> None:
    assert _drive(HeadingLimit(), [0.0, 30.0, 30.0], 0.0) == [0.0, 0.0, 0.0]


def test_reading_twice_at_one_time_gives_the_same_headings() -> None:
    limit = HeadingLimit()
    limit(0.0, ["a"], np.array([0.0]), np.array([15.0]))
    first = limit(TICK, ["a"], np.array([40.0]), np.array([15.0]))
    again = limit(TICK, ["a"], np.array([40.0]), np.array([15.0]))
    assert first[0] < 40.0 and again[0] == first[0]
    assert limit.jumps == 1


def test_a_vehicle_seen_again_after_a_gap_starts_from_sumo_s_heading() -> None:
    limit = HeadingLimit()
    limit(0.0, ["a"], np.array([0.0]), np.array([15.0]))
    later = limit(MAX_GAP_S + TICK, ["a"], np.array([60.0]), np.array([15.0]))
    assert later[0] == 60.0 and limit.jumps == 0


def test_each_vehicle_is_limited_on_its_own() -> None:
    limit = HeadingLimit()
    limit(0.0, ["a", "b"], np.array([0.0, 90.0]), np.array([15.0, 15.0]))
    out = limit(TICK, ["b", "new", "a"], np.array([90.5, 10.0, 40.0]), np.array([15.0, 15.0, 15.0]))
    assert out[0] == pytest.approx(90.5) and out[1] == 10.0 and 0.0 < out[2] < 2.0
