"""The expert on scripted scenes (each passes validate_scene(strict=True)), open and closed loop."""
from __future__ import annotations

import numpy as np
import pytest

from driving.controllers import VehicleController
from driving.geometry import Boxes, boxes_overlap
from driving.labels import REASONS, SPEED_LEVELS
from driving.scene import validate_scene
from expert import Expert, ExpertConfig
from expert.scenarios import arc_route, make_actor, make_scene, straight_route

CRUISE = ExpertConfig().cruise_speed_mps


def predict(**kwargs):
    scene = make_scene(**kwargs)
    validate_scene(scene, strict=True)
    label = Expert().predict(scene)
    assert label.reason in REASONS and label.speed_level in SPEED_LEVELS
    return label


def drive(line_x: float, kind: str, start_speed: float = CRUISE, seconds: float = 25.0,
          stop_completes: bool = True):
    """Point-mass ego along +x driven by expert + controller; a light or stop sign at ``line_x``.

    Returns the trace as a list of (x, speed, label). A stop sign counts as completed once the
    ego has stood still (below 0.1 m/s) within 30 m of it, as the world does.
    """
    expert, controller = Expert(), VehicleController()
    x, v, completed, trace = 0.0, start_speed, False, []
    for _ in range(int(seconds / 0.05)):
        d = line_x - x
        extra = {}
        if kind == "red":
            extra = dict(traffic_light_state="red", distance_to_traffic_light_m=d if d > -5 else None)
        elif kind == "stop":
            if stop_completes and v < 0.1 and 0 < d <= 30:
                completed = True
            extra = dict(distance_to_stop_sign=d if (not completed and 0 < d <= 30) else None)
        scene = make_scene(v, ego_xy=(x, 0.0), route=straight_route((x, 0.0)), **extra)
        label = expert.predict(scene)
        throttle, _, brake = controller.control(v, label.target_speed_mps, label.steering_deg,
                                                full_brake=label.speed_level == "STOP")
        v = max(0.0, v + (4.0 * throttle - 8.0 * brake - 0.03 * v) * 0.05)
        x += v * 0.05
        trace.append((x, v, label))
    return trace


def test_free_road_cruises_and_steers_toward_the_route():
    label = predict(speed_mps=6.0)
    assert label.speed_level == "MOVE" and label.reason == "free_road"
    assert label.target_speed_mps == pytest.approx(CRUISE)
    assert abs(label.steering_deg) < 0.5
    assert predict(speed_mps=6.0, speed_limit_mps=5.0).target_speed_mps == pytest.approx(5.0)
    # CARLA frame: +y is to the right of a car heading +x.
    assert predict(speed_mps=4.0, route=arc_route(15.0, "right")).steering_deg > 5.0
    assert predict(speed_mps=4.0, route=arc_route(15.0, "left")).steering_deg < -5.0
    # Left of a straight route (y < 0): steer right, back onto it.
    assert predict(speed_mps=4.0, ego_xy=(0.0, -1.5), route=straight_route((0.0, 0.0))).steering_deg > 5.0


def test_sharp_turn_slows_down():
    label = predict(speed_mps=CRUISE, route=arc_route(8.0, "right", straight_m=3.0))
    assert label.reason == "turn" and label.target_speed_mps < CRUISE - 1.0


def test_red_light_at_10m_slows_then_stops_before_the_line():
    label = predict(speed_mps=6.0, traffic_light_state="red", distance_to_traffic_light_m=10.0)
    assert label.reason == "red_light" and label.target_speed_mps < 6.0
    at_line = predict(speed_mps=0.5, traffic_light_state="red", distance_to_traffic_light_m=3.4)
    assert at_line.speed_level == "STOP" and at_line.reason == "red_light"
    trace = drive(line_x=30.0, kind="red", seconds=15.0)
    x_end, v_end, last = trace[-1]
    assert v_end < 0.05 and last.speed_level == "STOP"
    front = x_end + 2.45
    assert 25.0 < front < 30.0          # stopped close to, and before, the stop line
    assert predict(speed_mps=6.0, traffic_light_state="green", distance_to_traffic_light_m=10.0).reason == "free_road"


def test_yellow_light_stops_only_when_it_can_brake_comfortably():
    far = predict(speed_mps=CRUISE, traffic_light_state="yellow", distance_to_traffic_light_m=15.0)
    assert far.reason == "red_light" and far.target_speed_mps < CRUISE
    close = predict(speed_mps=CRUISE, traffic_light_state="yellow", distance_to_traffic_light_m=5.0)
    assert close.reason == "free_road"
    red_close = predict(speed_mps=3.0, traffic_light_state="red", distance_to_traffic_light_m=5.0)
    assert red_close.reason == "red_light"


def test_stop_sign_full_stop_then_proceeds():
    label = predict(speed_mps=CRUISE, distance_to_stop_sign=8.0)
    assert label.reason == "stop_sign" and label.target_speed_mps < 0.7 * CRUISE
    assert predict(speed_mps=0.3, distance_to_stop_sign=3.4).speed_level == "STOP"
    # Completed (None): go.
    assert predict(speed_mps=0.0, distance_to_stop_sign=None).reason == "free_road"

    trace = drive(line_x=40.0, kind="stop", seconds=20.0)
    stops = [x for x, v, label in trace if v < 0.1 and label.reason == "stop_sign"]
    assert stops and max(stops) + 2.45 < 40.0   # stood still before the line
    assert trace[-1][0] > 60.0 and trace[-1][1] > 5.0  # and then drove on


def test_pedestrian_stepping_out_in_front():
    walker = make_actor(9.0, 3.0, yaw_deg=-90.0, speed_mps=1.4, actor_type="pedestrian")
    label = predict(speed_mps=6.0, pedestrians={5: walker})
    assert label.reason == "pedestrian" and label.target_speed_mps < 6.0
    in_lane = make_actor(7.0, 0.5, yaw_deg=-90.0, speed_mps=1.4, actor_type="pedestrian")
    stop = predict(speed_mps=6.0, pedestrians={5: in_lane})
    assert stop.reason == "pedestrian" and stop.speed_level == "STOP"
    # Walking along the pavement, away from the lane: no reaction.
    pavement = make_actor(9.0, 4.5, yaw_deg=0.0, speed_mps=1.4, actor_type="pedestrian")
    assert predict(speed_mps=6.0, pedestrians={5: pavement}).reason == "free_road"


def test_slow_lead_vehicle_12m_ahead():
    lead = make_actor(12.0, 0.0, yaw_deg=0.0, speed_mps=2.0)
    label = predict(speed_mps=CRUISE, vehicles={3: lead})
    assert label.reason == "lead_vehicle" and label.target_speed_mps < 0.5 * CRUISE
    # Far ahead and as fast as us: no need to slow.
    fast = make_actor(40.0, 0.0, yaw_deg=0.0, speed_mps=CRUISE)
    assert predict(speed_mps=CRUISE, vehicles={3: fast}).reason == "free_road"


def test_stopped_lead_vehicle_closed_loop_keeps_a_gap():
    expert, controller = Expert(), VehicleController()
    x, v = 0.0, CRUISE
    lead_x = 35.0
    for _ in range(300):
        scene = make_scene(v, ego_xy=(x, 0.0), route=straight_route((x, 0.0)),
                           vehicles={1: make_actor(lead_x, 0.0)})
        label = expert.predict(scene)
        throttle, _, brake = controller.control(v, label.target_speed_mps, label.steering_deg)
        v = max(0.0, v + (4.0 * throttle - 8.0 * brake) * 0.05)
        x += v * 0.05
    gap = lead_x - 2.3 - (x + 2.45)
    assert v < 0.05 and 1.5 < gap < 6.0


def test_vehicles_behind_or_in_the_opposite_lane_do_not_stop_it():
    behind = make_actor(-8.0, 0.0, yaw_deg=0.0, speed_mps=12.0)
    opposite = make_actor(15.0, -3.5, yaw_deg=180.0, speed_mps=8.0)
    beside = make_actor(2.0, 3.5, yaw_deg=0.0, speed_mps=8.0)
    label = predict(speed_mps=CRUISE, vehicles={1: behind, 2: opposite, 3: beside})
    assert label.reason == "free_road" and label.target_speed_mps == pytest.approx(CRUISE)


def test_crossing_vehicle_on_collision_course_is_yielded_to():
    # Coming from the right (+y), heading -y, reaching our lane in about 1.5 s.
    crossing = make_actor(14.0, 12.0, yaw_deg=-90.0, speed_mps=8.0)
    label = predict(speed_mps=CRUISE, vehicles={4: crossing}, ego_in_junction=True)
    assert label.reason == "junction_yield" and label.target_speed_mps < CRUISE
    # The same vehicle already past our path does not matter.
    gone = make_actor(14.0, -8.0, yaw_deg=-90.0, speed_mps=8.0)
    assert predict(speed_mps=CRUISE, vehicles={4: gone}).reason == "free_road"


def test_paper_format_scene_without_additions():
    scene = make_scene(speed_mps=5.0, vehicles={1: make_actor(10.0, 0.0)})
    paper = {k: scene[k] for k in (
        "ego_location_world_coord", "ego_target_location_world_coord", "ego_orientation_unit_vector",
        "ego_forward_speed", "ego_length", "ego_width", "distance_to_red_light", "distance_to_stop_sign",
        "vehicles", "pedestrians")}
    paper["vehicles"] = {1: {k: v for k, v in scene["vehicles"][1].items() if k in (
        "location_world_coord", "orientation_unit_vector", "forward_speed", "forward_length", "sideways_width")}}
    validate_scene(paper, strict=False)
    label = Expert().predict(paper)
    assert label.reason == "lead_vehicle" and label.target_speed_mps < 5.0


def test_same_scene_same_label_and_scene_untouched():
    scene = make_scene(speed_mps=5.0, pedestrians={2: make_actor(9.0, 3.0, -90.0, 1.4, "pedestrian")})
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in scene.items()}
    expert = Expert()
    assert expert.predict(scene) == expert.predict(scene)
    assert np.array_equal(scene["route_ahead_world_coord"], before["route_ahead_world_coord"])


def test_no_stopping_in_the_way_of_a_walker_that_would_walk_into_us_anyway():
    # At 4 m/s a walker 4 m to the left strides at 3 m/s for where the car would halt (2 m on):
    # standing there only makes the contact certain, driving on clears its path.
    walker = make_actor(0.0, -4.0, yaw_deg=90.0, speed_mps=3.0, actor_type="pedestrian")
    assert predict(speed_mps=4.0, pedestrians={9: walker}).reason == "free_road"
    # The same car crossing far enough ahead that braking avoids it: yield.
    crossing = make_actor(12.0, 9.0, yaw_deg=-90.0, speed_mps=6.0)
    assert predict(speed_mps=6.0, vehicles={9: crossing}).reason == "junction_yield"


def test_a_car_met_either_way_and_sooner_driving_on_is_halted_for():
    # Turning left across a junction at 4 m/s; an oncoming car 14 m ahead at 8 m/s. Straight-line
    # prediction has it reach the halted ego too, but driving on meets it sooner: driving on clears
    # nothing. A car that turns (here: into the lane the ego turns into) leaves the spot where the
    # ego halted, and other drivers brake for a standing body (CARLA's Traffic Manager, the
    # world's TrafficYield): halt.
    route = arc_route(12.0, "left", straight_m=0.0)
    oncoming = make_actor(14.0, -1.0, yaw_deg=180.0, speed_mps=8.0)
    label = predict(speed_mps=4.0, route=route, vehicles={9: oncoming}, ego_in_junction=True)
    assert label.reason == "junction_yield" and label.speed_level == "STOP"


def test_walker_crossing_into_the_rear_flank_is_braked_for_closed_loop():
    # A walker steps off the kerb 11 m to the right, 13 m ahead, crossing at 5 m/s (leaderboard
    # 1.0's Scenario3 on a four-lane road): at cruise the car would pass its line first and the
    # walker would walk into the car's rear flank. Walkers do not avoid cars: the car brakes and
    # the walker crosses in front of it.
    expert, controller = Expert(), VehicleController()
    x, v = 0.0, CRUISE
    walker_xy, walker_v = np.array([13.0, 11.0]), np.array([0.0, -5.0])
    touched, first = False, None
    for _ in range(100):  # 5 s
        walker = make_actor(*walker_xy, yaw_deg=-90.0, speed_mps=5.0, actor_type="pedestrian")
        label = expert.predict(make_scene(v, ego_xy=(x, 0.0), route=straight_route((x, 0.0)),
                                          pedestrians={7: walker}))
        first = first or label
        touched |= bool(boxes_overlap(Boxes(np.array([x, 0.0]), np.array([1.0, 0.0]), 2.45, 1.05),
                                      Boxes(walker_xy, np.array([0.0, -1.0]), 0.25, 0.25)))
        throttle, _, brake = controller.control(v, label.target_speed_mps, label.steering_deg,
                                                full_brake=label.speed_level == "STOP")
        v = max(0.0, v + (4.0 * throttle - 8.0 * brake - 0.03 * v) * 0.05)
        x += v * 0.05
        walker_xy = walker_xy + walker_v * 0.05
    assert first.reason == "pedestrian" and first.target_speed_mps < CRUISE - 1.0
    assert not touched


def test_halting_for_a_slow_car_that_can_brake_for_us():
    # Turning left at 4 m/s, a car comes the other way at 3 m/s, 10 m ahead on our path: halted, we
    # would meet it only after its own reaction and stopping time, so it stops for us (as CARLA's
    # Traffic Manager does), and we halt rather than drive into its side.
    route = arc_route(12.0, "left", straight_m=0.0)
    slow = make_actor(10.0, 0.0, yaw_deg=180.0, speed_mps=3.0)
    label = predict(speed_mps=4.0, route=route, vehicles={9: slow}, ego_in_junction=True)
    assert label.reason == "junction_yield" and label.target_speed_mps == 0.0
    # A car edging in at 2 m/s from the front left, 4 m to the side: halted, the ego would be in its
    # way, driving on at 6 m/s passes it. It brakes for a standing ego: halt; were other drivers
    # not to brake, halting would only make the contact certain: the expert drives on.
    edging = make_scene(speed_mps=6.0, vehicles={9: make_actor(7.0, -4.0, yaw_deg=150.0, speed_mps=2.0)},
                        ego_in_junction=True)
    assert Expert().predict(edging).reason == "junction_yield"
    assert Expert(ExpertConfig(other_decel_mps2=1e-3)).predict(edging).reason != "junction_yield"


def test_off_its_route_it_stops_for_what_stands_in_front_of_it():
    # Swung 2.5 m wide out of a turn, the ego is in the next lane, heading back; a bicycle stands
    # 4.5 m ahead of it there, clear of the route's own corridor.
    route = straight_route((0.0, -2.5), 0.0)
    bike = make_actor(4.5, 0.0, yaw_deg=0.0, speed_mps=0.0, actor_type="bicycle")
    label = predict(speed_mps=4.0, route=route, vehicles={3: bike})
    assert label.reason == "lead_vehicle" and label.target_speed_mps == 0.0
    # Back on its route, the same bicycle in the lane beside is no lead.
    assert predict(speed_mps=4.0, route=route, ego_xy=(0.0, -2.5), vehicles={3: bike}).reason == "free_road"


def test_walker_coming_along_the_lane_is_always_yielded_to():
    walker = make_actor(9.0, 0.3, yaw_deg=180.0, speed_mps=1.4, actor_type="pedestrian")
    label = predict(speed_mps=6.0, pedestrians={3: walker})
    assert label.reason == "pedestrian" and label.speed_level == "STOP"


def test_degenerate_route_ahead_falls_back_to_the_target_point():
    # At the very end of a route the producer may give a single repeated point.
    scene = make_scene(speed_mps=2.0, route=np.array([[0.0, 0.0], [0.0, 0.0]]))
    scene["ego_target_location_world_coord"] = np.array([5.0, 2.0])
    label = Expert().predict(scene)
    assert label.steering_deg > 5.0 and label.reason in REASONS


def test_walker_already_inside_the_car_footprint_does_not_block_forever():
    stuck = make_actor(0.5, 0.3, yaw_deg=90.0, speed_mps=0.0, actor_type="pedestrian")
    assert predict(speed_mps=0.0, pedestrians={1: stuck}).reason == "free_road"


def test_halted_car_holds_while_a_walker_is_crossing_its_path():
    walker = make_actor(8.0, 4.0, yaw_deg=-90.0, speed_mps=1.4, actor_type="pedestrian")
    label = predict(speed_mps=0.0, pedestrians={6: walker})
    assert label.reason == "pedestrian" and label.speed_level == "STOP"
    # Once it has crossed, the car goes.
    crossed = make_actor(8.0, -4.0, yaw_deg=-90.0, speed_mps=1.4, actor_type="pedestrian")
    assert predict(speed_mps=0.0, pedestrians={6: crossed}).reason == "free_road"


def test_walker_standing_at_the_kerb_is_passed_one_standing_in_the_lane_is_not():
    # Waiting at the kerb, 1.6 m right of the route (the lane edge): the car creeps by instead of
    # waiting for ever (the walker may be waiting for the car).
    kerb = make_actor(6.0, 1.6, yaw_deg=90.0, speed_mps=0.0, actor_type="pedestrian")
    passing = predict(speed_mps=0.0, pedestrians={4: kerb})
    assert passing.reason != "pedestrian" and passing.target_speed_mps > 0.5
    # Standing in the lane ahead: the car stops short of it.
    in_lane = make_actor(6.0, 0.8, yaw_deg=90.0, speed_mps=0.0, actor_type="pedestrian")
    blocked = predict(speed_mps=3.0, pedestrians={4: in_lane})
    assert blocked.reason == "pedestrian" and blocked.speed_level == "STOP"
