"""Leaderboard route files: read and write the XML of leaderboard 1.0 and 2.0.

Leaderboard 1.0 (``data/routes_*.xml`` on its ``leaderboard-1.0`` branch)::

    <routes>
      <route id="0" town="Town01">
        <weather cloudiness="0" ... />                  (optional)
        <waypoint pitch="0.0" roll="0.0" x=".." y=".." yaw=".." z=".." />
        ...
      </route>
    </routes>

Leaderboard 2.0::

    <routes>
      <route id="0" town="Town12">
        <weathers><weather route_percentage="0" ... />...</weathers>
        <waypoints><position x=".." y=".." z=".." />...</waypoints>
        <scenarios><scenario name=".." type="..">...</scenario>...</scenarios>
      </route>
    </routes>

Coordinates are CARLA world coordinates. Weathers and scenarios are kept (in
:attr:`RouteSpec.extra`) and written back, but the embedded world does not
use them. Errors name the file and the line.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from xml.parsers import expat

__all__ = ["RouteSpec", "RouteFileError", "read_routes", "write_routes"]

ROUTE_FORMATS = ("1.0", "2.0")


class RouteFileError(ValueError):
    """A route file cannot be read; the message names the file and the line."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {message}")


@dataclass
class RouteSpec:
    """One route of a leaderboard routes file.

    ``waypoints``: sparse ``(x, y, z, yaw)`` in CARLA coordinates (metres,
    yaw in degrees); ``yaw`` is ``None`` for 2.0 files (``<position>`` has
    none). ``extra`` keeps what the embedded world does not use: ``format``
    ("1.0"/"2.0"), ``weathers`` (list of attribute dicts), ``scenarios``
    (list of XML strings), ``pitch_roll`` (1.0: per-waypoint (pitch, roll)),
    ``source`` and ``line`` (where it was read).
    """

    route_id: str
    town: str
    waypoints: list[tuple[float, float, float, float | None]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def xy(self) -> list[tuple[float, float]]:
        """The waypoints' (x, y)."""
        return [(w[0], w[1]) for w in self.waypoints]


# ----------------------------------------------------------------------------- parsing with line numbers


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list["_Node"] = field(default_factory=list)


def _parse_with_lines(path: Path) -> _Node:
    # ElementTree drops line numbers; a small expat tree keeps them for the error messages.
    parser = expat.ParserCreate()
    root_holder: list[_Node] = []
    stack: list[_Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag, dict(attrib), parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            root_holder.append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RouteFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise RouteFileError(path, exc.lineno, f"malformed XML: {expat.errors.messages[exc.code]} "
                                               f"(column {exc.offset + 1})") from exc
    if not root_holder:
        raise RouteFileError(path, None, "empty file")
    return root_holder[0]


def _float(path: Path, node: _Node, key: str, required: bool = True, default: float | None = None) -> Any:
    if key not in node.attrib:
        if required:
            raise RouteFileError(path, node.line, f"<{node.tag}> is missing the attribute {key!r}")
        return default
    text = node.attrib[key]
    try:
        value = float(text)
    except ValueError:
        raise RouteFileError(path, node.line, f"<{node.tag}> attribute {key}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise RouteFileError(path, node.line, f"<{node.tag}> attribute {key}={text!r} is not finite")
    return value


def _to_xml(node: _Node) -> str:
    def build(n: _Node) -> ET.Element:
        element = ET.Element(n.tag, n.attrib)
        for child in n.children:
            element.append(build(child))
        return element

    return ET.tostring(build(node), encoding="unicode")


def _read_route(path: Path, node: _Node) -> RouteSpec:
    if "id" not in node.attrib:
        raise RouteFileError(path, node.line, "<route> is missing the attribute 'id'")
    if "town" not in node.attrib:
        raise RouteFileError(path, node.line, f"<route id={node.attrib['id']!r}> is missing the attribute 'town'")
    route_id, town = node.attrib["id"], node.attrib["town"]
    waypoints: list[tuple[float, float, float, float | None]] = []
    pitch_roll: list[tuple[float, float]] = []
    weathers: list[dict[str, str]] = []
    scenarios: list[str] = []
    fmt: str | None = None
    for child in node.children:
        if child.tag == "waypoint":
            fmt = fmt or "1.0"
            waypoints.append((_float(path, child, "x"), _float(path, child, "y"),
                              _float(path, child, "z", required=False, default=0.0),
                              _float(path, child, "yaw", required=False, default=0.0)))
            pitch_roll.append((_float(path, child, "pitch", False, 0.0), _float(path, child, "roll", False, 0.0)))
        elif child.tag == "waypoints":
            fmt = "2.0"
            for position in child.children:
                if position.tag != "position":
                    raise RouteFileError(path, position.line, f"unexpected <{position.tag}> in <waypoints> "
                                                              f"(expected <position>)")
                waypoints.append((_float(path, position, "x"), _float(path, position, "y"),
                                  _float(path, position, "z", required=False, default=0.0), None))
        elif child.tag == "weather":
            weathers.append(dict(child.attrib))
        elif child.tag == "weathers":
            fmt = fmt or "2.0"
            weathers.extend(dict(w.attrib) for w in child.children if w.tag == "weather")
        elif child.tag == "scenarios":
            scenarios.extend(_to_xml(s) for s in child.children)
    if len(waypoints) < 2:
        raise RouteFileError(path, node.line, f"route {route_id!r} has {len(waypoints)} waypoint(s); "
                                              f"at least 2 are needed")
    extra: dict[str, Any] = {"format": fmt or "1.0", "weathers": weathers, "scenarios": scenarios,
                             "source": str(path), "line": node.line}
    if pitch_roll:
        extra["pitch_roll"] = pitch_roll
    return RouteSpec(route_id=route_id, town=town, waypoints=waypoints, extra=extra)


def read_routes(path: str | Path) -> list[RouteSpec]:
    """All routes of a leaderboard 1.0 or 2.0 routes file, in file order.

    Raises :class:`RouteFileError` (file and line in the message) for
    malformed XML, a missing or non-numeric attribute, a duplicate route id
    or a route with fewer than two waypoints.
    """
    path = Path(path)
    root = _parse_with_lines(path)
    if root.tag != "routes":
        raise RouteFileError(path, root.line, f"root element is <{root.tag}>, expected <routes>")
    routes: list[RouteSpec] = []
    seen: dict[str, int] = {}
    for node in root.children:
        if node.tag != "route":
            continue
        route = _read_route(path, node)
        if route.route_id in seen:
            raise RouteFileError(path, node.line, f"duplicate route id {route.route_id!r} "
                                                  f"(first at line {seen[route.route_id]})")
        seen[route.route_id] = node.line
        routes.append(route)
    return routes


# ----------------------------------------------------------------------------- writing


def _fmt(value: float) -> str:
    return repr(float(value))


def write_routes(routes: Sequence[RouteSpec], path: str | Path, version: str = "1.0") -> Path:
    """Write ``routes`` as a leaderboard ``version`` ("1.0" or "2.0") routes file; returns the path.

    1.0 waypoints without a yaw get 0.0; 2.0 positions drop the yaw.
    """
    if version not in ROUTE_FORMATS:
        raise ValueError(f"unknown route file version {version!r}; expected one of {ROUTE_FORMATS}")
    root = ET.Element("routes")
    for route in routes:
        element = ET.SubElement(root, "route", id=str(route.route_id), town=str(route.town))
        weathers = route.extra.get("weathers") or []
        if version == "1.0":
            if weathers:
                ET.SubElement(element, "weather", {k: v for k, v in weathers[0].items()
                                                   if k != "route_percentage"})
            pitch_roll = route.extra.get("pitch_roll") or []
            for i, (x, y, z, yaw) in enumerate(route.waypoints):
                pitch, roll = pitch_roll[i] if i < len(pitch_roll) else (0.0, 0.0)
                ET.SubElement(element, "waypoint", pitch=_fmt(pitch), roll=_fmt(roll), x=_fmt(x), y=_fmt(y),
                              yaw=_fmt(yaw if yaw is not None else 0.0), z=_fmt(z))
        else:
            if weathers:
                group = ET.SubElement(element, "weathers")
                for weather in weathers:
                    ET.SubElement(group, "weather", weather)
            group = ET.SubElement(element, "waypoints")
            for x, y, z, _yaw in route.waypoints:
                ET.SubElement(group, "position", x=_fmt(x), y=_fmt(y), z=_fmt(z))
            scenarios = route.extra.get("scenarios") or []
            if scenarios:
                group = ET.SubElement(element, "scenarios")
                for text in scenarios:
                    group.append(ET.fromstring(text))
    ET.indent(root, space="   ")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
