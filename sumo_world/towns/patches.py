"""Patches of a town's net at generation or import: junction types, stop signs, nested junctions, light timing.

Each takes a net and returns the patched one (or writes a netconvert patch),
recording what it did in the town's metadata ``meta``.
"""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sumo_world.towns.info import TownError
from sumo_world.towns.sumo_tools import run_tool, sumo_binary

__all__ = ["allway_stop_patch", "join_nested", "carla_signal_plans", "stop_sign_junctions"]


def allway_stop_patch(raw: Path, patch: Path, seed: int, share: float) -> list[str]:
    """Pick all-way stops and plain junctions of a generated net; write a netconvert node patch.

    A seeded ``share`` of the junctions with 3+ neighbours becomes all-way
    stops; junctions joining two roads only get right of way. Returns the stop
    junctions' ids.
    """
    degree: dict[str, set[str]] = {}
    for _, element in ET.iterparse(raw, events=("end",)):
        if element.tag == "edge" and not element.get("function"):
            for end in ("from", "to"):
                node = element.get(end)
                if node:
                    other = element.get("to" if end == "from" else "from")
                    degree.setdefault(node, set()).add(other or "")
    inner = sorted(node for node, neighbours in degree.items() if len(neighbours) >= 3)
    plain = sorted(node for node, neighbours in degree.items() if len(neighbours) < 3)
    # Deterministic from the seed alone (string seeds hash stably in random.Random).
    rng = random.Random(f"allway-stop-{seed}")
    n_stops = max(1, round(len(inner) * share)) if inner and share > 0 else 0
    stops = sorted(rng.sample(inner, n_stops)) if n_stops else []
    root = ET.Element("nodes")
    for node in stops:
        ET.SubElement(root, "node", id=node, type="allway_stop")
    for node in plain:
        ET.SubElement(root, "node", id=node, type="priority")
    ET.ElementTree(root).write(patch, encoding="utf-8", xml_declaration=True)
    return stops


def carla_signal_plans(net: Path, meta: dict[str, Any]) -> Path:
    """``net`` with its lights on CARLA's timing (see :mod:`sumo_world.towns.signal_plans`)."""
    from sumo_world.towns.signal_plans import CARLA_TIMING, apply_carla_plans

    out = net.with_name(f"signals.{net.name}")
    count = apply_carla_plans(net, out)
    meta["signal_plans"] = {"kind": "carla", "lights": count, "green_s": CARLA_TIMING.green_s,
                            "yellow_s": CARLA_TIMING.yellow_s, "all_red_s": CARLA_TIMING.all_red_s}
    return out


def join_nested(net: Path, meta: dict[str, Any], options: tuple[str, ...]) -> Path:
    """``net`` with junctions nested in a neighbour joined (see :mod:`sumo_world.towns.junction_join`)."""
    from sumo_world.towns.junction_join import join_nested_junctions

    joined = net.with_name(f"joined.{net.name}")
    groups = join_nested_junctions(net, joined, str(sumo_binary("netconvert")), run_tool, options)
    meta["joined_junctions"] = groups
    return joined if groups else net


def stop_sign_junctions(net: Path, tmp: Path, meta: dict[str, Any], export: str | Path | None,
                        xodr: Path | None) -> tuple[Path, Path | None]:
    """Read the stop signs, place them on the net's lanes, make their junctions stop junctions.

    Returns the (patched) net and the stop-sign file to store; records in
    ``meta["stop_signs"]`` how many were found, where from, and how many
    govern a lane (a town with none says so in ``meta["stop_signs_note"]``).
    """
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.towns.stop_signs import (StopSignError, assign_lanes, from_export, from_opendrive,
                                             junction_types, minor_edges, save_stop_signs)

    try:
        if export is not None:
            signs, source = from_export(export), str(Path(export).resolve())
        elif xodr is not None:
            signs, source = from_opendrive(xodr), "opendrive type-206 signals"
        else:
            signs, source = [], "none"
    except StopSignError as exc:
        raise TownError(str(exc)) from exc
    if not signs:
        meta["stop_signs"] = {"count": 0, "governing": 0, "source": source}
        where = "its OpenDRIVE file has no type-206 signals" if xodr is not None else "a SUMO net holds none"
        meta["stop_signs_note"] = (f"no stop signs: {where}; export the level's traffic.stop actors from a "
                                   f"running CARLA with scripts/export_carla_stops.py and import again with "
                                   f"--stop-signs FILE")
        return net, None
    placed = assign_lanes(RoadNetwork(net), signs)
    governing = [sign for sign in placed if sign.lanes]
    meta["stop_signs"] = {"count": len(placed), "governing": len(governing), "source": source}
    network = RoadNetwork(net)
    types = junction_types(network, governing)
    if types:
        patch = tmp / "stop_junctions.nod.xml"
        root = ET.Element("nodes")
        for node_id, kind in sorted(types.items()):
            ET.SubElement(root, "node", id=node_id, type=kind)
        ET.ElementTree(root).write(patch, encoding="utf-8", xml_declaration=True)
        edges = tmp / "stop_approaches.edg.xml"
        root = ET.Element("edges")
        lowest = min((edge.getPriority() for edge in network.driving_edges()), default=1)
        for edge_id in minor_edges(network, governing, types):
            ET.SubElement(root, "edge", id=edge_id, priority=str(lowest - 1))
        ET.ElementTree(root).write(edges, encoding="utf-8", xml_declaration=True)
        patched = tmp / "stops.net.xml"
        # SUMO's own traffic stops at these junctions too (its stop links on the signed approaches).
        run_tool([str(sumo_binary("netconvert")), "--sumo-net-file", str(net), "--node-files", str(patch),
                  "--edge-files", str(edges), "--offset.disable-normalization", "--output-file", str(patched)],
                 "netconvert (stop junctions)")
        net = patched
    return net, save_stop_signs(tmp / "stop_signs.json", placed, source)
