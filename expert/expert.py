"""The privileged rule-based expert: scene -> target speed, steering angle, reason.

Reads like a priority list (after CARLA's BehaviorAgent): build the route path
and the nearby actors, then take the lowest target speed over the constraints
(cruise / speed limit, curves, traffic lights, stop signs, the lead vehicle in
the route corridor, a signalised junction's box kept clear, yielding to actors on a collision course); steer by pure
pursuit. Everything comes from the scene alone, so relabelling any recorded
scene gives the label the expert would have given live. The only "memory" a
stop sign needs is in the scene: ``distance_to_stop_sign`` turns None once the
world has seen the ego stop.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from driving.labels import REASONS, DrivingLabel, speed_level_for
from expert.config import ExpertConfig
from expert.lateral import pure_pursuit_steering_deg
from expert.longitudinal import (
    ActorSet, EgoState, SpeedConstraint, cruise_constraint, curve_constraint, junction_box_constraint,
    lead_vehicle_constraint, stop_sign_constraint, traffic_light_constraint, yield_constraint,
)
from expert.path import RoutePath
from expert.prediction import Boxes, boxes_overlap

__all__ = ["Expert"]

_REASON_RANK = {r: i for i, r in enumerate(REASONS)}


def _route_points(scene: Mapping[str, Any]) -> np.ndarray:
    ego = np.asarray(scene["ego_location_world_coord"], dtype=float)
    route = scene.get("route_ahead_world_coord")
    target = np.asarray(scene["ego_target_location_world_coord"], dtype=float)
    if route is None or len(route) < 2 or float(np.ptp(np.asarray(route, dtype=float), axis=0).max()) < 0.5:
        # A paper-format scene: only the target point is known; assume the road goes on
        # straight past it, so that actors beyond the target are still seen.
        delta = target - ego
        norm = float(np.hypot(delta[0], delta[1]))
        if norm < 0.1:
            delta = np.asarray(scene["ego_orientation_unit_vector"], dtype=float)
            norm, target = 1.0, ego + delta
        return np.vstack([ego, target, target + delta / norm * 45.0])
    return np.asarray(route, dtype=float)


def _pose(entry: Mapping[str, Any], ego_xy: np.ndarray, max_range_m: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre, unit forward) of a scene actor or prop within ``max_range_m`` (per axis) of the ego, else None."""
    loc = np.asarray(entry["location_world_coord"], dtype=float)
    if abs(loc[0] - ego_xy[0]) > max_range_m or abs(loc[1] - ego_xy[1]) > max_range_m:
        return None
    fwd = np.asarray(entry["orientation_unit_vector"], dtype=float)
    norm = float(np.hypot(fwd[0], fwd[1]))
    return loc, (fwd / norm if norm > 1e-6 else np.array([1.0, 0.0]))


def _actor_set(scene: Mapping[str, Any], ego_xy: np.ndarray, max_range_m: float) -> ActorSet:
    ids, kinds, peds, rows = [], [], [], []
    for group in ("vehicles", "pedestrians"):
        for actor_id, actor in (scene.get(group) or {}).items():
            pose = _pose(actor, ego_xy, max_range_m)
            if pose is None:
                continue
            loc, fwd = pose
            vel = actor.get("velocity_mps")
            vel = np.asarray(vel, dtype=float) if vel is not None else fwd * float(actor["forward_speed"])
            half_l = float(actor["length_m"]) / 2.0 if "length_m" in actor else float(actor["forward_length"])
            half_w = float(actor["width_m"]) / 2.0 if "width_m" in actor else float(actor["sideways_width"])
            is_ped = group == "pedestrians" or actor.get("actor_type") == "pedestrian"
            ids.append(int(actor_id))
            kinds.append(str(actor.get("actor_type", "pedestrian" if is_ped else "car")))
            peds.append(is_ped)
            rows.append((loc, fwd, vel, half_l, half_w))
    for prop_id, prop in (scene.get("static_props") or {}).items():
        # A scenario's prop (vending machine, barrier) is an obstacle that never moves: a parked car.
        pose = _pose(prop, ego_xy, max_range_m)
        if pose is None:
            continue
        ids.append(int(prop_id))
        kinds.append("static_prop")
        peds.append(False)
        rows.append((*pose, np.zeros(2), float(prop["length_m"]) / 2.0, float(prop["width_m"]) / 2.0))
    if not rows:
        empty2 = np.zeros((0, 2))
        return ActorSet([], [], np.zeros(0, bool), empty2, empty2, empty2, np.zeros(0), np.zeros(0), np.zeros(0))
    loc, fwd, vel, half_l, half_w = (np.array(c) for c in zip(*rows))
    return ActorSet(ids, kinds, np.array(peds, dtype=bool), loc, fwd, vel, np.linalg.norm(vel, axis=1),
                    half_l, half_w)


class Expert:
    """Scene -> :class:`DrivingLabel`. Stateless: the same scene always gets the same label."""

    def __init__(self, config: ExpertConfig | None = None) -> None:
        self.config = config or ExpertConfig()

    def predict(self, scene: Mapping[str, Any]) -> DrivingLabel:
        """The expert's target speed (m/s), steering angle (degrees, positive right), the
        paper's speed level, and the reason for the speed."""
        c = self.config
        ego_xy = np.asarray(scene["ego_location_world_coord"], dtype=float)
        fwd = np.asarray(scene["ego_orientation_unit_vector"], dtype=float)
        fwd = fwd / max(float(np.hypot(fwd[0], fwd[1])), 1e-9)
        speed = float(scene["ego_forward_speed"])
        path = RoutePath(_route_points(scene))
        ego_s = float(path.project(ego_xy)[0])
        half_l = float(scene["ego_length_m"]) / 2.0 if "ego_length_m" in scene else float(scene["ego_length"])
        half_w = float(scene["ego_width_m"]) / 2.0 if "ego_width_m" in scene else float(scene["ego_width"])
        ego = EgoState(ego_xy, fwd, speed, half_l, half_w, ego_s)

        steering = pure_pursuit_steering_deg(path, ego_xy, fwd, ego_s, speed, c)

        constraints: list[SpeedConstraint | None] = [
            cruise_constraint(scene.get("speed_limit_mps"), c),
            curve_constraint(path, ego, c),
            traffic_light_constraint(scene, ego, c),
            stop_sign_constraint(scene, ego, c),
        ]
        actors = _actor_set(scene, ego_xy, max(c.lead_range_m, c.prediction_range_m))
        if len(actors):
            # An actor already overlapping the car (a walker stuck in it after a contact) is
            # out of the expert's hands: waiting for it would only block the route for good.
            inside = boxes_overlap(Boxes(ego_xy, fwd, np.float64(half_l), np.float64(half_w)),
                                   Boxes(actors.center, actors.forward, actors.half_length, actors.half_width))
            actors = actors.subset(~inside)
        lead, in_corridor = lead_vehicle_constraint(path, ego, actors, c)
        constraints.append(lead)
        constraints.append(junction_box_constraint(scene, path, ego, actors, in_corridor, c))
        planned = min(x.speed_mps for x in constraints if x is not None)
        far = np.linalg.norm(actors.center - ego_xy, axis=1) > c.prediction_range_m
        constraints.append(yield_constraint(path, ego, actors, in_corridor | far, planned, c))

        binding = min((x for x in constraints if x is not None),
                      key=lambda x: (round(x.speed_mps, 6), _REASON_RANK[x.reason]))
        cruise = constraints[0]
        reason = binding.reason if binding.speed_mps < cruise.speed_mps - 1e-6 else "free_road"
        target = max(0.0, float(binding.speed_mps))
        if target < 0.05:
            target = 0.0
        return DrivingLabel(target_speed_mps=round(target, 4), steering_deg=round(float(steering), 4),
                            speed_level=speed_level_for(target), reason=reason)

    __call__ = predict
