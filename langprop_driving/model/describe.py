"""Failure cases as text for the update prompt: the scene seen from the driver's seat.

Raw scene dicts are long and hard to read (world coordinates, dozens of actors);
the LLM learns more from the few things that mattered, in the ego frame:
where the route goes, the light and the stop sign, the nearest actors with their
relative position, heading and speed, then what the expert did and why, and what
the script answered.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from driving.geometry import relative_angle_deg, to_ego_frame
from driving.labels import InvalidPolicyOutput, parse_policy_output
from langprop_core.sandbox import bounded_repr

__all__ = ["describe_scene", "describe_case", "relevant_actors"]

# actors further than this from the ego are left out of a case description
ACTOR_RANGE_M = 40.0


def _fmt(value: float | None, unit: str = "m", digits: int = 1) -> str:
    return "none" if value is None else f"{float(value):.{digits}f} {unit}"


def relevant_actors(scene: Mapping[str, Any], max_actors: int = 6,
                    max_distance_m: float = ACTOR_RANGE_M) -> list[dict[str, Any]]:
    """The actors nearest the ego's path, in the ego frame, nearest first.

    Actors ahead count at their distance; actors behind the ego count double (they
    rarely matter), so the list favours what the driver sees.
    """
    ego = np.asarray(scene["ego_location_world_coord"], dtype=float)
    forward = np.asarray(scene["ego_orientation_unit_vector"], dtype=float)
    out = []
    for group in ("vehicles", "pedestrians"):
        for actor_id, actor in (scene.get(group) or {}).items():
            location = np.asarray(actor["location_world_coord"], dtype=float)
            ahead, right = (float(v) for v in to_ego_frame(location, ego, forward))
            distance = math.hypot(ahead, right)
            if distance > max_distance_m:
                continue
            heading = np.asarray(actor["orientation_unit_vector"], dtype=float)
            # the actor's heading relative to the ego's, positive clockwise (to the right)
            rel_heading = math.degrees(math.atan2(
                float(forward[0] * heading[1] - forward[1] * heading[0]), float(forward @ heading)))
            out.append({
                "group": group, "id": int(actor_id),
                "type": actor.get("actor_type", "vehicle" if group == "vehicles" else "pedestrian"),
                "ahead_m": ahead, "right_m": right, "distance_m": distance,
                "heading_deg": rel_heading, "speed_mps": float(actor["forward_speed"]),
                "rank": distance if ahead >= 0 else 2 * distance,
            })
    out.sort(key=lambda a: a["rank"])
    return out[:max_actors]


def _heading_words(heading_deg: float) -> str:
    h = abs(heading_deg)
    if h < 30:
        return "same direction"
    if h > 150:
        return "oncoming"
    return "crossing to the right" if heading_deg > 0 else "crossing to the left"


def describe_scene(scene: Mapping[str, Any], max_actors: int = 6) -> str:
    """A short, readable description of a scene in the ego frame."""
    ego = np.asarray(scene["ego_location_world_coord"], dtype=float)
    forward = np.asarray(scene["ego_orientation_unit_vector"], dtype=float)
    target = np.asarray(scene["ego_target_location_world_coord"], dtype=float)
    t_ahead, t_right = (float(v) for v in to_ego_frame(target, ego, forward))
    lines = [
        f"- ego: speed {float(scene['ego_forward_speed']):.2f} m/s"
        + (f", speed limit {float(scene['speed_limit_mps']):.1f} m/s" if scene.get("speed_limit_mps") is not None else "")
        + (", inside a junction" if scene.get("ego_in_junction") else ""),
        f"- route target: {t_ahead:.1f} m ahead, {t_right:.1f} m to the right "
        f"(angle {relative_angle_deg(ego, forward, target):.1f} deg)"
        + (f", command {scene['route_command']}" if scene.get("route_command") else ""),
        f"- distance_to_red_light: {_fmt(scene.get('distance_to_red_light'))}"
        + (f" (light {scene['traffic_light_state']})" if scene.get("traffic_light_state") else ""),
        f"- distance_to_stop_sign: {_fmt(scene.get('distance_to_stop_sign'))}",
    ]
    if scene.get("distance_to_junction_m") is not None:
        lines.append(f"- next junction: {float(scene['distance_to_junction_m']):.1f} m along the route")
    actors = relevant_actors(scene, max_actors=max_actors)
    n_total = len(scene.get("vehicles") or {}) + len(scene.get("pedestrians") or {})
    if actors:
        lines.append(f"- nearest actors ({len(actors)} of {n_total}; ahead/right in metres, ego frame):")
        for a in actors:
            lines.append(
                f"  - {a['type']} {a['id']} (in `{a['group']}`): {a['ahead_m']:.1f} ahead, {a['right_m']:.1f} right, "
                f"{a['speed_mps']:.1f} m/s, {_heading_words(a['heading_deg'])} ({a['heading_deg']:.0f} deg)")
    else:
        lines.append(f"- no actors within {ACTOR_RANGE_M:.0f} m ({n_total} in the scene)")
    return "\n".join(lines)


_INFRACTION_WORDS = {
    "collisions_layout": "collision with a static object", "collisions_pedestrian": "collision with a pedestrian",
    "collisions_vehicle": "collision with a vehicle", "red_light": "red-light violation",
    "stop_infraction": "stop-sign violation", "vehicle_blocked": "blocked car (standing still too long)",
    "route_dev": "route deviation", "route_timeout": "route timeout", "outside_route_lanes": "off-lane driving",
}


def _describe_output(output: Any) -> str:
    try:
        action = parse_policy_output(output)
    except InvalidPolicyOutput as exc:
        return f"{bounded_repr(output, 200)} (invalid: {exc})"
    return f"{bounded_repr(output, 120)} -> target {action.target_speed_mps:.1f} m/s, steering {action.steering_deg:.1f} deg"


def describe_case(args: tuple, target: Any, output: Any, max_actors: int = 6) -> str:
    """The failure text for one case: scene, expert label and reason, the script's output, infraction context."""
    scene = args[0]
    label = getattr(target, "label", target)
    parts = ["Scene:", describe_scene(scene, max_actors=max_actors),
             f"Expert: ({label.speed_level!r}, {label.steering_deg:.1f}) -- target {label.target_speed_mps:.1f} m/s, "
             f"reason: {label.reason}",
             f"Script returned: {_describe_output(output)}"]
    within = getattr(target, "infraction_within_s", None)
    taken = getattr(target, "taken", None)
    if within is not None and taken is not None:
        parts.append(
            f"In a test drive, this scene came {within:.1f} s before a "
            f"{_INFRACTION_WORDS.get(getattr(target, 'infraction_kind', None) or '', 'an infraction')}; "
            f"the car was told target {taken.target_speed_mps:.1f} m/s, steering {taken.steering_deg:.1f} deg "
            "there. Repeating that is penalised.")
    return "\n".join(parts)
