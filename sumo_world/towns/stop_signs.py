"""Stop signs of CARLA towns: read, placed on the SUMO lanes they govern, stored with the town.

CARLA's towns carry stop signs in two ways (both become :class:`StopSign`):

- newer OpenDRIVE files hold them as signals of type 206
  (:func:`from_opendrive`), placed at their road, ``s`` and ``t``;
- in Town01-05 they exist only as ``traffic.stop`` actors of CARLA's level,
  each with a trigger volume; ``scripts/export_carla_stops.py`` writes them
  from a live CARLA server to JSON (:func:`from_export`).

:func:`assign_lanes` finds the lanes each sign governs: the incoming driving
lanes of the junction ahead of it, heading the way the sign's traffic drives
(OpenDRIVE signs), or the lanes running through the trigger volume (CARLA
actors). The sign's ``area`` is then where a car must have stopped, like
CARLA's trigger volume: the last :data:`STOP_AREA_LENGTH_M` of each governed
lane before its stop line (the exported trigger volume when there is one).

The town keeps them in ``stop_signs.json`` beside its net; its junctions with
stop signs become ``priority_stop`` (or ``allway_stop`` when every approach
has one) in the net, the signed approaches with a lower road priority so that
SUMO makes them the junction's minor roads, so SUMO's own traffic stops there
too, and
:class:`sumo_world.roads.network.RoadNetwork` hands the governed lanes to the
scene's ``distance_to_stop_sign`` and the stop criterion.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from driving.geometry import wrap_angle_deg

__all__ = ["StopSign", "StopSignError", "STOP_SIGNS_FILE", "STOP_AREA_LENGTH_M", "from_opendrive", "from_export",
           "assign_lanes", "save_stop_signs", "load_stop_signs", "junction_types", "minor_edges"]

STOP_SIGNS_FILE = "stop_signs.json"
# How far before its stop line a governed lane is the stop area (the criterion's zone starts there too).
STOP_AREA_LENGTH_M = 8.0
# An OpenDRIVE stop sign governs lanes ending within this distance of it (signs stand beside the road,
# a few metres before or after the stop line), heading within _MAX_HEADING_DEG of its traffic.
_SIGN_REACH_M = 20.0
_MAX_HEADING_DEG = 45.0
_OPENDRIVE_STOP_TYPE = "206"


class StopSignError(ValueError):
    """Stop signs cannot be read (the message names the file and the problem)."""


@dataclass(frozen=True)
class StopSign:
    """One stop sign in CARLA's frame.

    ``x, y``: the sign (OpenDRIVE) or its trigger volume's centre (CARLA
    actor); ``yaw_deg``: the heading of the traffic it stops when known;
    ``trigger``: the exported trigger volume's corners; ``lanes``: the SUMO
    lanes it governs; ``area``: per governed lane, the polygon where a car
    must stop (CARLA frame).
    """

    sign_id: str
    source: str  # "opendrive" | "carla"
    x: float
    y: float
    yaw_deg: float | None = None
    road: str = ""
    s: float | None = None
    t: float | None = None
    trigger: tuple[tuple[float, float], ...] = ()
    lanes: tuple[str, ...] = ()
    area: tuple[tuple[tuple[float, float], ...], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StopSign":
        """The inverse of :meth:`to_dict`."""
        return cls(sign_id=str(data["sign_id"]), source=str(data["source"]), x=float(data["x"]), y=float(data["y"]),
                   yaw_deg=None if data.get("yaw_deg") is None else float(data["yaw_deg"]),
                   road=str(data.get("road", "")), s=data.get("s"), t=data.get("t"),
                   trigger=tuple(tuple(map(float, p)) for p in data.get("trigger") or ()),
                   lanes=tuple(data.get("lanes") or ()),
                   area=tuple(tuple(tuple(map(float, p)) for p in ring) for ring in data.get("area") or ()))


def from_opendrive(xodr: str | Path) -> list[StopSign]:
    """The type-206 signals of an OpenDRIVE file, at their road, s and t."""
    from sumo_world.towns.opendrive import OpenDriveError, read_signals

    try:
        signals = read_signals(xodr, _OPENDRIVE_STOP_TYPE)
    except OpenDriveError as exc:
        raise StopSignError(str(exc)) from exc
    return [StopSign(sign_id=f"206:{s.signal_id}", source="opendrive", x=s.x, y=s.y, yaw_deg=s.yaw_deg,
                     road=s.road, s=s.s, t=s.t) for s in signals]


def from_export(path: str | Path) -> list[StopSign]:
    """The ``stop_signs`` of a JSON file written by ``scripts/export_carla_stops.py``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StopSignError(f"{path}: not a readable stop-sign export: {exc}") from exc
    entries = data.get("stop_signs") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise StopSignError(f"{path}: no 'stop_signs' list (write it with scripts/export_carla_stops.py)")
    signs = []
    for i, entry in enumerate(entries):
        try:
            corners = tuple((float(c[0]), float(c[1])) for c in entry["trigger_corners"])
            centre = entry["trigger_center"]
            signs.append(StopSign(sign_id=f"actor:{entry['id']}", source="carla", x=float(centre[0]),
                                  y=float(centre[1]), yaw_deg=None, trigger=corners))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StopSignError(f"{path}: stop_signs[{i}] lacks id, trigger_center or trigger_corners "
                                f"({type(exc).__name__}: {exc})") from None
    return signs


def _incoming_lanes(network: Any) -> list[Any]:
    """Driving lanes of normal edges that end at a junction with more than one way through."""
    return [lane for lane in network.driving_lanes(internal=False) if lane.getOutgoing()]


def _end_heading(network: Any, lane_id: str) -> tuple[np.ndarray, float]:
    shape = network.lane_shape(lane_id)
    dx, dy = shape[-1] - shape[-2]
    return shape[-1], math.degrees(math.atan2(dy, dx))


def _area(network: Any, lane_id: str) -> tuple[tuple[float, float], ...]:
    """The last STOP_AREA_LENGTH_M of a lane, its width wide (CARLA frame)."""
    from shapely.geometry import LineString
    from shapely.ops import substring

    line = LineString(network.lane_shape(lane_id))
    start = max(0.0, line.length - STOP_AREA_LENGTH_M)
    piece = substring(line, start, line.length)
    polygon = piece.buffer(network.lane(lane_id).getWidth() / 2.0, cap_style="flat")
    return tuple((round(float(x), 3), round(float(y), 3)) for x, y in polygon.exterior.coords)


def assign_lanes(network: Any, signs: Sequence[StopSign]) -> list[StopSign]:
    """Each sign with the lanes it governs and their stop areas (signs governing none keep no lanes)."""
    from shapely.geometry import LineString, Polygon

    incoming = _incoming_lanes(network)
    ends = {lane.getID(): _end_heading(network, lane.getID()) for lane in incoming}
    out = []
    for sign in signs:
        lanes: list[str] = []
        if sign.trigger:
            volume = Polygon(sign.trigger)
            # lanes running through the trigger volume; a volume inside a junction stands for the lanes into it
            lanes = [lid for lid in ends if volume.intersects(LineString(network.lane_shape(lid)))]
            if not lanes:
                inside = {lane_id for lane_id, _ in network.lanes_near(sign.x, sign.y, 6.0, internal=True)
                          if lane_id.startswith(":") and volume.intersects(LineString(network.lane_shape(lane_id)))}
                lanes = [lane.getID() for lane in incoming
                         if any(c.getViaLaneID() in inside for c in lane.getOutgoing())]
        else:
            best: tuple[float, str] | None = None
            for lane_id, (end, heading) in ends.items():
                distance = float(np.hypot(*(end - (sign.x, sign.y))))
                if distance > _SIGN_REACH_M or sign.yaw_deg is None:
                    continue
                if abs(wrap_angle_deg(heading - sign.yaw_deg)) > _MAX_HEADING_DEG:
                    continue
                if best is None or distance < best[0]:
                    best = (distance, lane_id)
            if best is not None:  # every driving lane of that road's edge stops
                edge = network.lane(best[1]).getEdge()
                lanes = [lane.getID() for lane in edge.getLanes() if lane.getID() in ends]
        lanes = sorted(dict.fromkeys(lanes))
        out.append(replace(sign, lanes=tuple(lanes), area=tuple(_area(network, lane_id) for lane_id in lanes)))
    return out


def minor_edges(network: Any, signs: Sequence[StopSign], types: dict[str, str]) -> list[str]:
    """The signed approaches of ``priority_stop`` junctions: SUMO's minor roads there must be these."""
    return sorted({network.lane(lane_id).getEdge().getID() for sign in signs for lane_id in sign.lanes
                   if types.get(network.lane(lane_id).getEdge().getToNode().getID()) == "priority_stop"})


def junction_types(network: Any, signs: Sequence[StopSign]) -> dict[str, str]:
    """Junction id -> "allway_stop" (a sign on every approach) or "priority_stop", for junctions with signs."""
    stopped: dict[str, set[str]] = {}
    for sign in signs:
        for lane_id in sign.lanes:
            edge = network.lane(lane_id).getEdge()
            stopped.setdefault(edge.getToNode().getID(), set()).add(edge.getID())
    types = {}
    for node_id, edges in stopped.items():
        node = network.net.getNode(node_id)
        approaches = {e.getID() for e in node.getIncoming()
                      if e.getFunction() in ("", "normal") and any(l.allows("passenger") for l in e.getLanes())}
        types[node_id] = "allway_stop" if approaches and approaches <= edges else "priority_stop"
    return types


def save_stop_signs(path: str | Path, signs: Sequence[StopSign], source: str) -> Path:
    """Write a town's ``stop_signs.json``."""
    path = Path(path)
    path.write_text(json.dumps({"source": source, "stop_signs": [s.to_dict() for s in signs]}, indent=1),
                    encoding="utf-8")
    return path


def load_stop_signs(path: str | Path) -> list[StopSign]:
    """A town's stop signs (an empty list when it has no ``stop_signs.json``)."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [StopSign.from_dict(entry) for entry in data.get("stop_signs", [])]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StopSignError(f"{path}: unreadable stop signs: {exc}") from exc
