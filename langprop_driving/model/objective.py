"""The objective of ``predict_speed_and_steering``: imitate the expert, learn from infractions.

Two terms, after the LangProp paper, with a graded steering error instead of its
10-degree cliff:

- **Imitation.** The speed is scored against the expert's speed level (a small
  table, :data:`LEVEL_SCORE`: the same level scores 1, STOP and SLOW are close,
  moving where the expert stops and standing where it moves score 0), and, for
  numeric answers when both move, against the expert's target speed.
  The steering error is graded smoothly: ``1 - min(1, |error| / tolerance)``. It
  weighs less when the expert stops (the angle hardly matters standing still).
- **Infractions (the RL-like term).** A record from a rollout of the policy that
  lies within ``horizon_s`` seconds before an infraction (for getting blocked or
  timing out: within the whole standstill before it), where the action the
  car took differed from the expert's in the part that can cause that kind of
  infraction (speed for lights, stop signs and blocking; steering for leaving
  the route; both for collisions), tells us that action led to trouble:
  a prediction that repeats it scores ``-repeat_penalty``; one that matches the
  expert scores a full 1.0. :func:`infraction_weighted` samples such records
  more often.

With ``scene_costs`` (the default since issue 12), a scene where the expert
stops or slows for something whose miss the leaderboard penalises (a red
light, a stop sign, a lead vehicle or a yielding junction, a crossing
pedestrian: :data:`REASON_INFRACTION`) and the prediction moves on scores like
the infraction it would cause: ``-repeat_penalty * cost``, where ``cost`` is the
infraction's share of the driving score lost (``1 - penalty``) relative to the
dearest one (a pedestrian: 1.0; a vehicle 0.8, a red light 0.6, a stop sign 0.4).
Standing where the expert drives on leads to "agent blocked" or a route
timeout, which end the route: it scores ``-repeat_penalty * standstill_cost``
(default 1.0, as dear as the dearest penalty), unless the scene gives a
reason to wait that goes away by itself (:meth:`DrivingObjective.reason_to_wait`):
a red light within ``early_stop_range_m`` ahead (it turns green), a stop sign
whose zone the car is in (standing there completes it; standing short of the
zone completes nothing and waits forever), a vehicle or walker close ahead in
the ego's path (it moves on). Waiting for such a thing costs seconds, not the
route: its speed scores ``wait_score`` (0.9). Missing a scene that matters then
weighs in proportion to what it costs on the road, and caution that the road
does not punish is not scored as a route-ending standstill.

Measured with ``benchmarks/objective_correlation.py`` (Spearman of objective
against validation driving score over the scripts selection drove, scored on
the run's final dataset): see the README's benchmark table. The first revision
of issue 12 (standing still as dear as a pedestrian, excused only near a red
light or a stop sign) ranked scripts that stop for every car close ahead below
scripts that never look at cars, and scripts that stand 30 m before a stop sign
(and so time out) above those that stop at it.

Scores are in ``[-repeat_penalty, 1]``; 1.0 is perfect.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from driving.geometry import to_ego_frame, wrap_angle_deg
from driving.labels import DrivingLabel, PolicyAction, parse_policy_output, speed_level_for
from driving.penalties import PENALTY, STOP_ZONE_BEFORE_M

__all__ = [
    "DrivingTarget", "DrivingObjective", "LEVEL_SCORE", "BLAMED_ASPECTS", "predicted_level",
    "target_from_record", "in_infraction_window", "infraction_weighted", "STANDSTILL_KINDS",
    "REASON_INFRACTION", "miss_cost",
]

# (predicted level, expert level) -> speed score. Moving when the expert stops is the
# worst (collisions, red lights); stopping when the expert moves gets the car blocked,
# also worthless; SLOW and STOP are close (both stand still, nearly).
LEVEL_SCORE: dict[tuple[str, str], float] = {
    ("MOVE", "MOVE"): 1.0, ("SLOW", "SLOW"): 1.0, ("STOP", "STOP"): 1.0,
    ("STOP", "SLOW"): 0.7, ("SLOW", "STOP"): 0.7,
    ("SLOW", "MOVE"): 0.2, ("STOP", "MOVE"): 0.0,
    ("MOVE", "SLOW"): 0.1, ("MOVE", "STOP"): 0.0,
}


# Which part of an action can cause an infraction of each kind: running a light or a stop
# sign, or standing still, is the speed's doing; leaving the route is the steering's;
# collisions can be either. Unknown kinds blame both.
BLAMED_ASPECTS: dict[str, tuple[str, ...]] = {
    "red_light": ("speed",), "stop_infraction": ("speed",), "vehicle_blocked": ("speed",),
    "route_timeout": ("speed",), "route_dev": ("steering",), "outside_route_lanes": ("steering",),
    "collisions_layout": ("speed", "steering"), "collisions_vehicle": ("speed", "steering"),
    "collisions_pedestrian": ("speed", "steering"),
}


# The expert's reason to stop or slow (driving.labels.REASONS) -> the infraction that
# ignoring it leads to.
REASON_INFRACTION: dict[str, str] = {
    "red_light": "red_light", "stop_sign": "stop_infraction", "pedestrian": "collisions_pedestrian",
    "lead_vehicle": "collisions_vehicle", "junction_yield": "collisions_vehicle",
}


def miss_cost(reason: str) -> float:
    """What ignoring the expert's ``reason`` costs on the leaderboard, relative to the dearest miss (0: nothing)."""
    kind = REASON_INFRACTION.get(reason)
    if kind is None:
        return 0.0
    return (1.0 - PENALTY[kind]) / (1.0 - min(PENALTY.values()))


# Infractions of standing still: the car is to blame for the whole stop, and for being too
# slow as much as for being too fast.
STANDSTILL_KINDS: tuple[str, ...] = ("vehicle_blocked", "route_timeout")


def predicted_level(output: Any, action: PolicyAction) -> str:
    """The speed level of a policy's answer: its own level, or the nearest to its target speed."""
    speed = output[0] if isinstance(output, (tuple, list)) and output else None
    if isinstance(speed, str):
        return speed.strip().upper()
    return speed_level_for(action.target_speed_mps)


def _angle_diff_deg(a: float, b: float) -> float:
    return abs(wrap_angle_deg(a - b))


@dataclass(frozen=True)
class DrivingTarget:
    """What a prediction is scored against (the ``label`` the Task hands to the objective).

    ``taken`` is the action the car actually took in a rollout (None for pure
    expert data); ``infraction_within_s`` the seconds until the rollout's next
    infraction (None when none followed).
    """

    label: DrivingLabel
    taken: PolicyAction | None = None
    controller: str | None = None
    infraction_within_s: float | None = None
    infraction_kind: str | None = None
    route_id: str | None = None
    time_s: float | None = None


def _action_from_meta(action: Any) -> PolicyAction | None:
    if not isinstance(action, Mapping) or "target_speed_mps" not in action:
        return None
    speed = float(action["target_speed_mps"])
    return PolicyAction(speed, float(action.get("steering_deg", 0.0)),
                        full_brake=bool(action.get("full_brake", speed == 0.0)))


def target_from_record(record: Any) -> DrivingTarget:
    """Build the scoring target of a dataset record (``driving.dataset.SceneRecord`` or its dict form)."""
    label = record["label"] if isinstance(record, Mapping) else record.label
    meta = (record.get("meta") if isinstance(record, Mapping) else record.meta) or {}
    if label is None:
        raise ValueError(f"record of route {meta.get('route_id')!r} at t={meta.get('time_s')} has no "
                         "expert label: relabel the dataset first (langprop relabel)")
    if isinstance(label, Mapping):
        label = DrivingLabel.from_dict(label)
    within = meta.get("infraction_within_s")
    return DrivingTarget(
        label=label,
        taken=_action_from_meta(meta.get("action")),
        controller=meta.get("controller"),
        infraction_within_s=None if within is None else float(within),
        infraction_kind=meta.get("infraction_kind"),
        route_id=meta.get("route_id"),
        time_s=meta.get("time_s"),
    )


def in_infraction_window(target: DrivingTarget, horizon_s: float, standstill_horizon_s: float | None = None) -> bool:
    """Whether the record lies in the blame window before an infraction of a policy rollout.

    The window is ``horizon_s`` seconds; for infractions of standing still
    (:data:`STANDSTILL_KINDS`) it is ``standstill_horizon_s`` (default: the
    same), since the whole stop that ended the route is to blame, not its end.
    """
    if target.infraction_within_s is None or target.taken is None or target.controller == "expert":
        return False
    limit = horizon_s
    if standstill_horizon_s is not None and target.infraction_kind in STANDSTILL_KINDS:
        limit = max(horizon_s, standstill_horizon_s)
    return 0.0 <= target.infraction_within_s <= limit


@dataclass(frozen=True)
class DrivingObjective:
    """Score one prediction against a :class:`DrivingTarget` (higher is better, 1.0 perfect).

    Call it as ``objective(output, target, args)`` (the Task's objective signature).
    """

    speed_weight: float = 0.6
    steering_weight: float = 0.4
    # weight of steering when the expert stops: the angle barely matters standing still
    steering_weight_stopped: float = 0.1
    steering_tolerance_deg: float = 30.0
    horizon_s: float = 3.0
    # longer than the leaderboard's 180 s "blocked" time: the whole standstill is blamed
    standstill_horizon_s: float = 240.0
    repeat_penalty: float = 1.0
    # two actions are "the same" when their levels agree, their target speeds and steering this close
    same_action_deg: float = 10.0
    same_speed_mps: float = 1.5
    # score moving on where the expert stops for a costly reason like the infraction (module docstring)
    scene_costs: bool = True
    # with scene_costs: standing where the expert drives on (the way to "blocked" and "timed out",
    # which end the route: as dear as the dearest penalty) scores -repeat_penalty * standstill_cost
    standstill_cost: float = 1.0
    # ... unless the scene gives a reason to wait (:meth:`reason_to_wait`): a red light ahead within
    # ``early_stop_range_m`` (further away, stopping for every light makes a car time out on long
    # routes), an uncompleted stop sign within ``stop_zone_m``, or a vehicle or walker in the ego's
    # path within ``wait_range_m`` plus ``wait_time_gap_s`` of its speed. Waiting for it costs
    # seconds on the road, not the route, so the speed scores ``wait_score`` (the steering weighs as
    # when the expert stops).
    early_stop_range_m: float = 50.0
    # a stop sign is completed by stopping in its zone (the 8 m before its line, measured from the
    # ego's front; the scene's distance is from its centre, about 2 m further back), and only there:
    # standing further back waits for nothing
    stop_zone_m: float = STOP_ZONE_BEFORE_M + 2.0
    wait_score: float = 0.9
    wait_range_m: float = 12.0
    wait_time_gap_s: float = 2.0
    wait_half_width_m: float = 2.0

    def __post_init__(self) -> None:
        for name in ("speed_weight", "steering_weight", "steering_weight_stopped", "horizon_s",
                     "repeat_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"DrivingObjective.{name} must be >= 0, got {getattr(self, name)}")
        if self.steering_tolerance_deg <= 0 or self.same_action_deg <= 0 or self.same_speed_mps < 0:
            raise ValueError("DrivingObjective: steering_tolerance_deg and same_action_deg must be > 0, "
                             "same_speed_mps >= 0")
        if self.speed_weight + self.steering_weight <= 0:
            raise ValueError("DrivingObjective: speed_weight + steering_weight must be > 0")

    # -- pieces ------------------------------------------------------------------
    def speed_score(self, output: Any, action: PolicyAction, label: DrivingLabel) -> float:
        level = predicted_level(output, action)
        score = LEVEL_SCORE.get((level, label.speed_level), 0.0)
        numeric = not isinstance(output[0], str)
        if numeric and level == "MOVE" and label.speed_level == "MOVE":
            # a target speed is also graded on its size: half the score at most for a wrong one
            relative_error = abs(action.target_speed_mps - label.target_speed_mps) / max(label.target_speed_mps, 1.0)
            score *= 1.0 - 0.5 * min(1.0, relative_error)
        return score

    def steering_score(self, action: PolicyAction, label: DrivingLabel) -> float:
        error = _angle_diff_deg(action.steering_deg, label.steering_deg)
        return 1.0 - min(1.0, error / self.steering_tolerance_deg)

    def imitation_score(self, output: Any, action: PolicyAction, label: DrivingLabel) -> float:
        steering_weight = self.steering_weight_stopped if label.speed_level == "STOP" else self.steering_weight
        return self._blend(self.speed_score(output, action, label), steering_weight, action, label)

    def _blend(self, speed: float, steering_weight: float, action: PolicyAction, label: DrivingLabel) -> float:
        """A speed score and the graded steering, weighted ``speed_weight`` : ``steering_weight``."""
        return ((self.speed_weight * speed + steering_weight * self.steering_score(action, label))
                / (self.speed_weight + steering_weight))

    def same_action(self, level_a: str, speed_a: float, steer_a: float, level_b: str, speed_b: float,
                    steer_b: float, aspects: tuple[str, ...] = ("speed", "steering")) -> bool:
        """Same level and target speed (within ``same_speed_mps``), and steering within ``same_action_deg``.

        ``aspects`` limits the comparison to the speed or the steering part.
        """
        if "speed" in aspects and (level_a != level_b or abs(speed_a - speed_b) > self.same_speed_mps):
            return False
        return "steering" not in aspects or _angle_diff_deg(steer_a, steer_b) <= self.same_action_deg

    def in_window(self, target: DrivingTarget) -> bool:
        """Whether ``target`` lies in the blame window before an infraction (see :func:`in_infraction_window`)."""
        return in_infraction_window(target, self.horizon_s, self.standstill_horizon_s)

    def taken_was_wrong(self, level: str, speed: float, steer: float, label: DrivingLabel,
                        aspects: tuple[str, ...] = ("speed", "steering"), too_slow_counts: bool = False) -> bool:
        """Whether the car's action differed from the expert's in a way that can cause the infraction.

        Speed: another level (moving where the expert stops, standing where it
        moves) or faster than the expert by more than ``same_speed_mps`` (a little
        slower is not blamed, unless ``too_slow_counts``: standing still too long).
        Steering: off by more than ``same_action_deg``.
        """
        excess = speed - label.target_speed_mps
        if too_slow_counts:
            excess = abs(excess)
        if "speed" in aspects and (level != label.speed_level or excess > self.same_speed_mps):
            return True
        return "steering" in aspects and _angle_diff_deg(steer, label.steering_deg) > self.same_action_deg

    # -- the objective -----------------------------------------------------------
    def __call__(self, output: Any, target: DrivingTarget | DrivingLabel, args: Sequence[Any] = ()) -> float:
        if isinstance(target, DrivingLabel):
            target = DrivingTarget(label=target)
        action = parse_policy_output(output)
        label = target.label
        level = predicted_level(output, action)
        if self.in_window(target):
            taken = target.taken
            taken_level = "STOP" if taken.full_brake else speed_level_for(taken.target_speed_mps)
            aspects = BLAMED_ASPECTS.get(target.infraction_kind or "", ("speed", "steering"))
            if self.taken_was_wrong(taken_level, taken.target_speed_mps, taken.steering_deg, label, aspects,
                                    too_slow_counts=target.infraction_kind in STANDSTILL_KINDS):
                if self.same_action(level, action.target_speed_mps, action.steering_deg,
                                    taken_level, taken.target_speed_mps, taken.steering_deg, aspects):
                    return -self.repeat_penalty
                if self.same_action(level, action.target_speed_mps, action.steering_deg,
                                    label.speed_level, label.target_speed_mps, label.steering_deg, aspects):
                    return 1.0
        if self.scene_costs and label.speed_level != "MOVE" and level == "MOVE":
            cost = miss_cost(label.reason)
            if cost > 0.0:
                return -self.repeat_penalty * cost
        if self.scene_costs and label.speed_level == "MOVE" and level != "MOVE":
            if self.reason_to_wait(args):
                return self.waiting_score(output, action, label)
            if level == "STOP" and self.standstill_cost > 0.0:
                return -self.repeat_penalty * self.standstill_cost
        return self.imitation_score(output, action, label)

    def waiting_score(self, output: Any, action: PolicyAction, label: DrivingLabel) -> float:
        """A stop or a crawl where the expert drives on but the scene gives a reason to wait."""
        speed = max(self.wait_score, self.speed_score(output, action, label))
        return self._blend(speed, self.steering_weight_stopped, action, label)

    def reason_to_wait(self, args: Sequence[Any]) -> bool:
        """Whether the scene (``args[0]``) gives a reason to wait (see the class's fields).

        A red light, an uncompleted stop sign, a vehicle or a walker in the
        ego's path close ahead: what holds the car there goes away (the light
        turns green, the stop is made, the road ahead clears), so waiting for it
        is not the standstill that ends a route. "In the path" is a straight band
        of ``wait_half_width_m`` either side of the ego's heading.
        """
        scene = args[0] if args and isinstance(args[0], Mapping) else None
        if scene is None:
            return False
        for key, reach in (("distance_to_red_light", self.early_stop_range_m),
                           ("distance_to_stop_sign", self.stop_zone_m)):
            distance = scene.get(key)
            if distance is not None and 0.0 <= float(distance) <= reach:
                return True
        try:
            ego = np.asarray(scene["ego_location_world_coord"], dtype=float)
            forward = np.asarray(scene["ego_orientation_unit_vector"], dtype=float)
            reach = self.wait_range_m + self.wait_time_gap_s * float(scene.get("ego_forward_speed") or 0.0)
            points = [actor["location_world_coord"] for group in ("vehicles", "pedestrians")
                      for actor in (scene.get(group) or {}).values()]
        except (KeyError, TypeError, ValueError):
            return False
        if not points:
            return False
        local = to_ego_frame(np.asarray(points, dtype=float)[:, :2], ego[:2], forward[:2])
        ahead, right = local[:, 0], local[:, 1]
        return bool(np.any((ahead > 0.0) & (ahead < reach) & (np.abs(right) < self.wait_half_width_m)))


def infraction_weighted(items: Iterable[Any], weight: float = 3.0, horizon_s: float = 3.0,
                        seed: int = 0, standstill_horizon_s: float | None = None) -> list[Any]:
    """Every record once, records in an infraction window ``weight`` times on average; shuffled.

    The integer part of ``weight`` is repeated exactly, the fractional part by a
    seeded draw, so the oversampling is reproducible.
    """
    if weight < 1.0:
        raise ValueError(f"infraction weight must be >= 1, got {weight}")
    rng = random.Random(seed)
    out: list[Any] = []
    whole, fraction = int(math.floor(weight)), weight - math.floor(weight)
    for item in items:
        copies = 1
        try:
            window = in_infraction_window(target_from_record(item), horizon_s, standstill_horizon_s)
        except (ValueError, KeyError, AttributeError):
            window = False
        if window:
            copies = whole + (1 if rng.random() < fraction else 0)
        out.extend([item] * copies)
    rng.shuffle(out)
    return out
