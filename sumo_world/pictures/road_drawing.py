"""A town's road surface in CARLA metres, ready to draw (lanes, junction areas, sidewalks, stop areas).

Built once per town from its SUMO net (converted by
:mod:`sumo_world.roads.transform`) and passed to every picture of
:mod:`sumo_world.pictures.birdseye`: loading and buffering the lanes takes
longer than drawing a route.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RoadDrawing", "road_drawing"]


@dataclass(frozen=True)
class RoadDrawing:
    """A town's road surface in CARLA metres, ready to draw.

    ``road_polygons``/``sidewalk_polygons``: (N, 2) outlines of lanes and
    junction areas; ``lane_centres``: (N, 2) centre lines of the driving lanes.
    """

    road_polygons: tuple[np.ndarray, ...]
    sidewalk_polygons: tuple[np.ndarray, ...]
    lane_centres: tuple[np.ndarray, ...]
    stop_areas: tuple[np.ndarray, ...] = ()  # where a car must stop at a stop sign (the town's stop_signs.json)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of everything drawn, CARLA metres."""
        shapes = [*self.road_polygons, *self.sidewalk_polygons, *self.lane_centres]
        if not shapes:
            return (0.0, 0.0, 0.0, 0.0)
        stacked = np.concatenate(shapes)
        return (float(stacked[:, 0].min()), float(stacked[:, 1].min()),
                float(stacked[:, 0].max()), float(stacked[:, 1].max()))


def road_drawing(network: Any) -> RoadDrawing:
    """Build a :class:`RoadDrawing` from whatever describes the town.

    Accepts a :class:`RoadDrawing` (returned as is), an object with ``net``
    (sumolib) and ``transform`` attributes (a :class:`sumo_world.roads.network.RoadNetwork`), a town
    with ``net_path`` and ``transform`` (:class:`sumo_world.towns.info.TownInfo`), a sumolib
    net, or the path of a ``.net.xml`` file.
    """
    from sumo_world.roads.transform import CarlaSumoTransform

    if isinstance(network, RoadDrawing):
        return network
    if hasattr(network, "net") and hasattr(network, "transform"):
        return _with_stop_areas(_drawing_from_sumolib(network.net, network.transform),
                                getattr(network, "net_path", None))
    if hasattr(network, "net_path"):
        net = _read_net(Path(network.net_path))
        transform = getattr(network, "transform", None) or CarlaSumoTransform.from_net(net)
        return _with_stop_areas(_drawing_from_sumolib(net, transform), network.net_path)
    if isinstance(network, (str, Path)):
        net = _read_net(Path(network))
        return _with_stop_areas(_drawing_from_sumolib(net, CarlaSumoTransform.from_net(net)), network)
    if hasattr(network, "getEdges"):
        return _drawing_from_sumolib(network, CarlaSumoTransform.from_net(network))
    raise TypeError(f"cannot draw a road network from {type(network).__name__}; pass a RoadDrawing, "
                    f"a RoadNetwork, a Town, a sumolib net or a .net.xml path")


def _with_stop_areas(drawing: RoadDrawing, net_path: Any) -> RoadDrawing:
    """The drawing with the stop areas of the town whose net is ``net_path`` (if it has any)."""
    from dataclasses import replace

    from sumo_world.towns.stop_signs import STOP_SIGNS_FILE, load_stop_signs

    if net_path is None:
        return drawing
    signs = load_stop_signs(Path(net_path).parent / STOP_SIGNS_FILE)
    areas = tuple(np.asarray(ring, dtype=float) for sign in signs for ring in sign.area if len(ring) >= 3)
    return replace(drawing, stop_areas=areas) if areas else drawing


def _read_net(path: Path) -> Any:
    import sumolib

    if not path.is_file():
        raise FileNotFoundError(f"SUMO net not found: {path}")
    return sumolib.net.readNet(str(path), withInternal=True)


def _polygon_rings(geometry: Any) -> list[np.ndarray]:
    geoms = getattr(geometry, "geoms", [geometry])
    return [np.asarray(g.exterior.coords) for g in geoms if not g.is_empty and hasattr(g, "exterior")]


def _drawing_from_sumolib(net: Any, transform: Any) -> RoadDrawing:
    from shapely.geometry import LineString, Polygon

    roads: list[np.ndarray] = []
    sidewalks: list[np.ndarray] = []
    centres: list[np.ndarray] = []
    for edge in net.getEdges(withInternal=True):
        internal = edge.getFunction() == "internal"
        for lane in edge.getLanes():
            shape = transform.points_to_carla(lane.getShape())
            if len(shape) < 2 or LineString(shape).length < 1e-3:
                continue
            outline = LineString(shape).buffer(lane.getWidth() / 2.0, cap_style="flat")
            is_sidewalk = lane.allows("pedestrian") and not lane.allows("passenger")
            (sidewalks if is_sidewalk else roads).extend(_polygon_rings(outline))
            if not is_sidewalk and not internal:
                centres.append(shape)
    for node in net.getNodes():
        shape = node.getShape()
        if len(shape) >= 3:
            polygon = Polygon(transform.points_to_carla(shape)).buffer(0)
            roads.extend(_polygon_rings(polygon))
    return RoadDrawing(tuple(roads), tuple(sidewalks), tuple(centres))
