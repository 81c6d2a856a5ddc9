"""The shared driving facts: scene contract, policy outputs, penalty table, geometry, route progress."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from driving.geometry import box_corners, relative_angle_deg, to_ego_frame, yaw_to_unit_vector
from driving.labels import InvalidPolicyOutput, SPEED_LEVEL_MPS, parse_policy_output, speed_level_for
from driving.penalties import PENALTY, driving_score, infraction_penalty
from driving.route import RouteTracker
from driving.scene import (
    SCENE_KEYS, SceneError, copy_scene, describe_scene_contract, scene_from_jsonable,
    scene_to_jsonable, validate_scene,
)


def make_actor(x: float, y: float, yaw: float = 0.0, speed: float = 0.0, kind: str = "car") -> dict:
    forward = yaw_to_unit_vector(yaw)
    return {
        "location_world_coord": np.array([x, y]), "orientation_unit_vector": forward,
        "forward_speed": speed, "forward_length": 2.4, "sideways_width": 1.0, "actor_type": kind,
        "yaw_deg": yaw, "velocity_mps": forward * speed, "length_m": 4.8, "width_m": 2.0,
    }


def make_scene() -> dict:
    return {
        "ego_location_world_coord": np.array([10.0, 5.0]),
        "ego_target_location_world_coord": np.array([15.0, 5.0]),
        "ego_orientation_unit_vector": np.array([1.0, 0.0]),
        "ego_forward_speed": 3.0, "ego_length": 2.45, "ego_width": 1.05,
        "distance_to_red_light": None, "distance_to_stop_sign": 12.5,
        "vehicles": {7: make_actor(25.0, 5.0, speed=2.0)},
        "pedestrians": {9: make_actor(20.0, 9.0, yaw=90.0, speed=1.2, kind="pedestrian")},
        "timestamp_s": 1.5, "ego_yaw_deg": 0.0, "ego_velocity_mps": np.array([3.0, 0.0]),
        "ego_length_m": 4.9, "ego_width_m": 2.1,
        "route_ahead_world_coord": np.array([[10.0 + i, 5.0] for i in range(20)]),
        "route_command": "LANEFOLLOW", "speed_limit_mps": 8.33, "traffic_light_state": "green",
        "distance_to_traffic_light_m": 30.0, "ego_in_junction": False, "distance_to_junction_m": 28.0, "distance_to_junction_exit_m": 40.0, "static_props": {},
    }


def test_a_complete_scene_validates_and_survives_json() -> None:
    scene = make_scene()
    validate_scene(scene)
    restored = scene_from_jsonable(json.loads(json.dumps(scene_to_jsonable(scene))))
    validate_scene(restored)
    assert set(restored) == set(scene)
    assert list(restored["vehicles"]) == [7]
    np.testing.assert_allclose(restored["route_ahead_world_coord"], scene["route_ahead_world_coord"])
    assert restored["distance_to_red_light"] is None


@pytest.mark.parametrize("key, value, fragment", [
    ("ego_location_world_coord", np.array([1.0, 2.0, 3.0]), "shape (2,)"),
    ("ego_forward_speed", float("nan"), "finite number"),
    ("traffic_light_state", "blue", "not one of"),
    ("vehicles", {"7": make_actor(0, 0)}, "not an int"),
    ("route_command", 4, "expected a string"),
])
def test_a_bad_value_is_named(key: str, value: object, fragment: str) -> None:
    scene = make_scene()
    scene[key] = value
    with pytest.raises(SceneError, match=key) as error:
        validate_scene(scene)
    assert fragment in str(error.value)


def test_missing_keys_are_named_and_paper_scenes_pass_unstrict() -> None:
    paper_keys = {spec.name for spec in SCENE_KEYS if spec.paper}
    scene = {k: v for k, v in make_scene().items() if k in paper_keys}
    for actor in scene["vehicles"].values():
        for extra in ("actor_type", "yaw_deg", "velocity_mps", "length_m", "width_m"):
            del actor[extra]
    scene["pedestrians"] = {}
    validate_scene(scene, strict=False)
    with pytest.raises(SceneError, match="missing key 'actor_type'"):
        validate_scene(scene, strict=True)
    del scene["vehicles"]
    with pytest.raises(SceneError, match="vehicles"):
        validate_scene(scene, strict=False)


def test_copy_scene_isolates_arrays_that_scripts_modify_in_place() -> None:
    scene = make_scene()
    copied = copy_scene(scene)
    copied["ego_location_world_coord"] += 100.0
    copied["vehicles"][7]["location_world_coord"][0] = -1.0
    assert scene["ego_location_world_coord"][0] == 10.0
    assert scene["vehicles"][7]["location_world_coord"][0] == 25.0


def test_contract_description_lists_every_key() -> None:
    text = describe_scene_contract()
    for spec in SCENE_KEYS:
        assert f"`{spec.name}`" in text


@pytest.mark.parametrize("output, speed, angle, brake", [
    (("MOVE", 10.0), SPEED_LEVEL_MPS["MOVE"], 10.0, False),
    (("stop", -5), 0.0, -5.0, True),
    ((3.5, 350.0), 3.5, -10.0, False),
    ([0, 0], 0.0, 0.0, True),
])
def test_policy_outputs_are_normalised(output: object, speed: float, angle: float, brake: bool) -> None:
    action = parse_policy_output(output)
    assert action.target_speed_mps == pytest.approx(speed)
    assert action.steering_deg == pytest.approx(angle)
    assert action.full_brake is brake


@pytest.mark.parametrize("output", [None, "MOVE", ("FAST", 0.0), (True, 0.0), (1.0, float("inf")),
                                    (-1.0, 0.0), (1.0, "left"), (1.0, 2.0, 3.0)])
def test_garbage_policy_outputs_are_rejected(output: object) -> None:
    with pytest.raises(InvalidPolicyOutput):
        parse_policy_output(output)


def test_speed_levels() -> None:
    assert [speed_level_for(v) for v in (0.0, 0.5, 6.0)] == ["STOP", "SLOW", "MOVE"]


def test_penalties_multiply_per_event_and_outside_lanes() -> None:
    counts = {"collisions_vehicle": 2, "red_light": 1, "route_dev": 1}
    expected = PENALTY["collisions_vehicle"] ** 2 * PENALTY["red_light"] * 0.9
    assert infraction_penalty(counts, outside_route_lanes_percent=10.0) == pytest.approx(expected)
    assert driving_score(80.0, 0.5) == pytest.approx(40.0)
    assert driving_score(120.0, 1.0) == pytest.approx(100.0)


def test_ego_frame_is_left_handed_with_right_positive() -> None:
    ego, forward = np.array([0.0, 0.0]), yaw_to_unit_vector(0.0)
    # In CARLA's frame +y is to the right of a car heading +x.
    np.testing.assert_allclose(to_ego_frame(np.array([3.0, 2.0]), ego, forward), [3.0, 2.0])
    assert relative_angle_deg(ego, forward, np.array([1.0, 1.0])) == pytest.approx(45.0)
    assert relative_angle_deg(ego, yaw_to_unit_vector(90.0), np.array([-1.0, 1.0])) == pytest.approx(45.0)
    corners = box_corners(np.array([0.0, 0.0]), forward, 2.0, 1.0)
    assert corners.max(axis=0).tolist() == [2.0, 1.0]


def test_route_tracker_keeps_progress_monotone_on_a_self_crossing_route() -> None:
    out = [(float(i), 0.0) for i in range(40)]
    loop = [(39.0 - i, 1.0 + 0.01 * i) for i in range(40)]  # comes back close to the start
    tracker = RouteTracker(np.array(out + loop), search_window=10)
    for x in range(0, 40, 5):
        tracker.update(np.array([float(x), 0.0]))
    assert tracker.index == 35
    target = tracker.target(np.array([35.0, 0.0]))
    assert math.dist(target, (35.0, 0.0)) > 4.0
    assert tracker.remaining_m() == pytest.approx(tracker.length_m - tracker.progress_m)
    with pytest.raises(ValueError, match="at least 2 points"):
        RouteTracker(np.array([[0.0, 0.0]]))
