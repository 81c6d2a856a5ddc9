"""How a driving script behaves: a fixed probe set of scenes and the descriptor read from its outputs.

The probe set (:func:`probe_scenes`) holds, for every kind of scene a driver
must stop or slow for, the same scene at a ladder of distances and three ego
speeds, on a straight road from the origin heading +x (built with
:mod:`expert.scenarios`, so every scene follows the strict contract):

- ``red_light``: the governing light red, its stop line ``d`` m ahead;
- ``stop_sign``: a stop sign's zone ``d`` m ahead;
- ``lead_vehicle``: a standing car in the ego's lane, ``d`` m ahead (centre to centre);
- ``crossing``: a walker, then a cyclist, crossing from the left 1 m off the ego's line, ``d`` m ahead;
- ``junction_yield``: a junction ``d`` m ahead and a car coming at 8 m/s from the right towards the
  ego's path beyond it;
- ``static_prop``: a vending machine in the ego's lane ``d`` m ahead;

plus scenes that should change nothing (free road at four speeds, a car in the
next lane, a green light, a car and a walker behind) and curves left and right,
so that two scripts with the same outputs on all of them drive alike.

The descriptor (:func:`describe_outputs`): for each kind, whether the script
asks for a lower speed than on free road at the same ego speed in any of its
scenes (it stops or slows for it); ``needless``: whether it slows in a scene that
should change nothing (a script that stops for the car behind it waits for a car
that waits for it: "blocked" on the road); and its cruise speed on free road (m/s,
rounded). :func:`driving_behaviour_space` is what ``Task.behaviour`` takes.
:data:`INPUT_DOMAINS` are the ranges the scene contract gives its values
(unsigned speeds, sizes), for the dead-condition check.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from driving.labels import InvalidPolicyOutput, parse_policy_output
from expert.scenarios import arc_route, make_actor, make_prop, make_scene
from langprop_core.dead_logic import Interval
from langprop_core.diversity import BehaviourSpace, rounded_signature

__all__ = ["KINDS", "PROBE_DISTANCES_M", "PROBE_SPEEDS_MPS", "probe_scenes", "describe_outputs",
           "driving_behaviour_space", "INPUT_DOMAINS"]

# the kinds of scene the descriptor reports (in its order)
KINDS: tuple[str, ...] = ("red_light", "stop_sign", "lead_vehicle", "crossing", "junction_yield", "static_prop")
# fine where thresholds usually sit (a few metres), coarser beyond
PROBE_DISTANCES_M: tuple[float, ...] = (1.0, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0, 13.0, 17.0, 22.0, 30.0)
PROBE_SPEEDS_MPS: tuple[float, ...] = (0.0, 3.0, 6.0)
# a script "slows for" a scene when it asks for this much less than on free road
_SLOWER_MPS = 0.5

# The contract's ranges (driving.scene: speeds are unsigned, ego extents at least 0.5 m, sizes positive).
INPUT_DOMAINS: dict[str, Interval] = {
    key: Interval.closed(0.0) for key in (
        "ego_forward_speed", "forward_speed", "forward_length", "sideways_width", "length_m", "width_m",
        "ego_length_m", "ego_width_m", "speed_limit_mps")}
INPUT_DOMAINS.update({"ego_length": Interval.closed(0.5), "ego_width": Interval.closed(0.5)})


def _kind_scene(kind: str, d: float, speed: float) -> dict[str, Any]:
    if kind == "red_light":
        return make_scene(speed, traffic_light_state="red", distance_to_traffic_light_m=d,
                          distance_to_junction_m=d + 1.0)
    if kind == "stop_sign":
        return make_scene(speed, distance_to_stop_sign=d, distance_to_junction_m=d + 1.0)
    if kind == "lead_vehicle":
        return make_scene(speed, vehicles={11: make_actor(d, 0.0)})
    if kind == "crossing_walker":
        return make_scene(speed, pedestrians={21: make_actor(d, -1.0, yaw_deg=90.0, speed_mps=1.4,
                                                             actor_type="pedestrian")})
    if kind == "crossing_cyclist":
        return make_scene(speed, vehicles={31: make_actor(d, -1.0, yaw_deg=90.0, speed_mps=4.0,
                                                          actor_type="bicycle")})
    if kind == "junction_yield":
        return make_scene(speed, distance_to_junction_m=d, vehicles={41: make_actor(d + 6.0, 14.0, yaw_deg=-90.0,
                                                                                   speed_mps=8.0)})
    if kind == "static_prop":
        return make_scene(speed, static_props={51: make_prop(d, 0.0)})
    raise ValueError(f"unknown probe kind {kind!r}")


# the probe kinds behind each descriptor kind
_PROBE_KINDS: dict[str, tuple[str, ...]] = {
    "red_light": ("red_light",), "stop_sign": ("stop_sign",), "lead_vehicle": ("lead_vehicle",),
    "crossing": ("crossing_walker", "crossing_cyclist"), "junction_yield": ("junction_yield",),
    "static_prop": ("static_prop",),
}


def _layout() -> list[tuple[str, float, dict[str, Any]]]:
    """(kind, ego speed, scene) of every probe, in a fixed order."""
    rows: list[tuple[str, float, dict[str, Any]]] = []
    for speed in PROBE_SPEEDS_MPS + (9.0,):
        rows.append(("free_road", speed, make_scene(speed)))
    for speed in PROBE_SPEEDS_MPS:
        rows.append(("neutral", speed, make_scene(speed, vehicles={61: make_actor(8.0, 3.5)})))  # next lane
        rows.append(("neutral", speed, make_scene(speed, traffic_light_state="green",
                                                  distance_to_traffic_light_m=8.0)))
        rows.append(("neutral", speed, make_scene(speed, vehicles={62: make_actor(-8.0, 0.0)})))  # behind
        rows.append(("neutral", speed, make_scene(speed, pedestrians={22: make_actor(
            -3.0, 0.0, speed_mps=1.4, actor_type="pedestrian")})))  # behind
    for turn in ("left", "right"):
        rows.append(("curve", 6.0, make_scene(6.0, route=arc_route(12.0, turn, straight_m=3.0))))
    for kind in KINDS:
        for probe_kind in _PROBE_KINDS[kind]:
            for d in PROBE_DISTANCES_M:
                for speed in PROBE_SPEEDS_MPS:
                    rows.append((kind, speed, _kind_scene(probe_kind, d, speed)))
    return rows


def probe_scenes() -> list[dict[str, Any]]:
    """The probe set (see the module docstring), always the same scenes in the same order."""
    return [scene for _, _, scene in _layout()]


_KINDS_OF_PROBES: tuple[tuple[str, float], ...] = tuple((kind, speed) for kind, speed, _ in _layout())


def _speed(output: Any) -> float | None:
    if output is None:
        return None
    try:
        return parse_policy_output(output).target_speed_mps
    except InvalidPolicyOutput:
        return None


def _action(output: Any) -> Any:
    """What counts of an output for "the same behaviour": the target speed and the steering angle."""
    if output is None:
        return None
    try:
        action = parse_policy_output(output)
    except InvalidPolicyOutput:
        return "invalid"
    return [action.target_speed_mps, action.steering_deg, bool(action.full_brake)]


def describe_outputs(outputs: Sequence[Any]) -> dict[str, Any]:
    """The descriptor of a script with ``outputs`` on :func:`probe_scenes` (see the module docstring)."""
    if len(outputs) != len(_KINDS_OF_PROBES):
        raise ValueError(f"expected {len(_KINDS_OF_PROBES)} probe outputs, got {len(outputs)}")
    speeds = [_speed(o) for o in outputs]
    free = {speed: s for (kind, speed), s in zip(_KINDS_OF_PROBES, speeds) if kind == "free_road"}

    def slows_in(kind: str) -> bool:
        return any(s is not None and free.get(ego_speed) is not None and s < free[ego_speed] - _SLOWER_MPS
                   for (k, ego_speed), s in zip(_KINDS_OF_PROBES, speeds) if k == kind)

    descriptor: dict[str, Any] = {kind: int(slows_in(kind)) for kind in KINDS}
    descriptor["needless"] = int(slows_in("neutral"))
    cruise = free.get(6.0)
    descriptor["cruise_mps"] = None if cruise is None or not math.isfinite(cruise) else int(round(cruise))
    return descriptor


def _signature(outputs: Sequence[Any]) -> str:
    return rounded_signature([_action(o) for o in outputs], digits=1)


def driving_behaviour_space() -> BehaviourSpace:
    """The behaviour space of ``predict_speed_and_steering`` (for ``Task.behaviour``)."""
    return BehaviourSpace(probes=tuple((scene,) for scene in probe_scenes()), describe=describe_outputs,
                          signature=_signature)
