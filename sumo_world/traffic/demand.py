"""Background traffic as SUMO route files: cars, bicycles and pedestrians, seeded.

Vehicles (cars, bicycles and motorbikes) all enter at the start, spread over the town on
random lanes, each with one long route built as a random walk over the lane
graph (turns chosen at random, no U-turn where another way exists), so the
town stays busy for the whole ``horizon_s``. Pedestrians walk chains of
trips between random sidewalks; SUMO routes each trip over sidewalks, walking
areas and crossings (``<personTrip>``), so they cross the roads at crossings.

Generation runs in-process on the loaded :class:`RoadNetwork` (milliseconds
for a town; no SUMO subprocess).
"""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from sumo_world.roads.network import RoadNetwork

__all__ = ["TrafficConfig", "DENSITIES", "PRESETS", "LEADERBOARD_VEHICLES", "write_traffic_routes",
           "VEHICLE_TYPES", "WALK_SPEED_MPS", "MIN_DEPART_EDGE_M", "edges_for", "random_walk", "fit_to_town",
           "MIN_LANE_M_PER_VEHICLE", "driving_lane_m"]

# name -> (vehicles, bicycles, pedestrians)
DENSITIES: dict[str, tuple[int, int, int]] = {
    "none": (0, 0, 0),
    "light": (10, 2, 10),
    "default": (30, 5, 20),
    "busy": (60, 10, 40),
}
# Every preset name: the fixed densities, and "leaderboard", whose count depends on the town.
PRESETS: tuple[str, ...] = (*DENSITIES, "leaderboard")

# Leaderboard 1.0's background activity (route_scenario.py, _initialize_actors): this many
# ``vehicle.*`` actors with autopilot on random spawn points, no walkers.
LEADERBOARD_VEHICLES: dict[str, int] = {
    "Town01": 120, "Town02": 100, "Town03": 120, "Town04": 200, "Town05": 120,
    "Town06": 150, "Town07": 110, "Town08": 180, "Town09": 300, "Town10": 120, "Town10HD": 120,
}
# ``vehicle.*`` includes two-wheelers: CARLA 0.9.10-0.9.13 has 3 bicycle and 3 motorbike
# blueprints among about 30 vehicles, so about one background vehicle in ten is each.
_LEADERBOARD_BICYCLE_SHARE = 0.1
_LEADERBOARD_MOTORCYCLE_SHARE = 0.1
# Towns the leaderboard has no count for (generated ones) get Town01's density: 120 vehicles on
# its 4.9 km of road edges (each direction counted once), i.e. one per 40 m of edge.
_LEADERBOARD_LANE_M_PER_VEHICLE = 40.0
# The most vehicles a town carries: one per this many metres of driving lane. SUMO's drivers lock
# into loops of queues where short roads fill (no Traffic Manager that ignores its exit), and a
# town below this locks at the leaderboard's counts without the ego (issue 25: Town10HD, 24.7 m
# per vehicle at 120; a town of 2.07 km at 100); Town01 (41 m), Town03-06 (90-153 m) are above it.
MIN_LANE_M_PER_VEHICLE = 30.0

# SUMO vType attributes. Car sizes are those of a mid-size CARLA car; the
# leaderboard's background vehicles are of that kind.
VEHICLE_TYPES: dict[str, dict[str, str]] = {
    "car": {"vClass": "passenger", "length": "4.6", "width": "1.9", "minGap": "2.5", "maxSpeed": "20",
            "accel": "2.6", "decel": "4.5", "sigma": "0.5", "guiShape": "passenger"},
    "bicycle": {"vClass": "bicycle", "length": "1.8", "width": "0.65", "minGap": "1.0", "maxSpeed": "5.5",
                "accel": "1.2", "decel": "3.0", "sigma": "0.5", "guiShape": "bicycle"},
    "motorcycle": {"vClass": "motorcycle", "length": "2.2", "width": "0.8", "minGap": "2.0", "maxSpeed": "20",
                   "accel": "3.0", "decel": "5.0", "sigma": "0.5", "guiShape": "motorcycle"},
    "pedestrian": {"vClass": "pedestrian", "length": "0.4", "width": "0.5", "minGap": "0.25",
                   "maxSpeed": "1.5", "speedDev": "0.1"},
}


# Edges this short or shorter get no vehicle departures (initial or refilled).
MIN_DEPART_EDGE_M = 10.0
# The speed a vehicle type's random walk is made long enough for, over the traffic's horizon.
WALK_SPEED_MPS: dict[str, float] = {"car": 9.0, "bicycle": 4.5, "motorcycle": 9.0}


@dataclass(frozen=True)
class TrafficConfig:
    """How much background traffic, and its seed.

    ``horizon_s``: how long the traffic should last (vehicle routes and
    pedestrian trip chains are made long enough).
    """

    vehicles: int = 30
    bicycles: int = 5
    pedestrians: int = 20
    seed: int = 0
    horizon_s: float = 900.0
    motorcycles: int = 0

    def __post_init__(self) -> None:
        for name in ("vehicles", "bicycles", "pedestrians", "motorcycles"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrafficConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.horizon_s <= 0:
            raise ValueError(f"TrafficConfig.horizon_s must be > 0, got {self.horizon_s}")

    @classmethod
    def for_density(cls, name: str, seed: int = 0, *, town: str | None = None, network: RoadNetwork | None = None,
                    **overrides: Any) -> "TrafficConfig":
        """A preset: "none", "light", "default", "busy" or "leaderboard".

        "leaderboard" is leaderboard 1.0's background traffic for ``town``
        (:data:`LEADERBOARD_VEHICLES`; vehicles only, bicycles and motorbikes
        among them); a town it has no count for needs its ``network``, and gets
        Town01's density of vehicles per metre of road.
        """
        if name == "leaderboard":
            total = cls._leaderboard_count(town, network)
            bicycles = round(total * _LEADERBOARD_BICYCLE_SHARE)
            motorcycles = round(total * _LEADERBOARD_MOTORCYCLE_SHARE)
            config = cls(total - bicycles - motorcycles, bicycles, 0, seed, motorcycles=motorcycles)
            return replace(config, **overrides)
        if name not in DENSITIES:
            raise ValueError(f"unknown traffic density {name!r}; expected one of {', '.join(PRESETS)}")
        vehicles, bicycles, pedestrians = DENSITIES[name]
        return replace(cls(vehicles, bicycles, pedestrians, seed), **overrides)

    @staticmethod
    def _leaderboard_count(town: str | None, network: RoadNetwork | None) -> int:
        if town in LEADERBOARD_VEHICLES:
            return LEADERBOARD_VEHICLES[str(town)]
        if network is None:
            raise ValueError(f"the leaderboard traffic preset has no vehicle count for town {town!r} (it knows "
                             f"{', '.join(LEADERBOARD_VEHICLES)}); pass the town's network to scale by its roads")
        length = sum(edge.getLength() for edge in network.driving_edges())
        return max(1, round(length / _LEADERBOARD_LANE_M_PER_VEHICLE))

    @property
    def total(self) -> int:
        """Number of actors."""
        return self.vehicles + self.bicycles + self.motorcycles + self.pedestrians


def edges_for(network: RoadNetwork, vclass: str) -> list[Any]:
    """The normal (not internal) edges with a lane ``vclass`` may drive, sorted by id."""
    edges = [edge for edge in network.net.getEdges(withInternal=False)
             if edge.getFunction() in ("", "normal") and any(lane.allows(vclass) for lane in edge.getLanes())]
    return sorted(edges, key=lambda edge: edge.getID())


def _next_edges(edge: Any, vclass: str) -> list[Any]:
    found = []
    for lane in edge.getLanes():
        if not lane.allows(vclass):
            continue
        for connection in lane.getOutgoing():
            target = connection.getToLane()
            if target.allows(vclass) and target.getEdge().getFunction() in ("", "normal"):
                found.append(target.getEdge())
    unique = sorted({e.getID(): e for e in found}.values(), key=lambda e: e.getID())
    return unique


def random_walk(start: Any, vclass: str, length_m: float, rng: random.Random,
                successors: dict[str, list[Any]]) -> list[Any]:
    """Edges from ``start`` on, each a random successor ``vclass`` may take (not the way back where
    another exists), until ``length_m`` or a dead end; ``successors`` caches each edge's options."""
    route = [start]
    total = 0.0
    while total < length_m and len(route) < 5000:
        current = route[-1]
        options = successors.setdefault(current.getID(), _next_edges(current, vclass))
        if not options:
            break  # a dead end without a turnaround: the vehicle leaves there
        # Avoid turning back onto the reverse edge when another way exists.
        forward = [e for e in options if e.getToNode() is not current.getFromNode()] or options
        nxt = rng.choice(forward)
        route.append(nxt)
        total += nxt.getLength()
    return route


def _vtype(root: ET.Element, type_id: str) -> None:
    ET.SubElement(root, "vType", id=type_id, **VEHICLE_TYPES[type_id])


def _write(root: ET.Element, path: Path) -> Path:
    ET.indent(root, space="    ")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _walk_edges(network: RoadNetwork) -> list[Any]:
    """Edges pedestrians can start and end a trip on: ones with a sidewalk (a lane cars may not use)."""
    return [e for e in edges_for(network, "pedestrian")
            if e.getLength() > 5.0 and any(lane.allows("pedestrian") and not lane.allows("passenger")
                                           for lane in e.getLanes())]


def driving_lane_m(network: RoadNetwork) -> float:
    """Metres of lane that cars may drive on, junction interiors left out."""
    return float(sum(lane.getLength() for edge in network.driving_edges() for lane in edge.getLanes()
                     if lane.allows("passenger")))


def fit_to_town(network: RoadNetwork, config: TrafficConfig) -> tuple[TrafficConfig, list[str]]:
    """``config`` without the actors the town cannot carry, and a warning saying why for each.

    A town without sidewalks (a SUMO net imported without guessing them) gets
    no pedestrians rather than failing every route that asks for them. A town
    with less than :data:`MIN_LANE_M_PER_VEHICLE` metres of driving lane per
    vehicle gets that many vehicles, cars, bicycles and motorbikes in
    proportion: SUMO's traffic would stand locked most of the time.
    """
    notes: list[str] = []
    moving = config.vehicles + config.bicycles + config.motorcycles
    lane_m = driving_lane_m(network)
    cap = max(1, int(lane_m // MIN_LANE_M_PER_VEHICLE))
    if moving > cap:
        bicycles = round(config.bicycles * cap / moving)
        motorcycles = round(config.motorcycles * cap / moving)
        notes.append(f"town net {network.net_path.name} has {lane_m:.0f} m of driving lane: {moving} background "
                     f"vehicles would be {lane_m / moving:.1f} m each, below the {MIN_LANE_M_PER_VEHICLE:.0f} m at "
                     f"which SUMO's traffic locks; {cap} vehicles run instead")
        config = replace(config, vehicles=cap - bicycles - motorcycles, bicycles=bicycles, motorcycles=motorcycles)
    if config.pedestrians and not _walk_edges(network):
        notes.append(f"town net {network.net_path.name} has no sidewalks: its {config.pedestrians} background "
                     f"pedestrians are left out (import the town with sidewalks, e.g. `langprop town import` of "
                     f"its net, which guesses them)")
        config = replace(config, pedestrians=0)
    return config, notes


def write_traffic_routes(network: RoadNetwork, config: TrafficConfig, out_dir: str | Path,
                         avoid_edges: Sequence[str] = ()) -> list[Path]:
    """Write ``vehicles.rou.xml`` and ``pedestrians.rou.xml`` under ``out_dir``; returns the paths.

    Vehicle ids are ``car<i>``, ``bike<i>`` and ``moto<i>``, person ids
    ``ped<i>``; vType ids ``car``, ``bicycle``, ``motorcycle``, ``pedestrian``. ``avoid_edges`` (e.g. the ego's
    first edge) get no vehicle departures, so the ego starts on a free road.
    Deterministic given ``config.seed``. Files with no actors are still
    written (empty ``<routes>``), so a run can always load both.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"traffic-{config.seed}")
    avoid = set(avoid_edges)

    vehicles_root = ET.Element("routes")
    _vtype(vehicles_root, "car")
    _vtype(vehicles_root, "bicycle")
    _vtype(vehicles_root, "motorcycle")
    for type_id, vclass, count, prefix in (("car", "passenger", config.vehicles, "car"),
                                           ("bicycle", "bicycle", config.bicycles, "bike"),
                                           ("motorcycle", "motorcycle", config.motorcycles, "moto")):
        if count == 0:
            continue
        edges = [e for e in edges_for(network, vclass) if e.getID() not in avoid and e.getLength() > MIN_DEPART_EDGE_M]
        if not edges:
            raise ValueError(f"{network.net_path.name}: no edge allows {vclass} traffic")
        successors: dict[str, list[Any]] = {}
        # Spread departures over the edges in proportion to their length.
        weights = [e.getLength() for e in edges]
        for i in range(count):
            start = rng.choices(edges, weights=weights)[0]
            route = random_walk(start, vclass, WALK_SPEED_MPS[type_id] * config.horizon_s, rng, successors)
            vehicle = ET.SubElement(vehicles_root, "vehicle", id=f"{prefix}{i}", type=type_id, depart="0.00",
                                    departPos="random_free", departLane="best", departSpeed="random")
            ET.SubElement(vehicle, "route", edges=" ".join(e.getID() for e in route))
    vehicles_path = _write(vehicles_root, out_dir / "vehicles.rou.xml")

    people_root = ET.Element("routes")
    _vtype(people_root, "pedestrian")
    if config.pedestrians:
        walk_edges = _walk_edges(network)
        if not walk_edges:
            raise ValueError(f"{network.net_path.name}: no sidewalks for pedestrians; generate or import the "
                             f"town with sidewalks")
        target_m = 1.3 * config.horizon_s
        for i in range(config.pedestrians):
            person = ET.SubElement(people_root, "person", id=f"ped{i}", type="pedestrian", depart="0.00",
                                   departPos="random")
            current = rng.choice(walk_edges)
            walked = 0.0
            legs = 0
            while walked < target_m and legs < 12:
                goal = rng.choice(walk_edges)
                if goal is current:
                    continue
                ET.SubElement(person, "personTrip", {"from": current.getID(), "to": goal.getID()}
                              if legs == 0 else {"to": goal.getID()})
                x0, y0 = current.getFromNode().getCoord()
                x1, y1 = goal.getToNode().getCoord()
                walked += abs(x1 - x0) + abs(y1 - y0)
                current = goal
                legs += 1
    people_path = _write(people_root, out_dir / "pedestrians.rou.xml")
    return [vehicles_path, people_path]
