"""What a stored town is: its name rule, its record (:class:`TownInfo`), the net facts it keeps, the errors."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sumo_world.roads.transform import CarlaSumoTransform

__all__ = ["TownInfo", "TownError", "TownNotFoundError", "check_name", "net_offset", "junction_summary"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TownError(RuntimeError):
    """A town cannot be generated, imported or read."""


class TownNotFoundError(TownError, KeyError):
    """No town of that name in the store."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TownInfo:
    """A stored town: its name, SUMO net, where it came from and its metadata."""

    name: str
    net_path: Path
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def transform(self) -> CarlaSumoTransform:
        """CARLA <-> SUMO transform of this town (from the stored net offset)."""
        off = self.meta.get("net_offset") or [0.0, 0.0]
        return CarlaSumoTransform(float(off[0]), float(off[1]))


def check_name(name: str) -> str:
    """``name`` when it is a valid town name (letters, digits, '_', '-', '.'), else :class:`TownError`."""
    if not _NAME_RE.match(name or ""):
        raise TownError(f"invalid town name {name!r}: use letters, digits, '_', '-', '.'")
    return name


def net_offset(net_path: Path) -> list[float]:
    """The net's ``netOffset`` (x, y): SUMO = CARLA (y negated) + offset."""
    # Only the <location> element is needed; stop parsing there (nets can be large).
    for _, element in ET.iterparse(net_path, events=("start",)):
        if element.tag == "location":
            x, y = (element.get("netOffset") or "0,0").split(",")
            return [float(x), float(y)]
    return [0.0, 0.0]


def junction_summary(net_path: Path) -> dict[str, int]:
    """Junctions by type, crossings and sidewalk lanes of a net (kept in the town's metadata)."""
    counts: dict[str, int] = {}
    crossings = 0
    sidewalks = 0
    for _, element in ET.iterparse(net_path, events=("end",)):
        if element.tag == "junction" and element.get("type") != "internal":
            kind = element.get("type", "?")
            counts[kind] = counts.get(kind, 0) + 1
        elif element.tag == "edge" and element.get("function") == "crossing":
            crossings += 1
        elif element.tag == "lane" and element.get("allow") == "pedestrian":
            sidewalks += 1
    return {"junctions": counts, "crossings": crossings, "sidewalk_lanes": sidewalks}
