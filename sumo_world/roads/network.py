"""A town's road network in CARLA coordinates: lanes, junctions, drivable area.

:class:`RoadNetwork` wraps a sumolib net (internal lanes included) and
answers the geometric questions the planner, the traffic generator and the
simulation ask, always in CARLA world coordinates (see
:mod:`sumo_world.roads.transform`). Loading is cached per net file (and its
modification time), so every route of a run shares one instance.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sumo_world.roads.transform import CarlaSumoTransform

__all__ = ["RoadNetwork", "STOP_LINK_STATES", "lane_edge_id"]

logger = logging.getLogger(__name__)

# Link states that oblige a vehicle to stop before entering the junction:
# "s" = stop sign (priority_stop), "w" = all-way stop.
STOP_LINK_STATES = frozenset("sw")
_DRIVING_CLASS = "passenger"
# Slits narrower than twice this between road pieces are closed in the drivable area (m).
_SLIVER_M = 0.1


def lane_edge_id(lane_id: str) -> str:
    """The SUMO edge of a lane id: ``"12_0"`` -> ``"12"`` (SUMO names a lane ``<edge>_<index>``)."""
    return lane_id.rsplit("_", 1)[0] if "_" in lane_id else lane_id


class RoadNetwork:
    """Lanes and junctions of one SUMO net, in CARLA coordinates.

    Use :meth:`load` (cached) rather than the constructor.
    """

    def __init__(self, net_path: str | Path) -> None:
        import sumolib

        self.net_path = Path(net_path)
        if not self.net_path.is_file():
            raise FileNotFoundError(f"SUMO net not found: {self.net_path}")
        self.net = sumolib.net.readNet(str(self.net_path), withInternal=True, withPedestrianConnections=True)
        self.transform = CarlaSumoTransform.from_net(self.net)
        self._lane_shapes: dict[str, np.ndarray] = {}
        self._lane_polygons: dict[str, Any] = {}

    @classmethod
    def load(cls, net_path: str | Path) -> "RoadNetwork":
        """The network of ``net_path``, loaded once per (path, modification time)."""
        path = Path(net_path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"SUMO net not found: {path}")
        return _load_cached(str(path), path.stat().st_mtime_ns)

    # Lanes -------------------------------------------------------------------------

    def lane(self, lane_id: str) -> Any:
        """The sumolib lane ``lane_id`` (KeyError naming it when absent)."""
        try:
            return self.net.getLane(lane_id)
        except KeyError:
            raise KeyError(f"lane {lane_id!r} not in {self.net_path.name}") from None

    def driving_lanes(self, internal: bool = False) -> list[Any]:
        """Sumolib lanes that cars may use, on normal edges (and internal ones when asked)."""
        lanes = []
        for edge in self.net.getEdges(withInternal=internal):
            if edge.getFunction() not in ("", "normal", "internal"):
                continue
            lanes.extend(lane for lane in edge.getLanes() if lane.allows(_DRIVING_CLASS))
        return lanes

    def driving_edges(self) -> list[Any]:
        """Normal (non-internal) edges with at least one driving lane."""
        return [edge for edge in self.net.getEdges(withInternal=False)
                if edge.getFunction() in ("", "normal") and any(l.allows(_DRIVING_CLASS) for l in edge.getLanes())]

    def lane_shape(self, lane_id: str) -> np.ndarray:
        """(N, 2) centre line of a lane in CARLA coordinates."""
        shape = self._lane_shapes.get(lane_id)
        if shape is None:
            shape = self.transform.points_to_carla(self.lane(lane_id).getShape())
            self._lane_shapes[lane_id] = shape
        return shape

    def lane_polygon(self, lane_id: str) -> Any:
        """Shapely polygon of a lane's surface (centre line buffered by half its width), CARLA frame."""
        polygon = self._lane_polygons.get(lane_id)
        if polygon is None:
            from shapely.geometry import LineString, Point

            shape = self.lane_shape(lane_id)
            width = self.lane(lane_id).getWidth()
            if len(shape) < 2 or LineString(shape).length < 1e-6:
                polygon = Point(shape[0]).buffer(width / 2.0)
            else:
                polygon = LineString(shape).buffer(width / 2.0, cap_style="flat")
            self._lane_polygons[lane_id] = polygon
        return polygon

    @functools.cached_property
    def _lane_index(self) -> tuple[Any, list[str], list[str]]:
        from shapely import STRtree
        from shapely.geometry import LineString

        lines, ids, kinds = [], [], []
        for lane in self.driving_lanes(internal=True):
            shape = self.lane_shape(lane.getID())
            if len(shape) < 2:
                continue
            lines.append(LineString(shape))
            ids.append(lane.getID())
            kinds.append("internal" if lane.getEdge().getFunction() == "internal" else "normal")
        return STRtree(lines), ids, kinds

    def lanes_near(self, x: float, y: float, radius: float, internal: bool = False) -> list[tuple[str, float]]:
        """Driving lanes whose centre line is within ``radius`` m of CARLA (x, y), nearest first."""
        from shapely.geometry import Point

        tree, ids, kinds = self._lane_index
        point = Point(float(x), float(y))
        found = []
        for index in tree.query(point.buffer(radius)):
            if kinds[index] == "internal" and not internal:
                continue
            distance = tree.geometries[index].distance(point)
            if distance <= radius:
                found.append((ids[index], float(distance)))
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    def nearest_lane(self, x: float, y: float, radius: float = 5.0,
                     internal: bool = False) -> tuple[str, float] | None:
        """``(lane_id, distance)`` of the nearest driving lane centre within ``radius`` m, else None."""
        found = self.lanes_near(x, y, radius, internal=internal)
        return found[0] if found else None

    def lane_position(self, lane_id: str, x: float, y: float) -> float:
        """Offset (m) along a lane of the projection of CARLA (x, y) onto its centre line."""
        from shapely.geometry import LineString, Point

        shape = self.lane_shape(lane_id)
        if len(shape) < 2:
            return 0.0
        return float(LineString(shape).project(Point(float(x), float(y))))

    def lane_heading_yaw(self, lane_id: str, offset_m: float) -> float:
        """CARLA yaw (deg) of a lane's direction at ``offset_m`` along it."""
        shape = self.lane_shape(lane_id)
        lengths = np.r_[0.0, np.cumsum(np.hypot(*np.diff(shape, axis=0).T))]
        index = int(np.clip(np.searchsorted(lengths, offset_m, side="right") - 1, 0, len(shape) - 2))
        dx, dy = shape[index + 1] - shape[index]
        return float(np.degrees(np.arctan2(dy, dx)))

    # Junctions ---------------------------------------------------------------------

    @functools.cached_property
    def junction_polygons(self) -> dict[str, Any]:
        """Junction id -> shapely polygon of its area (CARLA frame), for junctions with a shape."""
        from shapely.geometry import Polygon

        polygons = {}
        for node in self.net.getNodes():
            shape = node.getShape()
            if len(shape) >= 3:
                polygon = Polygon(self.transform.points_to_carla(shape)).buffer(0)
                if not polygon.is_empty:
                    polygons[node.getID()] = polygon
        return polygons

    @functools.cached_property
    def stop_sign_junctions(self) -> list[str]:
        """Ids of junctions with stop signs (all-way stops, and priority-stop junctions)."""
        return sorted({junction for junction in self.stop_sign_lanes.values()})

    @functools.cached_property
    def stop_signs(self) -> list[Any]:
        """The town's stop signs (:class:`sumo_world.towns.stop_signs.StopSign`, from ``stop_signs.json`` beside
        the net); empty for towns without that file."""
        from sumo_world.towns.stop_signs import STOP_SIGNS_FILE, load_stop_signs

        return load_stop_signs(self.net_path.parent / STOP_SIGNS_FILE)

    @functools.cached_property
    def stop_sign_lanes(self) -> dict[str, str]:
        """Incoming driving lane id -> junction id, for lanes that must stop before that junction.

        A town with stop signs (imported from CARLA) has them from its signs;
        otherwise from the net's stop links (generated all-way stops).
        """
        lanes: dict[str, str] = {}
        signs = [sign for sign in self.stop_signs if sign.lanes]
        if signs:
            for sign in signs:
                for lane_id in sign.lanes:
                    if self.net.hasEdge(lane_edge_id(lane_id)):
                        lanes[lane_id] = self.lane(lane_id).getEdge().getToNode().getID()
            return lanes
        for lane in self.driving_lanes(internal=False):
            for connection in lane.getOutgoing():
                if connection.getState() in STOP_LINK_STATES:
                    lanes[lane.getID()] = connection.getJunction().getID()
        return lanes

    def traffic_light_junctions(self) -> list[str]:
        """Ids of the traffic-light-controlled junctions."""
        return sorted(node.getID() for node in self.net.getNodes() if "traffic_light" in node.getType())

    def is_intersection(self, node_id: str) -> bool:
        """True when a node joins three or more roads (a junction where a turn is a choice)."""
        node = self.net.getNode(node_id)
        neighbours = set()
        for edge in list(node.getIncoming()) + list(node.getOutgoing()):
            if edge.getFunction() not in ("", "normal"):
                continue
            if not any(lane.allows(_DRIVING_CLASS) for lane in edge.getLanes()):
                continue
            other = edge.getFromNode() if edge.getToNode() is node else edge.getToNode()
            neighbours.add(other.getID())
        return len(neighbours) >= 3

    # Areas -------------------------------------------------------------------------

    @functools.cached_property
    def drivable_area(self) -> Any:
        """Shapely (multi)polygon of all driving lanes and junction areas, CARLA frame.

        Closed by :data:`_SLIVER_M`: where a lane's outline meets a junction's
        a few centimetres apart (CARLA towns imported by netconvert), the slit
        between them is road, not a place where the ego leaves it.
        """
        from shapely.ops import unary_union

        shapes = [self.lane_polygon(lane.getID()) for lane in self.driving_lanes(internal=True)]
        shapes.extend(self.junction_polygons.values())
        return unary_union(shapes).buffer(_SLIVER_M).buffer(-_SLIVER_M)

    @functools.cached_property
    def sidewalk_area(self) -> Any:
        """Shapely (multi)polygon of sidewalks, walking areas and crossings, CARLA frame."""
        from shapely.ops import unary_union

        shapes = []
        for edge in self.net.getEdges(withInternal=True):
            for lane in edge.getLanes():
                if lane.allows("pedestrian") and not lane.allows(_DRIVING_CLASS):
                    shapes.append(self.lane_polygon(lane.getID()))
        return unary_union(shapes)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the drivable area, CARLA frame."""
        return tuple(float(v) for v in self.drivable_area.bounds)  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> RoadNetwork:
    del mtime_ns  # part of the cache key only: a rewritten net is loaded again
    return RoadNetwork(path)
