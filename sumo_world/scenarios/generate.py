"""A scenario file for any town: triggers placed by the kind of rule the public file follows.

The leaderboard's public file puts Scenario1 and Scenario3 on straight
stretches of road (Scenario3 where a sidewalk runs beside the lane, so the
walker has somewhere to come from) and Scenario4 on the approaches to
junctions where the road can turn. :func:`generate_scenarios` applies that to
a SUMO net:

- Scenario1 and Scenario3 (one shared trigger, as in the public file) on every
  driving lane of a normal edge with at least ``MIN_STRAIGHT_M`` of nearly
  straight centre line (heading change under 10 degrees), ``TRIGGER_FROM_START_M``
  after the lane's start; Scenario3 only where the lane is the rightmost driving
  lane and a sidewalk lies to its right;
- Scenario4 on every lane that ends at an intersection with a left or right
  connection, ``TRIGGER_BEFORE_JUNCTION_M`` before its stop line.

The file has the leaderboard-1.0 format (:mod:`sumo_world.scenarios.definitions`),
one town, transforms in CARLA coordinates at road height (z = 0, the height of
routes in the embedded world's generated towns).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from driving.geometry import wrap_angle_deg

__all__ = ["generate_scenarios", "write_scenario_file", "MIN_STRAIGHT_M", "TRIGGER_FROM_START_M",
           "TRIGGER_BEFORE_JUNCTION_M"]

MIN_STRAIGHT_M = 60.0  # room for the walker 12 m on and the ego's 40 m after it
TRIGGER_FROM_START_M = 8.0
TRIGGER_BEFORE_JUNCTION_M = 15.0
_STRAIGHT_DEG = 10.0
_DRIVING = "passenger"


def _transform(network: Any, lane_id: str, offset_m: float) -> dict[str, str]:
    shape = network.lane_shape(lane_id)
    lengths = np.r_[0.0, np.cumsum(np.hypot(*np.diff(shape, axis=0).T))]
    x = float(np.interp(offset_m, lengths, shape[:, 0]))
    y = float(np.interp(offset_m, lengths, shape[:, 1]))
    yaw = network.lane_heading_yaw(lane_id, offset_m) % 360.0
    return {"x": f"{x:.2f}", "y": f"{y:.2f}", "z": "0.0", "yaw": f"{yaw:.2f}", "pitch": "0"}


def _straight_m(network: Any, lane_id: str) -> float:
    """Length of the lane's centre line from its start while its heading stays within 10 degrees."""
    shape = network.lane_shape(lane_id)
    if len(shape) < 2:
        return 0.0
    steps = np.diff(shape, axis=0)
    headings = np.degrees(np.arctan2(steps[:, 1], steps[:, 0]))
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    total = 0.0
    for heading, length in zip(headings, lengths):
        if abs(wrap_angle_deg(heading - headings[0])) > _STRAIGHT_DEG:
            break
        total += float(length)
    return total


def _sidewalk_right(lane: Any) -> bool:
    lanes = lane.getEdge().getLanes()
    index = lane.getIndex()
    if index == 0:
        return False
    right = lanes[index - 1]
    return right.allows("pedestrian") and not right.allows(_DRIVING)


def _rightmost_driving(lane: Any) -> bool:
    lanes = lane.getEdge().getLanes()
    return not any(other.allows(_DRIVING) for other in lanes[:lane.getIndex()])


def _turns(lane: Any) -> bool:
    return any(c.getDirection() in ("l", "L", "r", "R") for c in lane.getOutgoing())


def generate_scenarios(network: Any) -> dict[str, list[dict]]:
    """{scenario type: [event configurations]} for the town of ``network`` (a RoadNetwork)."""
    events: dict[str, list[dict]] = {"Scenario1": [], "Scenario3": [], "Scenario4": []}
    for edge in network.driving_edges():
        to_node = edge.getToNode().getID()
        for lane in edge.getLanes():
            if not lane.allows(_DRIVING):
                continue
            lane_id = lane.getID()
            length = float(lane.getLength())
            if _straight_m(network, lane_id) >= MIN_STRAIGHT_M:
                transform = _transform(network, lane_id, TRIGGER_FROM_START_M)
                events["Scenario1"].append({"transform": transform})
                if _rightmost_driving(lane) and _sidewalk_right(lane):
                    events["Scenario3"].append({"transform": dict(transform)})
            if _turns(lane) and _is_intersection(network, to_node) and length > TRIGGER_BEFORE_JUNCTION_M + 2.0:
                events["Scenario4"].append({"transform": _transform(network, lane_id,
                                                                    length - TRIGGER_BEFORE_JUNCTION_M)})
    return {name: found for name, found in events.items() if found}


def _is_intersection(network: Any, node_id: str) -> bool:
    try:
        return bool(network.is_intersection(node_id))
    except (KeyError, AttributeError):
        return True


def write_scenario_file(network: Any, town: str, path: str | Path) -> Path:
    """Write the leaderboard-1.0 scenario file of ``town`` (see the module); returns the path."""
    scenarios = generate_scenarios(network)
    data = {"available_scenarios": [{town: [
        {"scenario_type": name, "available_event_configurations": configs}
        for name, configs in sorted(scenarios.items(), key=lambda item: int(item[0][len("Scenario"):]))]}]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path
