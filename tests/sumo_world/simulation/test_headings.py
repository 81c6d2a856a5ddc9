"""Vehicles' bodies do not swing round their front bumpers in one tick (sumo_world.simulation.headings).

Frames and angles are SUMO's: x east, y north, angles clockwise from north.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sumo_world.simulation.headings import MAX_GAP_S, BodyHeadings

TICK = 0.05
HALF = 2.45  # half a car's length


def _unit(angle_deg: float) -> np.ndarray:
    return np.array([math.sin(math.radians(angle_deg)), math.cos(math.radians(angle_deg))])


def _drive(headings: BodyHeadings, fronts: list[np.ndarray], angles: list[float]) -> list[float]:
    """Body angles reported for one vehicle whose front bumper and SUMO angle are given per tick."""
    return [float(headings(k * TICK, ["car"], f[None], np.array([a]), np.array([HALF]))[0])
            for k, (f, a) in enumerate(zip(fronts, angles))]


def _rear(front: np.ndarray, angle_deg: float, headings: BodyHeadings) -> np.ndarray:
    return front - 2.0 * HALF * headings.rear_axle_share * _unit(angle_deg)


def test_on_a_straight_lane_the_body_has_the_lane_s_heading() -> None:
    fronts = [np.array([0.0, 0.75 * k]) for k in range(20)]
    assert _drive(BodyHeadings(), fronts, [0.0] * 20) == pytest.approx([0.0] * 20, abs=1e-9)


def test_at_a_kink_the_body_turns_as_it_drives_and_its_rear_never_swings_out() -> None:
    # Town06's case: at 15.5 m/s the lane turns 40 degrees at once; SUMO turns the car at once.
    headings = BodyHeadings()
    step = 15.5 * TICK
    fronts = [np.array([0.0, step * k]) for k in range(5)]
    angles = [0.0] * 5
    for k in range(1, 30):
        fronts.append(fronts[4] + step * k * _unit(40.0))
        angles.append(40.0)
    out = _drive(headings, fronts, angles)
    assert out[4] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < out[5] < 8.0  # SUMO's body turned 40 degrees in this tick
    assert all(b >= a - 1e-9 for a, b in zip(out, out[1:])) and out[-1] == pytest.approx(40.0, abs=1.0)
    rears = [_rear(f, a, headings) for f, a in zip(fronts, out)]
    # the rear axle comes round behind the front, never beyond the line of the first lane
    assert all(r[0] >= -1e-9 for r in rears)
    # it moves no faster than the front, but for the last step back onto SUMO's heading (within 2 degrees)
    assert max(np.linalg.norm(b - a) for a, b in zip(rears, rears[1:])) <= step + 0.15
    assert headings.jumps == 1  # one jump, however many ticks the body takes to come round


def test_sumo_s_own_turns_are_reported_as_sumo_turns_them() -> None:
    # A 90 degree right turn on a 10 m radius at 6 m/s: 1.7 degrees a tick.
    rate = math.degrees(6.0 / 10.0) * TICK
    angles = [min(90.0, k * rate) for k in range(60)]
    fronts = [np.array([10.0 - 10.0 * math.cos(math.radians(a)), 10.0 * math.sin(math.radians(a))]) for a in angles]
    headings = BodyHeadings()
    assert _drive(headings, fronts, angles) == pytest.approx(angles) and headings.jumps == 0


def test_a_standing_vehicle_does_not_turn() -> None:
    front = np.array([3.0, 4.0])
    assert _drive(BodyHeadings(), [front] * 3, [0.0, 30.0, 30.0]) == pytest.approx([0.0, 0.0, 0.0])


def test_reading_twice_at_one_time_gives_the_same_headings() -> None:
    headings = BodyHeadings()
    headings(0.0, ["a"], np.array([[0.0, 0.0]]), np.array([0.0]), np.array([HALF]))
    args = (["a"], np.array([[0.5, 0.6]]), np.array([40.0]), np.array([HALF]))
    first, again = headings(TICK, *args), headings(TICK, *args)
    assert 0.0 < first[0] < 40.0 and again[0] == first[0] and headings.jumps == 1


def test_a_vehicle_seen_again_after_a_gap_or_placed_afar_starts_from_sumo_s_heading() -> None:
    headings = BodyHeadings()
    headings(0.0, ["a", "b"], np.array([[0.0, 0.0], [50.0, 0.0]]), np.array([0.0, 0.0]), np.array([HALF, HALF]))
    placed = headings(TICK, ["b"], np.array([[50.0, 20.0]]), np.array([90.0]), np.array([HALF]))
    later = headings(TICK + MAX_GAP_S + TICK, ["a"], np.array([[1.0, 1.0]]), np.array([60.0]), np.array([HALF]))
    assert placed[0] == pytest.approx(90.0) and later[0] == pytest.approx(60.0) and headings.jumps == 0


def test_each_vehicle_trails_on_its_own() -> None:
    headings = BodyHeadings()
    headings(0.0, ["a", "b"], np.array([[0.0, 0.0], [20.0, 0.0]]), np.array([0.0, 90.0]), np.array([HALF, HALF]))
    out = headings(TICK, ["b", "new", "a"], np.array([[20.7, 0.0], [40.0, 0.0], [0.0, 0.7]]),
                   np.array([90.0, 10.0, 0.0]), np.array([HALF, HALF, HALF]))
    assert out == pytest.approx([90.0, 10.0, 0.0])
