"""The driving objective: graded imitation, the infraction term, and causal confusion."""
from __future__ import annotations

import numpy as np
import pytest

from driving.labels import DrivingLabel, PolicyAction
from driving.scene import validate_scene
from langprop_driving.model.describe import describe_case, relevant_actors
from langprop_driving.model.objective import (
    DrivingObjective, DrivingTarget, infraction_weighted, target_from_record,
)
from tests.helpers.driving_records import label, make_scene, vehicle


def record(scene: dict, lab: DrivingLabel, **meta) -> dict:
    return {"scene": scene, "label": lab, "meta": {"route_id": "r0", "time_s": scene["timestamp_s"], **meta}}


# -- two policies: the paper's causal confusion, and a sane one ---------------------------------------
def stays_stopped(scene):
    """Learnt from expert data alone: 'when I stand still, I keep standing' (the paper's offline failure)."""
    if scene["ego_forward_speed"] < 0.1:
        return "STOP", 0.0
    red = scene["distance_to_red_light"]
    if red is not None and red < 10.0:
        return "STOP", 0.0
    return "MOVE", 0.0


def obeys_lights(scene):
    red = scene["distance_to_red_light"]
    if red is not None and red < 10.0:
        return "STOP", 0.0
    return "MOVE", 0.0


def expert_dataset() -> list[dict]:
    """Driving, waiting long at a red light, a couple of ticks of reaction after green, driving on."""
    out, t = [], 0.0
    for i in range(40):  # free road
        out.append(record(make_scene(6.0, t=t), label("MOVE"))); t += 0.5
    for i in range(8):  # braking towards the light
        out.append(record(make_scene(6.0 - 0.7 * i, red_m=9.0 - i, t=t), label("STOP", reason="red_light"))); t += 0.5
    for i in range(60):  # waiting at red, stopped
        out.append(record(make_scene(0.0, red_m=1.0, t=t), label("STOP", reason="red_light"))); t += 0.5
    for i in range(2):  # green: the expert moves off; the car has not moved yet
        out.append(record(make_scene(0.0, t=t), label("MOVE"))); t += 0.5
    for i in range(30):
        out.append(record(make_scene(min(6.0, 0.5 + i), t=t), label("MOVE"))); t += 0.5
    return out


def blocked_rollout() -> list[dict]:
    """The stays-stopped policy at a green light: the car stood still until the route ended (blocked)."""
    out = []
    end = 20.0
    for i in range(40):
        t = i * 0.5
        out.append(record(make_scene(0.0, t=t), label("MOVE"), controller="policy",
                          action={"target_speed_mps": 0.0, "steering_deg": 0.0},
                          infraction_within_s=end - t, infraction_kind="vehicle_blocked"))
    return out


def mean_score(policy, records, objective) -> float:
    scores = []
    for rec in records:
        target = target_from_record(rec)
        scores.append(objective(policy(rec["scene"]), target, (rec["scene"],)))
    return float(np.mean(scores))


def test_synthetic_scenes_follow_the_contract():
    validate_scene(make_scene(3.0, red_m=5.0, vehicles={7: vehicle(10.0, 0.5)}))


def test_objective_sees_causal_confusion():
    # the paper's objective (no scene costs)
    objective = DrivingObjective(horizon_s=3.0, repeat_penalty=1.0, scene_costs=False)
    offline = expert_dataset()
    confused_offline = mean_score(stays_stopped, offline, objective)
    sane_offline = mean_score(obeys_lights, offline, objective)
    # offline, the confusion is nearly invisible: it misses only the ticks right after green
    assert confused_offline > 0.95
    assert sane_offline - confused_offline < 0.02
    # with scene costs, standing after green scores like getting blocked: visible offline already
    revised = DrivingObjective(horizon_s=3.0, repeat_penalty=1.0)
    assert (mean_score(obeys_lights, offline, revised) - mean_score(stays_stopped, offline, revised)
            > 2 * (sane_offline - confused_offline))

    aggregate = infraction_weighted(offline + blocked_rollout(), weight=4.0, horizon_s=3.0, seed=1)
    confused_online = mean_score(stays_stopped, aggregate, objective)
    sane_online = mean_score(obeys_lights, aggregate, objective)
    assert confused_online < confused_offline - 0.25
    assert sane_online > confused_online + 0.3
    assert sane_online > 0.95


def test_repeating_the_taken_action_is_penalised_only_before_an_infraction():
    objective = DrivingObjective(scene_costs=False, horizon_s=2.0, standstill_horizon_s=5.0, repeat_penalty=0.8)
    scene = make_scene(0.0)
    taken = {"target_speed_mps": 0.0, "steering_deg": 0.0}
    near = target_from_record(record(scene, label("MOVE"), controller="policy", action=taken,
                                     infraction_within_s=1.5, infraction_kind="vehicle_blocked"))
    far = target_from_record(record(scene, label("MOVE"), controller="policy", action=taken,
                                    infraction_within_s=9.0, infraction_kind="vehicle_blocked"))
    assert objective(("STOP", 0.0), near) == pytest.approx(-0.8)
    assert objective(("MOVE", 0.0), near) == 1.0
    # outside the horizon: plain imitation (speed wrong, steering right)
    assert objective(("STOP", 0.0), far) == pytest.approx(0.4)
    # standing still is blamed over the whole standstill window, a collision only in its last seconds
    blocked_4s = target_from_record(record(scene, label("MOVE"), controller="policy", action=taken,
                                           infraction_within_s=4.0, infraction_kind="vehicle_blocked"))
    collision_4s = target_from_record(record(make_scene(6.0), label("STOP"), controller="policy",
                                             action={"target_speed_mps": 6.0, "steering_deg": 0.0},
                                             infraction_within_s=4.0, infraction_kind="collisions_vehicle"))
    assert objective(("STOP", 0.0), blocked_4s) == pytest.approx(-0.8)
    # plain imitation (moving where the expert stops: only the little steering weight scores)
    assert objective(("MOVE", 0.0), collision_4s) == pytest.approx(0.1 / 0.7)
    # crawling where the expert drives on also got the car blocked
    crawl = target_from_record(record(make_scene(0.5), DrivingLabel(6.0, 0.0, "MOVE", "free_road"),
                                      controller="policy", action={"target_speed_mps": 2.0, "steering_deg": 0.0},
                                      infraction_within_s=1.0, infraction_kind="route_timeout"))
    assert objective((2.0, 0.0), crawl) == pytest.approx(-0.8)
    assert objective((6.0, 0.0), crawl) == 1.0
    # an expert rollout's own records are never penalised
    expert_ctl = target_from_record(record(scene, label("MOVE"), controller="expert", action=taken,
                                           infraction_within_s=1.0))
    assert objective(("STOP", 0.0), expert_ctl) == pytest.approx(0.4)


def test_taken_action_that_matched_the_expert_is_not_penalised():
    objective = DrivingObjective(scene_costs=False)
    target = target_from_record(record(make_scene(5.0), label("MOVE", 3.0), controller="policy",
                                       action={"target_speed_mps": 6.0, "steering_deg": 2.0},
                                       infraction_within_s=0.5, infraction_kind="collisions_vehicle"))
    # the car did what the expert would: the infraction was not its choice, so plain imitation applies
    assert objective(("MOVE", 2.0), target) == pytest.approx(objective.imitation_score(
        ("MOVE", 2.0), PolicyAction(6.0, 2.0), target.label))
    assert objective(("MOVE", 2.0), target) > 0.9


def test_steering_error_is_graded_not_a_cliff():
    objective = DrivingObjective(scene_costs=False, steering_tolerance_deg=30.0)
    target = DrivingTarget(label("MOVE", 0.0))
    scores = [objective(("MOVE", err), target) for err in (0.0, 5.0, 9.0, 11.0, 20.0, 29.0, 45.0)]
    assert scores == sorted(scores, reverse=True)
    assert scores[2] - scores[3] < 0.05  # no jump at 10 degrees
    assert scores[0] == 1.0
    assert scores[-1] == pytest.approx(0.6)  # speed right, steering worthless
    # angles wrap: 350 is -10
    assert objective(("MOVE", 350.0), DrivingTarget(label("MOVE", -10.0))) == 1.0


def test_speed_levels_and_target_speeds():
    objective = DrivingObjective(scene_costs=False)
    stop = DrivingTarget(label("STOP", reason="red_light"))
    move = DrivingTarget(DrivingLabel(8.0, 0.0, "MOVE", "free_road"))
    assert objective(("MOVE", 0.0), stop) < objective(("SLOW", 0.0), stop) < objective(("STOP", 0.0), stop)
    assert objective((0.0, 0.0), stop) == 1.0  # a numeric 0 is a stop
    assert objective((8.0, 0.0), move) == 1.0
    assert objective((4.0, 0.0), move) < objective((7.0, 0.0), move) < 1.0
    assert objective(("MOVE", 0.0), move) == 1.0  # the paper's level needs no size


def test_infraction_weighted_oversamples_only_window_records():
    offline = expert_dataset()
    rollout = blocked_rollout()
    in_window = [r for r in rollout if r["meta"]["infraction_within_s"] <= 3.0]
    out = infraction_weighted(offline + rollout, weight=3.0, horizon_s=3.0, seed=0)
    assert len(out) == len(offline) + len(rollout) + 2 * len(in_window)
    assert sum(1 for r in out if r is in_window[0]) == 3
    assert sum(1 for r in out if r is offline[0]) == 1
    assert infraction_weighted(offline, 3.0, seed=5) == infraction_weighted(offline, 3.0, seed=5)


def test_record_without_label_names_the_problem():
    with pytest.raises(ValueError, match="relabel"):
        target_from_record({"scene": make_scene(), "label": None, "meta": {"route_id": "7", "time_s": 3.0}})


def test_case_description_is_in_the_ego_frame():
    scene = make_scene(4.0, red_m=12.0, target_angle_deg=20.0,
                       vehicles={3: vehicle(12.0, 3.0, 2.0), 9: vehicle(-45.0, 0.0)})
    actors = relevant_actors(scene)
    assert [a["id"] for a in actors] == [3]  # the one 45 m behind is out of range
    assert actors[0]["ahead_m"] == pytest.approx(12.0) and actors[0]["right_m"] == pytest.approx(3.0)
    target = DrivingTarget(label("STOP", reason="red_light"), taken=PolicyAction(6.0, 0.0), controller="policy",
                           infraction_within_s=1.2, infraction_kind="red_light")
    text = describe_case((scene,), target, ("MOVE", 20.0))
    assert "12.0 ahead, 3.0 right" in text
    assert "angle 20.0 deg" in text
    assert "reason: red_light" in text
    assert "distance_to_red_light: 12.0 m" in text
    assert "('MOVE', 20.0)" in text
    assert "1.2 s before a red-light violation" in text


def test_driving_faster_than_the_expert_before_an_infraction_is_blamed():
    objective = DrivingObjective(scene_costs=False, horizon_s=3.0, same_speed_mps=1.5)
    taken = {"target_speed_mps": 6.0, "steering_deg": 0.0}

    def target(expert_speed: float) -> DrivingTarget:
        lab = DrivingLabel(expert_speed, 0.0, "MOVE", "stop_sign")
        return target_from_record(record(make_scene(6.0), lab, controller="policy", action=taken,
                                         infraction_within_s=1.0, infraction_kind="stop_infraction"))

    # the expert would brake to 3 m/s: repeating 6 m/s ("MOVE") is penalised, 3 m/s rewarded
    assert objective(("MOVE", 0.0), target(3.0)) == -1.0
    assert objective((6.2, 0.0), target(3.0)) == -1.0
    assert objective((3.2, 0.0), target(3.0)) == 1.0
    # the expert would go faster (8 m/s): the car was not too fast, so no blame, plain imitation
    assert objective(("MOVE", 0.0), target(8.0)) == 1.0
    assert objective((6.0, 0.0), target(8.0)) == pytest.approx(objective.imitation_score(
        (6.0, 0.0), PolicyAction(6.0, 0.0), DrivingLabel(8.0, 0.0, "MOVE", "stop_sign")))


def test_only_the_part_of_the_action_that_causes_the_infraction_is_blamed():
    objective = DrivingObjective(scene_costs=False, horizon_s=3.0)

    def target(kind: str, expert: DrivingLabel, taken_speed: float, taken_steer: float) -> DrivingTarget:
        return target_from_record(record(make_scene(6.0), expert, controller="policy",
                                         action={"target_speed_mps": taken_speed, "steering_deg": taken_steer},
                                         infraction_within_s=1.0, infraction_kind=kind))

    # a red light: the car steered differently from the expert but its speed was right -> no blame
    red = target("red_light", DrivingLabel(6.0, 30.0, "MOVE", "turn"), 6.0, 10.0)
    assert objective(("MOVE", 10.0), red) > 0
    # it ran the light at speed where the expert stopped: moving again is penalised, whatever the steering
    red_fast = target("red_light", label("STOP", 30.0, "red_light"), 6.0, 10.0)
    assert objective(("MOVE", 30.0), red_fast) == -1.0
    assert objective(("STOP", 10.0), red_fast) == 1.0
    # leaving the route: the steering is to blame, not the speed
    dev = target("route_dev", DrivingLabel(3.0, -40.0, "MOVE", "turn"), 6.0, 0.0)
    assert objective(("MOVE", 0.0), dev) == -1.0
    assert objective(("MOVE", -40.0), dev) == 1.0
    dev_speed_only = target("route_dev", DrivingLabel(3.0, 0.0, "MOVE", "turn"), 6.0, 0.0)
    assert objective(("MOVE", 0.0), dev_speed_only) > 0


def test_scene_costs_score_a_miss_like_the_infraction_it_would_cause():
    from langprop_driving.model.objective import miss_cost

    plain, costed = DrivingObjective(scene_costs=False), DrivingObjective(scene_costs=True, standstill_cost=0.0)
    stop = {reason: DrivingLabel(0.0, 0.0, "STOP", reason)
            for reason in ("red_light", "stop_sign", "pedestrian", "lead_vehicle", "turn")}
    # leaderboard penalties 0.5 (pedestrian), 0.6 (vehicle), 0.7 (red light), 0.8 (stop sign), per the
    # dearest miss (a pedestrian, 1 - 0.5)
    assert miss_cost("pedestrian") == pytest.approx(1.0)
    assert miss_cost("lead_vehicle") == pytest.approx(0.8)
    assert miss_cost("red_light") == pytest.approx(0.6)
    assert miss_cost("stop_sign") == pytest.approx(0.4)
    assert miss_cost("turn") == 0.0 and miss_cost("free_road") == 0.0
    scores = {reason: costed(("MOVE", 0.0), label) for reason, label in stop.items()}
    assert scores["pedestrian"] == pytest.approx(-1.0) and scores["red_light"] == pytest.approx(-0.6)
    assert scores["pedestrian"] < scores["lead_vehicle"] < scores["red_light"] < scores["stop_sign"] < 0.0
    # slowing for a turn costs no infraction: graded as before; the old objective scores every miss alike
    assert scores["turn"] == plain(("MOVE", 0.0), stop["turn"]) >= 0.0
    assert len({plain(("MOVE", 0.0), label) for label in stop.values()}) == 1
    # stopping when the expert stops is perfect either way; a moving expert is scored as before
    assert costed(("STOP", 0.0), stop["pedestrian"]) == 1.0
    move = DrivingLabel(6.0, 5.0, "MOVE", "free_road")
    for output in (("MOVE", 5.0), ("STOP", 0.0), (3.0, -10.0)):
        assert costed(output, move) == plain(output, move)


def test_standing_where_the_expert_drives_on_scores_like_a_route_ending_infraction():
    objective = DrivingObjective()  # the default: scene costs and a standstill cost of 1
    move = DrivingLabel(6.0, 0.0, "MOVE", "free_road")
    assert objective(("STOP", 0.0), move) == pytest.approx(-1.0)
    assert DrivingObjective(standstill_cost=0.4)(("STOP", 0.0), move) == pytest.approx(-0.4)
    assert DrivingObjective(scene_costs=False)(("STOP", 0.0), move) == pytest.approx(0.4)  # steering only
    assert objective(("SLOW", 0.0), move) > 0.0  # creeping is not standing


def test_waiting_for_what_goes_away_is_not_a_route_ending_standstill():
    objective = DrivingObjective()
    move = DrivingLabel(6.0, 0.0, "MOVE", "free_road")
    wait = objective.waiting_score(("STOP", 0.0), PolicyAction(0.0, 0.0, full_brake=True), move)
    assert 0.9 <= wait < 1.0  # the speed scores wait_score, the steering weighs as when stopped

    def scene(red=None, stop=None, vehicles=None, speed=0.0):
        out = make_scene(speed, red_m=red, vehicles=vehicles)
        out["distance_to_stop_sign"] = stop
        return out

    # a red light ahead within 50 m turns green; a stop sign whose zone the car is in is completed
    # by standing there; a car or walker close ahead in the ego's path drives or walks on
    for reason in (scene(red=35.0), scene(stop=6.0), scene(vehicles={"7": vehicle(9.0, 0.5)}),
                   scene(vehicles={"7": vehicle(20.0, 0.0)}, speed=5.0)):  # 12 m + 2 s at 5 m/s reach 22 m
        assert objective(("STOP", 0.0), move, (reason,)) == pytest.approx(wait)
    # standing with nothing to wait for ends routes: a light too far, a stop sign short of its zone
    # (standing there never completes it), a car behind, beside or too far ahead, an empty road
    for nothing in (scene(red=80.0), scene(stop=20.0), scene(vehicles={"7": vehicle(-8.0, 0.0)}),
                    scene(vehicles={"7": vehicle(6.0, 3.5)}), scene(vehicles={"7": vehicle(20.0, 0.0)}), scene()):
        assert objective(("STOP", 0.0), move, (nothing,)) == pytest.approx(-1.0)
    assert DrivingObjective(early_stop_range_m=90.0)(("STOP", 0.0), move, (scene(red=80.0),)) == pytest.approx(wait)
    # driving on is scored the same whatever lies ahead; a miss of what the expert stops for is not excused
    assert objective(("MOVE", 6.0), move, (scene(red=35.0),)) == objective(("MOVE", 6.0), move, (scene(),))
    assert objective(("MOVE", 0.0), label("STOP", reason="red_light"), (scene(red=5.0),)) == pytest.approx(-0.6)
