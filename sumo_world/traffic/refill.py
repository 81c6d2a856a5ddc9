"""A released background vehicle comes back elsewhere: the town keeps its vehicle count.

CARLA's Traffic Manager never removes the leaderboard's background vehicles,
so a route runs among the same count from start to end. The world's jam
release (:mod:`sumo_world.traffic.jams`) removes SUMO vehicles locked in a
jam, which on a busy town (Town04 under leaderboard traffic: about 30 releases
in 10 minutes) thinned the traffic as a route went on. :class:`Refill` puts a
new vehicle of the released one's type on the road in its place: on an edge
chosen by length, as the initial demand spreads departures, but out of the
ego's sight (beyond the world's sensing radius, so no car appears from
nothing in a scene), on a fresh random walk, inserted where the edge has room
(SUMO's ``random_free``; a full edge keeps it waiting to depart).
Deterministic given the world's seed.
"""
from __future__ import annotations

import logging
import random
from typing import Any

import shapely

from sumo_world.traffic.demand import MIN_DEPART_EDGE_M, WALK_SPEED_MPS, TrafficConfig, edges_for, random_walk

__all__ = ["Refill"]

logger = logging.getLogger(__name__)


class Refill:
    """Adds a vehicle of the released one's type out of the ego's sight (see the module docstring)."""

    def __init__(self, world: Any, away_m: float | None = None) -> None:
        self.world = world
        traffic = getattr(world, "traffic", None)
        self.horizon_s = float(getattr(traffic, "horizon_s", TrafficConfig.horizon_s))
        self.away_m = float(away_m if away_m is not None else (world.sense_radius_m or 0.0))
        self.rng = random.Random(f"refill-{world.seed}")
        self.added: list[str] = []  # SUMO ids added, in order
        self._edges: dict[str, list[tuple[Any, Any]]] = {}  # vClass -> (edge, its shape as a line)
        self._successors: dict[str, list[Any]] = {}

    def replace(self, released_id: str, type_id: str, vclass: str) -> str | None:
        """Add a vehicle of ``type_id`` (SUMO vClass ``vclass``) for ``released_id``; its id, or None
        when the town has no edge for it out of the ego's sight."""
        start = self._start_edge(vclass)
        if start is None:
            return None
        speed = WALK_SPEED_MPS.get(type_id, max(WALK_SPEED_MPS.values()))
        edges = random_walk(start, vclass, speed * self.horizon_s, self.rng, self._successors)
        new_id = f"{released_id}+{len(self.added) + 1}"
        sumo = self.world.sumo
        try:
            sumo.route.add(f"refill_{new_id}", [e.getID() for e in edges])
            sumo.vehicle.add(new_id, f"refill_{new_id}", typeID=type_id, depart="now",
                             departPos="random_free", departLane="best", departSpeed="random")
        except sumo.TraCIException as exc:
            logger.debug("refill of %s failed: %s", released_id, exc)
            return None
        self.added.append(new_id)
        return new_id

    def _start_edge(self, vclass: str) -> Any:
        edges = self._edges.get(vclass)
        if edges is None:
            edges = [(e, shapely.LineString(e.getShape())) for e in edges_for(self.world.network, vclass)
                     if e.getLength() > MIN_DEPART_EDGE_M]
            self._edges[vclass] = edges
        ego = self._ego_xy()
        far = [e for e, line in edges if ego is None or line.distance(ego) > self.away_m]
        if not far:
            return None
        return self.rng.choices(far, weights=[e.getLength() for e in far])[0]

    def _ego_xy(self) -> Any:
        from sumo_world.simulation.ego_presence import EGO_ID

        vehicle = self.world.sumo.vehicle
        if EGO_ID not in vehicle.getIDList():
            return None
        return shapely.Point(vehicle.getPosition(EGO_ID))

