"""Random drivable routes in a town, written as sparse waypoints that go through the route planner.

Waypoints come about every 50 m, as in the leaderboard's route files, and stay
off junction interiors, so a generated route is planned exactly as a
leaderboard route is (:func:`sumo_world.routes.planner.plan_route`).
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np

from sumo_world.roads.network import RoadNetwork
from sumo_world.routes.files import RouteSpec
from sumo_world.routes.planner import DenseRoute, RoutePlanningError, cumulative_m, plan_route

__all__ = ["random_routes"]


def random_routes(network: RoadNetwork, n: int, seed: int = 0, town: str = "", min_length_m: float = 150.0,
                  max_length_m: float = 600.0, waypoint_spacing_m: float = 50.0,
                  max_tries: int = 2000) -> list[RouteSpec]:
    """``n`` random drivable routes as sparse waypoints (about every ``waypoint_spacing_m``).

    Start and goal lie on driving lanes at least 10 m from either lane end;
    each route's planned length is within [min_length_m, max_length_m].
    Deterministic given ``seed``. Route ids are "0", "1", ...
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    lanes = [lane for lane in network.driving_lanes() if lane.getLength() >= 25.0]
    if not lanes:
        raise RoutePlanningError(f"{network.net_path.name} has no driving lane longer than 25 m")
    lanes.sort(key=lambda lane: lane.getID())
    routes: list[RouteSpec] = []
    tries = 0
    while len(routes) < n:
        tries += 1
        if tries > max_tries:
            raise RoutePlanningError(f"found only {len(routes)} of {n} routes between {min_length_m} and "
                                     f"{max_length_m} m in {max_tries} tries; change the length limits")
        start, goal = rng.choice(lanes), rng.choice(lanes)
        start_xy = _point_on(network, start, rng.uniform(10.0, start.getLength() - 10.0))
        goal_xy = _point_on(network, goal, rng.uniform(10.0, goal.getLength() - 10.0))
        try:
            dense = plan_route(network, [(*start_xy, 0.0, None), (*goal_xy, 0.0, None)])
        except RoutePlanningError:
            continue
        if not (min_length_m <= dense.length_m <= max_length_m) or dense.lanes[0] != start.getID():
            continue
        routes.append(_sparse_route(dense, str(len(routes)), town, waypoint_spacing_m, seed))
    return routes


def _point_on(network: RoadNetwork, lane: Any, offset_m: float) -> tuple[float, float]:
    shape = network.lane_shape(lane.getID())
    lengths = cumulative_m(shape)
    return float(np.interp(offset_m, lengths, shape[:, 0])), float(np.interp(offset_m, lengths, shape[:, 1]))


def _sparse_route(dense: DenseRoute, route_id: str, town: str, spacing_m: float, seed: int) -> RouteSpec:
    lengths = cumulative_m(dense.points)
    yaws = dense.yaw_deg
    marks = list(np.arange(0.0, lengths[-1], spacing_m))
    if lengths[-1] - marks[-1] < spacing_m / 3.0 and len(marks) > 1:
        marks.pop()  # keep the last two waypoints apart
    indices = [int(np.searchsorted(lengths, m)) for m in marks] + [len(lengths) - 1]
    # Stay off junction interiors, like the leaderboard's waypoints: step back to a lane-follow point.
    safe = []
    for index in indices:
        probe = index
        while 0 < probe < len(lengths) - 1 and dense.commands[probe] != "LANEFOLLOW" and index - probe < 40:
            probe -= 1
        safe.append(probe)
    safe = sorted(set(safe))
    waypoints = [(float(dense.points[i, 0]), float(dense.points[i, 1]), 0.0, float(yaws[i] % 360.0)) for i in safe]
    return RouteSpec(route_id=route_id, town=town, waypoints=waypoints,
                     extra={"format": "1.0", "weathers": [], "scenarios": [], "generated_seed": seed,
                            "length_m": round(dense.length_m, 1)})
