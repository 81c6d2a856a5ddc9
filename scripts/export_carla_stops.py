#!/usr/bin/env python3
"""Export a CARLA town's stop signs and traffic-light stop lines to JSON, for the embedded world.

CARLA's Town01-05 have no stop signs in their OpenDRIVE files: they exist only
as ``traffic.stop`` actors of the level, each with a trigger volume. Run this
against a CARLA server with the town loaded, then import the town with them:

    python scripts/export_carla_stops.py --town Town03 --out towns/Town03_stops.json
    langprop town import Town03.net.xml --stop-signs towns/Town03_stops.json

The file lists every ``traffic.stop`` actor (its transform and trigger volume:
centre, extent, yaw and the four ground corners in CARLA's frame) and every
traffic light's stop waypoints (``carla.TrafficLight.get_stop_waypoints``).
Needs the ``carla`` Python package of the server's version.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

EXPORT_FORMAT = "langprop-carla-stops"
EXPORT_VERSION = 1


def _pose(transform: Any) -> dict[str, float]:
    location, rotation = transform.location, transform.rotation
    return {"x": float(location.x), "y": float(location.y), "z": float(location.z), "yaw": float(rotation.yaw)}


def stop_sign_entry(actor: Any) -> dict[str, Any]:
    """One ``traffic.stop`` actor: its transform and its trigger volume in world coordinates."""
    transform = actor.get_transform()
    volume = actor.trigger_volume  # carla.BoundingBox, relative to the actor
    # Not transform.transform(volume.location): it rewrites its argument in place.
    vertices = volume.get_world_vertices(transform)
    centre = [sum(v.x for v in vertices) / len(vertices), sum(v.y for v in vertices) / len(vertices),
              sum(v.z for v in vertices) / len(vertices)]
    # The eight vertices are four ground corners twice (bottom, top): keep the lower four, in ring order.
    lowest = sorted(vertices, key=lambda v: v.z)[:4]
    ring = sorted(lowest, key=lambda v: math.atan2(v.y - centre[1], v.x - centre[0]))
    return {
        "id": int(actor.id), "type_id": str(actor.type_id), "transform": _pose(transform),
        "trigger_center": [float(c) for c in centre],
        "trigger_extent": [float(volume.extent.x), float(volume.extent.y), float(volume.extent.z)],
        "trigger_yaw": float(transform.rotation.yaw + volume.rotation.yaw),
        "trigger_corners": [[float(v.x), float(v.y)] for v in ring],
    }


def traffic_light_entry(actor: Any) -> dict[str, Any]:
    """One traffic light: its transform and the waypoints of its stop lines."""
    waypoints = []
    for waypoint in actor.get_stop_waypoints():
        pose = _pose(waypoint.transform)
        pose.update(road_id=int(waypoint.road_id), lane_id=int(waypoint.lane_id), s=float(waypoint.s))
        waypoints.append(pose)
    return {"id": int(actor.id), "type_id": str(actor.type_id), "transform": _pose(actor.get_transform()),
            "stop_waypoints": waypoints}


def export_stops(world: Any) -> dict[str, Any]:
    """Every stop sign and traffic light of a ``carla.World`` as a JSON-ready dict."""
    actors = world.get_actors()
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "map": str(world.get_map().name),
        "stop_signs": [stop_sign_entry(a) for a in actors.filter("traffic.stop")],
        "traffic_lights": [traffic_light_entry(a) for a in actors.filter("traffic.traffic_light")],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=2000)
    parser.add_argument("--town", default=None, help="Load this town first (default: the one loaded).")
    parser.add_argument("--timeout", type=float, default=30.0, help="Client timeout in seconds.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write.")
    args = parser.parse_args(argv)
    try:
        import carla
    except ImportError:
        print("error: the carla Python package is not installed (pip install carla==<server version>)",
              file=sys.stderr)
        return 2
    client = carla.Client(args.host, args.port)
    client.set_timeout(args.timeout)
    world = client.load_world(args.town) if args.town else client.get_world()
    data = export_stops(world)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(data['stop_signs'])} stop signs, {len(data['traffic_lights'])} traffic lights "
          f"of {data['map']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
