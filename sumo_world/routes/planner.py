"""Dense routes from sparse leaderboard waypoints, on the SUMO lane graph.

The leaderboard turns a route's sparse waypoints into a dense plan (points
about 1 m apart with a RoadOption each) with CARLA's GlobalRoutePlanner: the
shortest lane-graph path between consecutive waypoints. :func:`plan_route`
does the same on the town's SUMO net: each waypoint is snapped to the nearest
driving lane (heading-consistent with its yaw when it has one), consecutive
waypoints are joined by the shortest edge path, lanes are chosen so that the
path's junction connections exist (with a lane change where none does), and
the lane centre lines (junction internal lanes included) are resampled every
metre in CARLA coordinates. Junction connections at intersections get
LEFT/RIGHT/STRAIGHT from SUMO's turn direction; everything else LANEFOLLOW
(CHANGELANELEFT/RIGHT during a lane change).

:mod:`sumo_world.routes.random_routes` makes random routes that go through the same planning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from driving.geometry import wrap_angle_deg
from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.files import RouteSpec

__all__ = [
    "DenseRoute", "RoutePlanningError", "plan_route", "cumulative_m",
    "MAX_WAYPOINT_DISTANCE_M", "SNAP_LIMIT_M", "location_to_gps",
]

MAX_WAYPOINT_DISTANCE_M = 5.0
# A waypoint farther than MAX_WAYPOINT_DISTANCE_M from every lane is snapped to the nearest driving
# lane, as CARLA's ``map.get_waypoint(..., project_to_road=True)`` does for the leaderboard's route
# parser (leaderboard-1.0 Town04 route 35 has a waypoint 9 m off its road); farther than this it is
# a mistake (a route of another town) and planning fails.
SNAP_LIMIT_M = 15.0
_STEP_M = 1.0
_LANE_CHANGE_MAX_M = 20.0
_DIRECTION_COMMANDS = {"s": "STRAIGHT", "l": "LEFT", "L": "LEFT", "t": "LEFT", "r": "RIGHT", "R": "RIGHT"}
_EARTH_RADIUS_M = 6378137.0


class RoutePlanningError(ValueError):
    """A route cannot be planned (a waypoint off the driving lanes, or unreachable)."""


@dataclass
class DenseRoute:
    """A planned route: points about 1 m apart, CARLA frame.

    ``commands`` (RoadOption names) and ``lanes`` (SUMO lane ids) have one
    entry per point; ``edges`` is the SUMO edge sequence (normal edges only,
    what a SUMO vehicle route would hold); ``waypoint_indices`` the index of
    the dense point at each sparse waypoint; ``waypoint_lane_distances_m``
    each waypoint's distance to the lane centre it was snapped to.
    """

    points: np.ndarray
    commands: list[str]
    edges: list[str]
    lanes: list[str]
    length_m: float
    waypoint_indices: list[int] = field(default_factory=list)
    route_id: str = ""
    waypoint_lane_distances_m: list[float] = field(default_factory=list)

    @property
    def max_waypoint_lane_distance_m(self) -> float:
        """The largest distance from a sparse waypoint to the lane it was snapped to (m)."""
        return max(self.waypoint_lane_distances_m, default=0.0)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def yaw_deg(self) -> np.ndarray:
        """(N,) CARLA yaw of the route direction at each point (the last repeats its predecessor)."""
        if len(self.points) < 2:
            return np.zeros(len(self.points))
        delta = np.diff(self.points, axis=0)
        yaw = np.degrees(np.arctan2(delta[:, 1], delta[:, 0]))
        return np.r_[yaw, yaw[-1]]

    def world_plan(self, z: float = 0.0) -> list[tuple[Any, Any]]:
        """``[(carla.Transform, RoadOption)]`` as the leaderboard hands it to ``set_global_plan``."""
        from driving.carla_compat import Location, RoadOption, Rotation, Transform

        plan = []
        for (x, y), yaw, command in zip(self.points, self.yaw_deg, self.commands):
            transform = Transform(Location(x=float(x), y=float(y), z=float(z)),
                                  Rotation(pitch=0.0, yaw=float(yaw), roll=0.0))
            plan.append((transform, RoadOption[command]))
        return plan

    def gps_plan(self, lat_ref: float = 0.0, lon_ref: float = 0.0, z: float = 0.0) -> list[tuple[dict, Any]]:
        """``[({"lat", "lon", "z"}, RoadOption)]``: the leaderboard's GPS route for the same points."""
        from driving.carla_compat import RoadOption

        return [(location_to_gps(float(x), float(y), z, lat_ref, lon_ref), RoadOption[command])
                for (x, y), command in zip(self.points, self.commands)]


def location_to_gps(x: float, y: float, z: float, lat_ref: float = 0.0, lon_ref: float = 0.0) -> dict[str, float]:
    """CARLA (x, y, z) -> {"lat", "lon", "z"} with the map's geo reference (Mercator, as CARLA does)."""
    scale = math.cos(lat_ref * math.pi / 180.0)
    mx = scale * lon_ref * math.pi * _EARTH_RADIUS_M / 180.0 + x
    my = scale * _EARTH_RADIUS_M * math.log(math.tan((90.0 + lat_ref) * math.pi / 360.0)) - y
    lon = mx * 180.0 / (math.pi * _EARTH_RADIUS_M * scale)
    lat = 360.0 * math.atan(math.exp(my / (_EARTH_RADIUS_M * scale))) / math.pi - 90.0
    return {"lat": lat, "lon": lon, "z": z}


# ----------------------------------------------------------------------------- snapping


@dataclass(frozen=True)
class _Snap:
    lane_id: str
    edge_id: str
    offset_m: float
    distance_m: float


def _describe(index: int, waypoint: Sequence[float], route_id: str) -> str:
    where = f"route {route_id!r} " if route_id else ""
    return f"{where}waypoint {index} (x={float(waypoint[0]):.2f}, y={float(waypoint[1]):.2f})"


def _snap(network: RoadNetwork, index: int, waypoint: Sequence[float], route_id: str) -> _Snap:
    x, y = float(waypoint[0]), float(waypoint[1])
    yaw = waypoint[3] if len(waypoint) > 3 else None
    candidates = network.lanes_near(x, y, MAX_WAYPOINT_DISTANCE_M)
    if not candidates:
        inside = network.lanes_near(x, y, MAX_WAYPOINT_DISTANCE_M, internal=True)
        if inside:  # a waypoint inside a junction: continue from the lane the junction leads to
            lane = network.lane(inside[0][0])
            while lane.getEdge().getFunction() == "internal" and lane.getOutgoing():
                lane = lane.getOutgoing()[0].getToLane()
            return _Snap(lane.getID(), lane.getEdge().getID(), 0.0, inside[0][1])
        far = network.lanes_near(x, y, SNAP_LIMIT_M)
        if not far:
            nearest = network.nearest_lane(x, y, radius=1000.0)
            distance = f"{nearest[1]:.1f} m from the nearest driving lane ({nearest[0]})" if nearest \
                else "more than 1 km from any driving lane"
            raise RoutePlanningError(f"{_describe(index, waypoint, route_id)} is {distance}; waypoints must lie "
                                     f"within {SNAP_LIMIT_M:.0f} m of a driving lane of {network.net_path.name}")
        candidates = far[:1]  # like CARLA's projection onto the road: the nearest lane, whatever its heading
    if yaw is not None:
        # Both directions of a road lie within a few metres: keep lanes heading the waypoint's way.
        aligned = [c for c in candidates
                   if abs(wrap_angle_deg(network.lane_heading_yaw(c[0], network.lane_position(c[0], x, y))
                                         - float(yaw))) < 90.0]
        candidates = aligned or candidates
    lane_id, distance = candidates[0]
    return _Snap(lane_id, network.lane(lane_id).getEdge().getID(), network.lane_position(lane_id, x, y), distance)


# ----------------------------------------------------------------------------- edge paths


def _shortest_edges(network: RoadNetwork, start: _Snap, goal: _Snap, describe: str) -> list[Any]:
    net = network.net
    from_edge, to_edge = net.getEdge(start.edge_id), net.getEdge(goal.edge_id)
    if from_edge is to_edge and goal.offset_m >= start.offset_m - 0.5:
        return [from_edge]
    if from_edge is not to_edge:
        path, _cost = net.getShortestPath(from_edge, to_edge, vClass="passenger")
        if path:
            return list(path)
        raise RoutePlanningError(f"{describe} cannot be reached by car from the previous waypoint "
                                 f"(no path from edge {from_edge.getID()} to {to_edge.getID()})")
    # Same edge, goal behind the start: go round a loop.
    best: list[Any] | None = None
    best_cost = math.inf
    for successor in from_edge.getOutgoing():
        if successor.getFunction() not in ("", "normal"):
            continue
        path, cost = net.getShortestPath(successor, to_edge, vClass="passenger")
        if path and cost < best_cost:
            best, best_cost = [from_edge, *path], cost
    if best is None:
        raise RoutePlanningError(f"{describe} lies behind the previous waypoint on the same lane and no loop "
                                 f"leads back to it")
    return best


def _driving_lanes(edge: Any) -> list[Any]:
    return [lane for lane in edge.getLanes() if lane.allows("passenger")]


def _connection(from_lane: Any, to_lane: Any) -> Any | None:
    for connection in from_lane.getOutgoing():
        if connection.getToLane() is to_lane:
            return connection
    return None


def _choose_lanes(edges: list[Any], start_lane: Any, end_lane: Any) -> tuple[list[Any], list[Any]]:
    """Per edge: the lane entered on and the lane left on (they differ where a lane change is needed)."""
    n = len(edges)
    exit_lanes: list[Any] = [None] * n
    entry_lanes: list[Any] = [None] * n
    exit_lanes[-1] = end_lane
    for k in range(n - 2, -1, -1):
        target = exit_lanes[k + 1]
        preferred = start_lane if k == 0 else target
        lanes = _driving_lanes(edges[k])
        direct = [lane for lane in lanes if _connection(lane, target) is not None]
        if direct:
            exit_lanes[k] = _closest_index(direct, preferred)
            entry_lanes[k + 1] = target
            continue
        # No lane of this edge leads to the target lane: enter the next edge on another lane and change there.
        options = [(lane, c.getToLane()) for lane in lanes for c in lane.getOutgoing()
                   if c.getToLane().getEdge() is edges[k + 1] and c.getToLane().allows("passenger")]
        if not options:
            raise RoutePlanningError(f"no lane connection from edge {edges[k].getID()} to {edges[k + 1].getID()}")
        options.sort(key=lambda item: (abs(item[1].getIndex() - target.getIndex()),
                                       abs(item[0].getIndex() - preferred.getIndex())))
        exit_lanes[k], entry_lanes[k + 1] = options[0]
    entry_lanes[0] = start_lane
    return entry_lanes, exit_lanes


def _closest_index(lanes: list[Any], preferred: Any) -> Any:
    return min(lanes, key=lambda lane: (abs(lane.getIndex() - preferred.getIndex()), lane.getIndex()))


# ----------------------------------------------------------------------------- geometry


@dataclass
class _Piece:
    points: np.ndarray
    lane_id: str
    command: str
    commands: list[str] | None = None  # per point, when the command varies inside the piece
    lane_ids: list[str] | None = None  # per point, when the lane varies inside the piece


def cumulative_m(points: np.ndarray) -> np.ndarray:
    """(N,) distance along a polyline (N, 2) from its first point, in metres."""
    if len(points) < 2:
        return np.zeros(len(points))
    return np.r_[0.0, np.cumsum(np.hypot(*np.diff(points, axis=0).T))]


def _sample_line(points: np.ndarray, start_m: float, end_m: float) -> np.ndarray:
    """The part of a polyline between two offsets, with its interior vertices kept."""
    lengths = cumulative_m(points)
    start_m = float(np.clip(start_m, 0.0, lengths[-1]))
    end_m = float(np.clip(end_m, start_m, lengths[-1]))
    inner = (lengths > start_m) & (lengths < end_m)
    xs = np.interp([start_m, end_m], lengths, points[:, 0])
    ys = np.interp([start_m, end_m], lengths, points[:, 1])
    return np.vstack([[xs[0], ys[0]], points[inner], [xs[1], ys[1]]])


def _edge_piece(network: RoadNetwork, entry: Any, exit_: Any, start_m: float, end_m: float) -> list[_Piece]:
    entry_shape = network.lane_shape(entry.getID())
    if entry is exit_:
        return [_Piece(_sample_line(entry_shape, start_m, end_m), entry.getID(), "LANEFOLLOW")]
    # Lane change: blend from the entry lane's centre line to the exit lane's over the middle of the span.
    exit_shape = network.lane_shape(exit_.getID())
    span = max(end_m - start_m, 0.0)
    change_m = min(_LANE_CHANGE_MAX_M, 0.6 * span)
    begin = start_m + (span - change_m) / 2.0
    offsets = np.arange(start_m, end_m, _STEP_M / 2.0)
    offsets = np.r_[offsets, end_m]
    a = np.column_stack([np.interp(offsets, cumulative_m(entry_shape), entry_shape[:, i]) for i in (0, 1)])
    scale = cumulative_m(exit_shape)[-1] / max(cumulative_m(entry_shape)[-1], 1e-6)
    b = np.column_stack([np.interp(offsets * scale, cumulative_m(exit_shape), exit_shape[:, i]) for i in (0, 1)])
    weight = np.clip((offsets - begin) / max(change_m, 1e-6), 0.0, 1.0)[:, None]
    points = (1.0 - weight) * a + weight * b
    # SUMO lane indices grow to the driver's left (the CARLA view keeps the driver's left and right).
    change = "CHANGELANELEFT" if exit_.getIndex() > entry.getIndex() else "CHANGELANERIGHT"
    commands = ["LANEFOLLOW" if w <= 0.0 or w >= 1.0 else change for w in weight[:, 0]]
    # The entry lane up to the middle of the change, then the exit lane.
    lane_ids = [entry.getID() if w < 0.5 else exit_.getID() for w in weight[:, 0]]
    return [_Piece(points, exit_.getID(), "LANEFOLLOW", commands, lane_ids)]


def _junction_piece(network: RoadNetwork, from_lane: Any, to_lane: Any) -> _Piece | None:
    connection = _connection(from_lane, to_lane)
    if connection is None:
        raise RoutePlanningError(f"no connection from lane {from_lane.getID()} to {to_lane.getID()}")
    node_id = connection.getJunction().getID() if connection.getJunction() is not None \
        else from_lane.getEdge().getToNode().getID()
    command = _DIRECTION_COMMANDS.get(connection.getDirection(), "LANEFOLLOW") \
        if network.is_intersection(node_id) else "LANEFOLLOW"
    shapes = []
    via_id = connection.getViaLaneID()
    lane_id = via_id or to_lane.getID()
    for _ in range(16):  # internal lanes may be split in a few pieces
        if not via_id:
            break
        via = network.lane(via_id)
        shapes.append(network.lane_shape(via_id))
        following = [c for c in via.getOutgoing() if c.getToLane() is to_lane or
                     c.getToLane().getEdge().getFunction() == "internal"]
        if not following:
            break
        nxt = following[0]
        via_id = nxt.getViaLaneID() or (nxt.getToLane().getID()
                                        if nxt.getToLane().getEdge().getFunction() == "internal" else "")
    if not shapes:
        return _Piece(np.zeros((0, 2)), lane_id, command)
    return _Piece(np.vstack(shapes), lane_id, command)


def _resample(pieces: list[_Piece]) -> tuple[np.ndarray, list[str], list[str]]:
    points_list, commands, lanes = [], [], []
    for piece in pieces:
        if len(piece.points) == 0:
            continue
        points_list.append(piece.points)
        commands.extend(piece.commands or [piece.command] * len(piece.points))
        lanes.extend(piece.lane_ids or [piece.lane_id] * len(piece.points))
    points = np.vstack(points_list)
    # Drop repeated vertices (pieces share their end points).
    keep = np.r_[True, np.hypot(*np.diff(points, axis=0).T) > 1e-6]
    points = points[keep]
    commands = [c for c, k in zip(commands, keep) if k]
    lanes = [l for l, k in zip(lanes, keep) if k]
    lengths = cumulative_m(points)
    total = float(lengths[-1])
    if total <= 0.0:
        return points[:1], commands[:1], lanes[:1]
    count = max(int(math.ceil(total / _STEP_M)), 1)
    offsets = np.linspace(0.0, total, count + 1)
    dense = np.column_stack([np.interp(offsets, lengths, points[:, i]) for i in (0, 1)])
    # A point inside the segment between vertices i and i+1 belongs to the piece of vertex i+1
    # (a piece's first vertex is often dropped as the previous piece's last one).
    segment = np.clip(np.searchsorted(lengths, offsets, side="left"), 0, len(points) - 1)
    return dense, [commands[i] for i in segment], [lanes[i] for i in segment]


# ----------------------------------------------------------------------------- public API


def plan_route(network: RoadNetwork, waypoints: Sequence[Sequence[float]] | RouteSpec,
               route_id: str = "") -> DenseRoute:
    """Dense-interpolate sparse CARLA waypoints ``(x, y[, z, yaw])`` along the lane graph.

    Accepts a :class:`RouteSpec` too. Raises :class:`RoutePlanningError`
    naming the waypoint when one lies more than ``SNAP_LIMIT_M`` (15 m) from
    every driving lane or cannot be reached from the previous one; a
    waypoint 5-15 m off is snapped to the nearest lane, as CARLA does.
    """
    if isinstance(waypoints, RouteSpec):
        route_id = route_id or waypoints.route_id
        waypoints = waypoints.waypoints
    waypoints = [tuple(w) for w in waypoints]
    if len(waypoints) < 2:
        raise RoutePlanningError(f"route {route_id!r} needs at least 2 waypoints, got {len(waypoints)}")
    snaps = [_snap(network, i, w, route_id) for i, w in enumerate(waypoints)]

    edges: list[Any] = []
    waypoint_edge_index: list[int] = [0]
    for i in range(1, len(snaps)):
        path = _shortest_edges(network, snaps[i - 1], snaps[i], _describe(i, waypoints[i], route_id))
        edges.extend(path if not edges else path[1:])
        waypoint_edge_index.append(len(edges) - 1)

    start_lane = network.lane(snaps[0].lane_id)
    end_lane = network.lane(snaps[-1].lane_id)
    entry_lanes, exit_lanes = _choose_lanes(edges, start_lane, end_lane)
    pieces: list[_Piece] = []
    for k, edge in enumerate(edges):
        entry, exit_ = entry_lanes[k], exit_lanes[k]
        start_m = snaps[0].offset_m if k == 0 else 0.0
        end_m = snaps[-1].offset_m if k == len(edges) - 1 else max(entry.getLength(), exit_.getLength())
        pieces.extend(_edge_piece(network, entry, exit_, start_m, end_m))
        if k + 1 < len(edges):
            junction = _junction_piece(network, exit_, entry_lanes[k + 1])
            if junction is not None:
                pieces.append(junction)
    points, commands, lanes = _resample(pieces)
    if len(points) < 2:
        raise RoutePlanningError(f"route {route_id!r}: the waypoints collapse onto one point "
                                 f"({float(waypoints[0][0]):.1f}, {float(waypoints[0][1]):.1f})")
    length = float(cumulative_m(points)[-1])
    indices = _waypoint_indices(points, waypoints)
    return DenseRoute(points=points, commands=commands, edges=[e.getID() for e in edges], lanes=lanes,
                      length_m=length, waypoint_indices=indices, route_id=route_id,
                      waypoint_lane_distances_m=[round(float(snap.distance_m), 3) for snap in snaps])


def _waypoint_indices(points: np.ndarray, waypoints: Sequence[Sequence[float]]) -> list[int]:
    """Index of the dense point at each waypoint, in route order (a route may pass a place twice)."""
    indices = []
    start = 0
    for waypoint in waypoints:
        distance = np.hypot(points[start:, 0] - waypoint[0], points[start:, 1] - waypoint[1])
        close = np.flatnonzero(distance < MAX_WAYPOINT_DISTANCE_M)
        if len(close):
            # the first pass near the waypoint, at its closest point
            breaks = np.flatnonzero(np.diff(close) > 1)
            run_last = int(close[breaks[0]]) if len(breaks) else int(close[-1])
            local = int(close[0]) + int(np.argmin(distance[close[0]:run_last + 1]))
        else:
            local = int(np.argmin(distance))
        start += local
        indices.append(start)
    return indices
