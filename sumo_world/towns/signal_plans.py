"""CARLA's traffic-light timing for an imported town's signals: one approach at a time.

A CARLA town's OpenDRIVE file carries its lights but no timing; CARLA runs the
lights of a junction as a group that gives each light in turn
``green_time`` 10 s, ``yellow_time`` 3 s and then ``red_time`` 2 s with all
lights red, every other light red meanwhile (``carla.TrafficLight`` defaults).
``netconvert`` instead writes SUMO's default plan: two opposite approaches green
together for about 40 s, left turners waiting for gaps inside the junction,
and 45 s of red (issue 25: on small towns those left turners stand in the box
and the queues close into loops).

:func:`apply_carla_plans` rewrites every ``<tlLogic>`` of a net so: one phase
per approach (the links from one incoming edge) green, in the order of the
links, each followed by its yellow and an all-red clearance. Pedestrian
crossings stay green, and the vehicles of the green approach have minor green
(``g``): they yield to walkers on the crossing, as SUMO's own plans make
turning cars do, and no vehicle meets another (only one approach moves).

It is an import option (``TownStore.import_file(..., carla_signals=True)``),
not the default: in SUMO it halves the locks of Town01 and Town10HD but moves
fewer cars through Town03's and Town06's junctions (issue 25, README limits).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SignalTiming", "CARLA_TIMING", "carla_phases", "apply_carla_plans"]


@dataclass(frozen=True)
class SignalTiming:
    """Seconds each light of a junction's group spends in green, in yellow, and all lights red after it."""

    green_s: float = 10.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0


CARLA_TIMING = SignalTiming()


def carla_phases(approaches: list[list[int]], crossings: list[int], n_links: int,
                 timing: SignalTiming = CARLA_TIMING) -> list[tuple[float, str]]:
    """(duration s, SUMO state string) of each phase: every approach (its link indices) green in turn."""
    phases: list[tuple[float, str]] = []
    for links in approaches:
        for char, duration in (("g", timing.green_s), ("y", timing.yellow_s), ("r", timing.all_red_s)):
            if duration <= 0:
                continue
            state = ["r"] * n_links
            for k in crossings:
                state[k] = "G"
            for k in links:
                state[k] = char
            phases.append((duration, "".join(state)))
    return phases


def _links(root: ET.Element) -> dict[str, tuple[dict[str, list[int]], list[int]]]:
    """Per light: its vehicle links grouped by incoming edge, and its crossing links."""
    out: dict[str, tuple[dict[str, list[int]], list[int]]] = {}
    for conn in root.iter("connection"):
        tls = conn.get("tl")
        if not tls:
            continue
        approaches, crossings = out.setdefault(tls, ({}, []))
        indices = [int(conn.get(key)) for key in ("linkIndex", "linkIndex2") if conn.get(key) not in (None, "-1")]
        source = conn.get("from", "")
        if source.startswith(":"):  # from a walking area: a pedestrian crossing
            crossings.extend(indices)
        else:
            approaches.setdefault(source, []).extend(indices)
    return out


def apply_carla_plans(net_path: Path, out_path: Path, timing: SignalTiming = CARLA_TIMING) -> int:
    """Write ``net_path`` to ``out_path`` with every traffic light on :func:`carla_phases`; returns how many."""
    tree = ET.parse(net_path)
    root = tree.getroot()
    links = _links(root)
    changed = 0
    for logic in root.findall("tlLogic"):
        tls = logic.get("id", "")
        phases = logic.findall("phase")
        if tls not in links or not phases:
            continue
        approaches, crossings = links[tls]
        n_links = len(phases[0].get("state", ""))
        groups = sorted((sorted(set(v)) for v in approaches.values()), key=lambda g: g[0])
        if not groups or any(k >= n_links for g in groups for k in g) or any(k >= n_links for k in crossings):
            continue  # a plan we do not understand: keep it
        for phase in phases:
            logic.remove(phase)
        logic.set("type", "static")
        logic.set("offset", "0")
        for i, (duration, state) in enumerate(carla_phases(groups, sorted(set(crossings)), n_links, timing)):
            phase = ET.Element("phase", duration=f"{duration:g}", state=state)
            logic.insert(i, phase)
        changed += 1
    tree.write(out_path, encoding="utf-8", xml_declaration=True)
    return changed
