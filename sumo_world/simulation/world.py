"""The embedded world: one SUMO simulation (libsumo) with the ego injected into it.

libsumo runs one simulation per process and takes the process down when SUMO
aborts, so a :class:`SumoWorld` lives in a process of its own (the runner
starts one child process per route). The ego is a SUMO vehicle placed every
tick with ``moveToXY(..., keepRoute=2)`` at the pose the bicycle model
(:mod:`sumo_world.ego.dynamics`) computed, so SUMO's drivers see it as a leader and
react to it; SUMO never moves it by itself (speed mode 0, no lane changes).
SUMO drivers decide every :data:`ACTION_STEP_S` (SUMO's action step: their
reaction time; positions still move every tick). SUMO maps a vehicle to one
lane; when the ego's footprint sticks into a neighbouring lane (changing
lanes, waiting at an angle) a *shadow* vehicle, never reported, holds that
lane beside it, so the drivers there brake for the part of the ego in their
way, as CARLA's traffic brakes for the hero's bounding box. (SUMO's sublane
model would do this too, at three times the cost of the whole simulation.)

With ``sense_radius_m`` set (the runner sets :data:`SENSE_RADIUS_M`) a
snapshot holds the vehicles within that radius of the ego only: one context
subscription instead of one per vehicle.

Everything leaving this module is in CARLA's frame (see
:mod:`sumo_world.roads.transform`); SUMO's vehicle position is the front bumper, so
centres are computed from it. Actor ids given out are ints, assigned in order
of first appearance (deterministic for a seeded simulation).
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from driving.clock import TICK_S
from sumo_world.ego.dynamics import EgoParams, EgoState

if TYPE_CHECKING:
    from sumo_world.traffic.demand import TrafficConfig

__all__ = ["ActorArrays", "WorldSnapshot", "SumoWorld", "WorldError", "EGO_ID", "LEVEL_SEPARATION_M",
           "ACTION_STEP_S", "SENSE_RADIUS_M"]

logger = logging.getLogger(__name__)

EGO_ID = "ego"
_EGO_TYPE = "langprop_ego"
SHADOW_ID = "ego_shadow"  # holds a neighbouring lane the ego's body sticks into; never reported
_SHADOW_TYPE = "langprop_ego_shadow"
# The ego covers a neighbouring lane when its footprint reaches this far past its own lane's edge.
_SHADOW_MIN_OVERLAP_M = 0.3
# SUMO drivers decide (follow, change lanes, yield) this often; they move every tick. 0.1 s is a
# quick driver's reaction time and makes SUMO about twice as fast as deciding every 0.05 s tick.
ACTION_STEP_S = 0.1
_OFF_LANE_REINSERT_TICKS = 10  # an ego on no SUMO lane this many ticks in a row is inserted afresh
# What a route run needs to see around the ego: the scene's 50 m, the bird's-eye picture's 80 m.
SENSE_RADIUS_M = 100.0
LANE_CHANGE_S = 2.0  # how long a SUMO lane change takes (CARLA's autopilot takes about as long)
_PEDESTRIAN_HALF_SIZE_M = 0.3  # a walker's footprint (CARLA walkers are about 0.6 m across)
# moveToXY looks for lanes within this radius (SUMO default 100 m: much slower, and the ego is
# never meaningfully mapped to a lane farther than this).
_MATCH_RADIUS_M = 15.0
# Actors more than this far apart in height are on different levels (a bridge over a road, an
# overpass: about 10 m in CARLA's Town04/05): they neither collide nor see each other.
LEVEL_SEPARATION_M = 3.0

_VCLASS_TO_ACTOR_TYPE = {
    "bicycle": "bicycle", "motorcycle": "motorcycle", "moped": "motorcycle",
    "truck": "truck", "trailer": "truck", "delivery": "truck",
    "bus": "bus", "coach": "bus", "tram": "bus",
}


class WorldError(RuntimeError):
    """The world cannot be started or driven (the message names the cause)."""


@dataclass
class ActorArrays:
    """Other actors at one tick, as parallel arrays (CARLA frame, centres, SI units)."""

    ids: list[int] = field(default_factory=list)
    sumo_ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    yaw_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    speed_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_length_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_width_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # height of the lane under it; NaN: unknown

    def __len__(self) -> int:
        return len(self.ids)

    def on_level(self, z_m: float) -> np.ndarray:
        """(N,) True for actors at the height ``z_m`` (within :data:`LEVEL_SEPARATION_M`; unknown counts)."""
        if len(self.z_m) != len(self.ids) or not math.isfinite(z_m):
            return np.ones(len(self.ids), dtype=bool)
        return ~(np.abs(self.z_m - z_m) > LEVEL_SEPARATION_M)  # NaN compares False: kept


@dataclass
class WorldSnapshot:
    """The world at one tick: time, the ego's SUMO lane (and its height), vehicles and pedestrians.

    ``props`` holds static props (types are CARLA blueprint ids such as
    ``static.prop.vendingmachine``); only scenarios add them
    (:mod:`sumo_world.scenarios`).
    """

    time_s: float
    ego_lane_id: str
    vehicles: ActorArrays
    pedestrians: ActorArrays
    props: ActorArrays = field(default_factory=ActorArrays)
    ego_z_m: float = float("nan")  # the height of the lane SUMO maps the ego to (the net keeps OpenDRIVE's)


@dataclass(frozen=True)
class _StaticActor:
    """A scripted actor only the ego sees, merged into every snapshot's ``group``.

    Not :class:`sumo_world.scoring.records.ActorSample`, whose fields it shares: that is
    a time-stamped picture record in the picture's type names ("vehicle",
    "walker"); this is a pose without a time, in the world's type names.
    """

    group: str  # "vehicles" | "pedestrians"
    actor_id: int
    actor_type: str
    x: float
    y: float
    yaw_deg: float
    half_length_m: float
    half_width_m: float


class SumoWorld:
    """A SUMO simulation of one town with background traffic and the ego.

    ``town`` is a :class:`sumo_world.towns.store.TownInfo`; ``traffic`` a
    :class:`sumo_world.traffic.demand.TrafficConfig` (ignored when ``route_files``
    are given). ``network`` is the town's :class:`RoadNetwork` (loaded when
    absent). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, town: Any, traffic: TrafficConfig | None = None, seed: int = 0, step_s: float = TICK_S, *,
                 network: Any = None, route_files: Sequence[Path] | None = None,
                 work_dir: Path | None = None, warmup_s: float = 10.0,
                 ego_params: EgoParams | None = None, sense_radius_m: float | None = None) -> None:
        self.town = town
        self.traffic = traffic
        self.seed = int(seed)
        self.step_s = float(step_s)
        self.warmup_s = float(warmup_s)
        self.ego_params = ego_params or EgoParams()
        self.sense_radius_m = sense_radius_m
        if network is None:
            from sumo_world.roads.network import RoadNetwork

            network = RoadNetwork.load(town.net_path)
        self.network = network
        self.transform = getattr(network, "transform", None) or town.transform
        self._route_files = list(route_files) if route_files is not None else None
        self._work_dir = work_dir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._sumo: Any = None
        self._time_s = 0.0
        self._int_ids: dict[str, int] = {}
        self._type_cache: dict[str, tuple[str, float, float]] = {}
        self._static: list[_StaticActor] = []
        self._forced_light_state: str | None = None
        self._ego_added = False
        self._ego_route: list[str] = []
        self._ego_reinsertions = 0
        self._off_lane_ticks = 0  # consecutive ticks SUMO has had the ego on no lane
        self._shadow_lane = ""  # the lane the shadow holds now ("" when it is out of the simulation)
        self._shadow_routes = 0
        self._lane_shapes: dict[str, list[tuple[float, float]]] = {}
        self._lane_widths: dict[str, float] = {}
        self.warnings: list[str] = []  # what the world left out of the asked-for set-up, and why

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start SUMO (libsumo, in this process) with the town and its traffic, and warm it up."""
        import libsumo

        if self._sumo is not None:
            raise WorldError("the world is already started")
        if self._route_files is None:
            self._route_files = self._write_traffic()
        command = [
            "sumo", "--net-file", str(self.town.net_path),
            "--step-length", f"{self.step_s}", "--seed", str(self.seed),
            "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true",
            # The ego is moved by us and may overlap; collisions are the criteria's business.
            "--collision.action", "none", "--collision.check-junctions", "false",
            "--ignore-route-errors", "true",
            # No teleports (SUMO would teleport the standing ego too): sumo_world.traffic.jams releases jams.
            "--time-to-teleport", "-1",
            "--pedestrian.model", "striping", "--xml-validation", "never",
            "--default.action-step-length", f"{max(self.step_s, ACTION_STEP_S)}",
            # Lane changes take this long, as a driver steers across (SUMO would otherwise move a car
            # a lane sideways in one step, into the ego beside it).
            "--lanechange.duration", f"{LANE_CHANGE_S}",
        ]
        if self._route_files:
            command += ["--route-files", ",".join(str(p) for p in self._route_files)]
        try:
            libsumo.start(command)
        except Exception as exc:  # libsumo raises its own exception types
            raise WorldError(f"SUMO failed to start for town {self.town.name!r} "
                             f"({self.town.net_path}): {exc}") from exc
        self._sumo = libsumo
        self._time_s = 0.0
        steps = int(round(self.warmup_s / self.step_s))
        for _ in range(steps):
            libsumo.simulationStep()
        self._time_s = libsumo.simulation.getTime()
        self._subscribe(libsumo.vehicle.getIDList(), libsumo.person.getIDList())

    def _subscribe(self, vehicles: Sequence[str], persons: Sequence[str]) -> None:
        # One getAllSubscriptionResults call per tick instead of four calls per actor.
        c = self._sumo.constants
        if self.sense_radius_m is None:
            for vid in vehicles:
                if vid not in (EGO_ID, SHADOW_ID):
                    self._sumo.vehicle.subscribe(vid, _vehicle_vars(c))
        for pid in persons:
            self._sumo.person.subscribe(pid, [c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED])

    def _write_traffic(self) -> list[Path]:
        from sumo_world.traffic.demand import TrafficConfig, fit_to_town, write_traffic_routes

        config = self.traffic if self.traffic is not None else TrafficConfig.for_density("default")
        # The world's seed decides the traffic too, so one seed reproduces a run.
        config, notes = fit_to_town(self.network, replace(config, seed=self.seed))
        for note in notes:
            logger.warning("%s", note)
        self.warnings.extend(notes)
        if self._work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="langprop_world_")
            self._work_dir = Path(self._tmp.name)
        return [Path(p) for p in write_traffic_routes(self.network, config, self._work_dir)]

    def close(self) -> None:
        """Stop SUMO and remove temporary files."""
        if self._sumo is not None:
            try:
                self._sumo.close()
            except Exception:  # closing a half-dead simulation must not hide the first error
                logger.debug("libsumo.close failed", exc_info=True)
            self._sumo = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "SumoWorld":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def sumo(self) -> Any:
        """The libsumo module of the running simulation (for tests and scripted scenes)."""
        if self._sumo is None:
            raise WorldError("the world is not started")
        return self._sumo

    @property
    def time_s(self) -> float:
        """SUMO's simulation time after the last step (s)."""
        return self._time_s

    # ------------------------------------------------------------------ ego
    def add_ego(self, state: EgoState, edges: Sequence[str], clear_radius_m: float = 12.0) -> None:
        """Insert the ego at ``state`` with the SUMO route ``edges`` (normal edges of the planned route).

        Background vehicles and walkers within ``clear_radius_m`` of the start
        are removed, as the leaderboard spawns the hero on a free spot.
        """
        sumo = self.sumo
        p = self.ego_params
        sumo.vehicletype.copy("DEFAULT_VEHTYPE", _EGO_TYPE)
        sumo.vehicletype.setLength(_EGO_TYPE, 2 * p.half_length_m)
        sumo.vehicletype.setWidth(_EGO_TYPE, 2 * p.half_width_m)
        sumo.vehicletype.setMinGap(_EGO_TYPE, 0.5)
        route = [e for i, e in enumerate(edges) if e and not e.startswith(":") and (i == 0 or e != edges[i - 1])]
        if not route:
            raise WorldError("the ego's route has no SUMO edges")
        self._ego_route = route
        self._insert_ego("langprop_ego_route")
        self._clear_around(state.x, state.y, clear_radius_m)
        self._ego_added = True
        self.move_ego(state)

    def _clear_around(self, x: float, y: float, radius_m: float) -> None:
        """Remove the actors within ``radius_m``, and the vehicles coming at the spot too fast to stop for it.

        CARLA's background vehicles start from rest with the hero; ours have been
        driving through the warm-up, and one arriving at 15 m/s from 20 m away
        would run into the car that has just appeared on its lane.
        """
        sx, sy = self.transform.to_sumo(x, y)
        sumo = self.sumo
        for vid in sumo.vehicle.getIDList():
            if vid in (EGO_ID, SHADOW_ID):
                continue
            px, py = sumo.vehicle.getPosition(vid)
            distance = math.hypot(px - sx, py - sy)
            reach = radius_m + sumo.vehicle.getLength(vid)
            speed = sumo.vehicle.getSpeed(vid)
            heading = math.radians(sumo.vehicle.getAngle(vid))  # SUMO: clockwise from north
            if speed > 0.0 and (sx - px) * math.sin(heading) + (sy - py) * math.cos(heading) > 0.0:
                # coming towards the spot: its reaction (1 s) and braking distance at its own deceleration
                reach += speed + speed * speed / (2.0 * max(0.1, sumo.vehicle.getDecel(vid)))
            if distance < reach:
                sumo.vehicle.unsubscribe(vid)
                sumo.vehicle.remove(vid)
        for pid in sumo.person.getIDList():
            px, py = sumo.person.getPosition(pid)
            if math.hypot(px - sx, py - sy) < radius_m:
                sumo.person.unsubscribe(pid)
                sumo.person.removeStages(pid)

    def move_ego(self, state: EgoState) -> None:
        """Place the ego's SUMO vehicle at ``state`` (centre pose, CARLA frame)."""
        sumo = self.sumo
        half = self.ego_params.half_length_m
        yaw = math.radians(state.yaw_deg)
        # SUMO positions a vehicle by its front bumper.
        fx, fy = state.x + half * math.cos(yaw), state.y + half * math.sin(yaw)
        sx, sy = self.transform.to_sumo(fx, fy)
        angle = self.transform.yaw_to_sumo_angle(state.yaw_deg)
        try:
            self._move_to(sx, sy, angle)
        except sumo.TraCIException:
            if EGO_ID in sumo.vehicle.getIDList():
                raise
            # SUMO let the ego arrive (it left its route's last edge) or teleported it: put it back.
            self._reinsert_ego()
            self._move_to(sx, sy, angle)
        lane_id = sumo.vehicle.getLaneID(EGO_ID)
        if lane_id:
            self._off_lane_ticks = 0
        else:
            self._off_lane_ticks += 1
            if self._off_lane_ticks >= _OFF_LANE_REINSERT_TICKS:
                # SUMO lost the ego's lane (seen at a junction of Town03 after a move) and crashes if it
                # stays so: insert it afresh where it is.
                logger.debug("the ego has had no SUMO lane for %d ticks: re-inserted", self._off_lane_ticks)
                sumo.vehicle.remove(EGO_ID)
                self._reinsert_ego()
                self._move_to(sx, sy, angle)
                self._off_lane_ticks = 0
        speed = max(0.0, state.speed_mps)
        sumo.vehicle.setSpeed(EGO_ID, speed)
        self._place_shadow(state, lane_id, angle, speed)

    def _move_to(self, sx: float, sy: float, angle: float) -> None:
        """Place the ego's front bumper at SUMO (sx, sy) heading ``angle``, off its route if need be."""
        self.sumo.vehicle.moveToXY(EGO_ID, "", -1, sx, sy, angle=angle, keepRoute=2,
                                   matchThreshold=_MATCH_RADIUS_M)

    def _place_shadow(self, state: EgoState, lane_id: str, angle: float, speed: float) -> None:
        """Hold the neighbouring lane the ego's footprint sticks into with the shadow (or free it).

        SUMO treats a vehicle as a rectangle on one lane. An ego at an angle to
        its lane, or off its centre, covers a band reaching into the next lane:
        when it reaches :data:`_SHADOW_MIN_OVERLAP_M` past the lane's edge, the
        shadow (the ego's length, its speed) stands on that lane level with it.
        Inside junctions SUMO's right-of-way rules already see the ego.
        """
        sumo = self.sumo
        vehicle = sumo.vehicle
        target = ""
        if lane_id and not lane_id.startswith(":"):
            target, tx, ty = self._shadow_target(state, lane_id, vehicle.getLanePosition(EGO_ID), angle)
        if not target:
            if self._shadow_lane:
                self._remove_shadow()
            return
        edge_id, index = target.rsplit("_", 1)
        if self._shadow_lane and SHADOW_ID not in vehicle.getIDList():
            self._shadow_lane = ""  # SUMO let it arrive: add it again
        if not self._shadow_lane:
            if _SHADOW_TYPE not in sumo.vehicletype.getIDList():
                sumo.vehicletype.copy(_EGO_TYPE, _SHADOW_TYPE)
            self._shadow_routes += 1
            route_id = f"langprop_shadow_route_{self._shadow_routes}"
            sumo.route.add(route_id, [edge_id])
            vehicle.add(SHADOW_ID, route_id, typeID=_SHADOW_TYPE, depart="now", departSpeed="0")
            vehicle.setSpeedMode(SHADOW_ID, 0)
            vehicle.setLaneChangeMode(SHADOW_ID, 0)
        vehicle.moveToXY(SHADOW_ID, edge_id, int(index), tx, ty, angle=angle, keepRoute=2,
                         matchThreshold=_MATCH_RADIUS_M)
        vehicle.setSpeed(SHADOW_ID, speed)
        self._shadow_lane = target

    def _remove_shadow(self) -> None:
        try:
            self.sumo.vehicle.remove(SHADOW_ID)
        except self.sumo.TraCIException:  # it had already left the simulation
            pass
        self._shadow_lane = ""

    def _shadow_target(self, state: EgoState, lane_id: str, pos_m: float, angle: float) -> tuple[str, float, float]:
        """The neighbouring lane the ego's footprint covers, and the shadow's front-bumper point (SUMO frame)."""
        p = self.ego_params
        (x0, y0), (x1, y1) = self._lane_segment(lane_id, pos_m)
        seg = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / seg, (y1 - y0) / seg  # along the lane; its left is (-uy, ux)
        cx, cy = self.transform.to_sumo(state.x, state.y)
        offset = (cx - x0) * -uy + (cy - y0) * ux  # the footprint centre's distance left of the lane's centre
        lane_angle = math.degrees(math.atan2(ux, uy))
        rel = math.radians(((lane_angle - angle) + 180.0) % 360.0 - 180.0)
        half_band = 0.5 * (2 * p.half_width_m * abs(math.cos(rel)) + 2 * p.half_length_m * abs(math.sin(rel)))
        half_lane = 0.5 * self._lane_width(lane_id)
        edge_id, index = lane_id.rsplit("_", 1)
        for side, reach in ((1, offset + half_band - half_lane), (-1, -offset + half_band - half_lane)):
            if reach < _SHADOW_MIN_OVERLAP_M:
                continue
            neighbour = f"{edge_id}_{int(index) + side}"
            if int(index) + side < 0 or not self._lane_exists(neighbour):
                continue
            # Level with the ego's front, on the neighbour lane's centre line.
            across = side * (half_lane + 0.5 * self._lane_width(neighbour))
            fx = cx + p.half_length_m * ux + (across - offset) * -uy
            fy = cy + p.half_length_m * uy + (across - offset) * ux
            return neighbour, fx, fy
        return "", 0.0, 0.0

    def _lane_exists(self, lane_id: str) -> bool:
        if lane_id in self._lane_widths:
            return self._lane_widths[lane_id] > 0.0
        try:
            allowed = "passenger" in self.sumo.lane.getAllowed(lane_id) or not self.sumo.lane.getAllowed(lane_id)
            self._lane_widths[lane_id] = self.sumo.lane.getWidth(lane_id) if allowed else 0.0
        except self.sumo.TraCIException:
            self._lane_widths[lane_id] = 0.0
        return self._lane_widths[lane_id] > 0.0

    def _lane_width(self, lane_id: str) -> float:
        if lane_id not in self._lane_widths:
            self._lane_widths[lane_id] = self.sumo.lane.getWidth(lane_id)
        return self._lane_widths[lane_id] or 3.2

    def _lane_segment(self, lane_id: str, pos_m: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """The segment of a lane's shape (SUMO frame) at ``pos_m`` along it."""
        shape = self._lane_shapes.get(lane_id)
        if shape is None:
            shape = self._lane_shapes[lane_id] = self.sumo.lane.getShape(lane_id)
        walked = 0.0
        for a, b in zip(shape[:-1], shape[1:]):
            walked += math.hypot(b[0] - a[0], b[1] - a[1])
            if walked >= pos_m:
                return a, b
        return shape[-2], shape[-1]

    def _insert_ego(self, route_id: str) -> None:
        """Add the ego's SUMO vehicle on its route (registered as ``route_id``); SUMO never moves it."""
        sumo = self.sumo
        sumo.route.add(route_id, self._ego_route)
        sumo.vehicle.add(EGO_ID, route_id, typeID=_EGO_TYPE, depart="now", departSpeed="0")
        sumo.vehicle.setSpeedMode(EGO_ID, 0)
        sumo.vehicle.setLaneChangeMode(EGO_ID, 0)
        if self.sense_radius_m is not None:
            sumo.vehicle.subscribeContext(EGO_ID, sumo.constants.CMD_GET_VEHICLE_VARIABLE, self.sense_radius_m,
                                          _vehicle_vars(sumo.constants))

    def _reinsert_ego(self) -> None:
        self._ego_reinsertions += 1
        self._insert_ego(f"langprop_ego_route_{self._ego_reinsertions}")

    def ego_lane_id(self) -> str:
        """The SUMO lane the ego is mapped to ("" off the network; ":..." inside a junction)."""
        try:
            return self.sumo.vehicle.getLaneID(EGO_ID)
        except Exception:  # not inserted yet
            return ""

    # ------------------------------------------------------------------ stepping
    def step(self) -> float:
        """Advance SUMO by one tick; returns the new simulation time (s)."""
        sumo = self.sumo
        if self._forced_light_state is not None:
            self._apply_forced_lights()
        sumo.simulationStep()
        self._time_s = sumo.simulation.getTime()
        self._subscribe(sumo.simulation.getDepartedIDList(), sumo.simulation.getDepartedPersonIDList())
        return self._time_s

    # ------------------------------------------------------------------ scripting (tests, scenes)
    def add_static_vehicle(self, x: float, y: float, yaw_deg: float, half_length_m: float = 2.4,
                           half_width_m: float = 1.0, actor_type: str = "car") -> int:
        """Add a parked vehicle (CARLA frame) that only the ego sees (scene, criteria); returns its id."""
        return self._add_static("vehicles", x, y, yaw_deg, half_length_m, half_width_m, actor_type)

    def add_static_pedestrian(self, x: float, y: float, yaw_deg: float = 0.0) -> int:
        """Add a standing pedestrian (CARLA frame) that only the ego sees; returns its id."""
        return self._add_static("pedestrians", x, y, yaw_deg, _PEDESTRIAN_HALF_SIZE_M, _PEDESTRIAN_HALF_SIZE_M,
                                "pedestrian")

    def _add_static(self, group: str, x: float, y: float, yaw_deg: float, half_length_m: float,
                    half_width_m: float, actor_type: str) -> int:
        actor_id = self._int_id(f"static_{len(self._static)}")
        self._static.append(_StaticActor(group, actor_id, actor_type, float(x), float(y), float(yaw_deg),
                                         float(half_length_m), float(half_width_m)))
        return actor_id

    def force_traffic_lights(self, state_char: str | None = "r") -> None:
        """Hold every traffic light at ``state_char`` ("r", "y", "G"); None returns to the programs."""
        self._forced_light_state = state_char
        if state_char is None:
            for tls in self.sumo.trafficlight.getIDList():
                programs = self.sumo.trafficlight.getAllProgramLogics(tls)
                if programs:
                    self.sumo.trafficlight.setProgram(tls, programs[0].programID)
        else:
            self._apply_forced_lights()

    def _apply_forced_lights(self) -> None:
        tl = self.sumo.trafficlight
        for tls in tl.getIDList():
            n = len(tl.getRedYellowGreenState(tls))
            tl.setRedYellowGreenState(tls, self._forced_light_state * n)

    def light_state(self, tls_id: str, link_index: int) -> str:
        """SUMO's signal character of one link ('r', 'y', 'G', 'g', 'u', 'o', 's', ...)."""
        state = self.sumo.trafficlight.getRedYellowGreenState(tls_id)
        if 0 <= link_index < len(state):
            return state[link_index]
        return "o"

    # ------------------------------------------------------------------ reading
    def _int_id(self, sumo_id: str) -> int:
        actor_id = self._int_ids.get(sumo_id)
        if actor_id is None:
            actor_id = len(self._int_ids) + 1
            self._int_ids[sumo_id] = actor_id
        return actor_id

    def _vehicle_type(self, type_id: str) -> tuple[str, float, float]:
        sumo = self.sumo
        cached = self._type_cache.get(type_id)
        if cached is None:
            vclass = sumo.vehicletype.getVehicleClass(type_id)
            cached = (_VCLASS_TO_ACTOR_TYPE.get(vclass, "car"),
                      max(0.5, sumo.vehicletype.getLength(type_id) / 2.0),
                      max(0.5, sumo.vehicletype.getWidth(type_id) / 2.0))
            self._type_cache[type_id] = cached
        return cached

    def snapshot(self) -> WorldSnapshot:
        """Every other actor's state now (CARLA frame, centres)."""
        sumo = self.sumo
        vehicle = sumo.vehicle
        int_id = self._int_id
        v_ids: list[int] = []
        v_sumo: list[str] = []
        v_types: list[str] = []
        raw: list[tuple[float, float, float, float, float, float]] = []
        c = sumo.constants
        pos, ang, spd, typ = c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE
        v_z: list[float] = []
        for vid, values in self._vehicle_values().items():
            if vid in (EGO_ID, SHADOW_ID) or not values:
                continue
            actor_type, half_l, half_w = self._vehicle_type(values[typ])
            px, py, *z = values[pos]  # 2 values for a vehicle without a valid position (teleporting)
            pz = z[0] if z else math.nan
            raw.append((px, py, values[ang], values[spd], half_l, half_w))
            v_z.append(pz)
            v_ids.append(int_id(vid))
            v_sumo.append(vid)
            v_types.append(actor_type)
        vehicles = self._add_statics("vehicles", self._to_carla(raw, front=True), v_ids, v_sumo, v_types, v_z)

        person = sumo.person
        p_ids: list[int] = []
        p_sumo: list[str] = []
        p_z: list[float] = []
        p_raw: list[tuple[float, float, float, float, float, float]] = []
        for pid, values in person.getAllSubscriptionResults().items():
            if not values:
                continue
            px, py, *z = values[pos]
            pz = z[0] if z else math.nan
            p_raw.append((px, py, values[ang], values[spd],
                          _PEDESTRIAN_HALF_SIZE_M, _PEDESTRIAN_HALF_SIZE_M))
            p_z.append(pz)
            p_ids.append(int_id("person:" + pid))
            p_sumo.append(pid)
        p_types = ["pedestrian"] * len(p_ids)
        pedestrians = self._add_statics("pedestrians", self._to_carla(p_raw, front=False), p_ids, p_sumo, p_types,
                                        p_z)
        return WorldSnapshot(self._time_s, self.ego_lane_id() if self._ego_added else "",
                             _arrays(v_ids, v_sumo, v_types, vehicles, v_z),
                             _arrays(p_ids, p_sumo, p_types, pedestrians, p_z),
                             ego_z_m=self._ego_z() if self._ego_added else float("nan"))

    def _vehicle_values(self) -> dict[str, dict[int, Any]]:
        """Subscribed variables of the vehicles a snapshot holds: all, or those within the sense radius."""
        vehicle = self.sumo.vehicle
        if self.sense_radius_m is None:
            return vehicle.getAllSubscriptionResults()
        if self._ego_added:
            return vehicle.getContextSubscriptionResults(EGO_ID)
        c = self.sumo.constants  # no ego to centre the radius on yet: read every vehicle once
        return {vid: {c.VAR_POSITION3D: vehicle.getPosition3D(vid), c.VAR_ANGLE: vehicle.getAngle(vid),
                      c.VAR_SPEED: vehicle.getSpeed(vid), c.VAR_TYPE: vehicle.getTypeID(vid)}
                for vid in vehicle.getIDList()}

    def _ego_z(self) -> float:
        try:
            return float(self.sumo.vehicle.getPosition3D(EGO_ID)[2])
        except Exception:  # not in the simulation this tick (being re-inserted)
            return float("nan")

    def _add_statics(self, group: str, rows: np.ndarray | None, ids: list[int], sumo_ids: list[str],
                     types: list[str], z: list[float]) -> np.ndarray | None:
        statics = [a for a in self._static if a.group == group]
        if not statics:
            return rows
        z += [float("nan")] * len(statics)  # placed by (x, y) only: on every level
        extra = np.array([(a.x, a.y, a.yaw_deg, 0.0, a.half_length_m, a.half_width_m) for a in statics])
        ids += [a.actor_id for a in statics]
        sumo_ids += [f"static_{a.actor_id}" for a in statics]
        types += [a.actor_type for a in statics]
        return extra if rows is None else np.vstack([rows, extra])

    def _to_carla(self, raw: list[tuple[float, ...]], front: bool) -> np.ndarray | None:
        """SUMO rows (x, y, angle, speed, half_l, half_w) -> CARLA rows (cx, cy, yaw, speed, half_l, half_w)."""
        if not raw:
            return None
        data = np.asarray(raw, dtype=float)
        x, y = self.transform.to_carla(data[:, 0], data[:, 1])
        yaw = data[:, 2] - 90.0
        if front:  # SUMO's vehicle position is the front bumper
            rad = np.radians(yaw)
            x = x - data[:, 4] * np.cos(rad)
            y = y - data[:, 4] * np.sin(rad)
        data[:, 0], data[:, 1], data[:, 2] = x, y, yaw
        return data


def _vehicle_vars(c: Any) -> list[int]:
    """The vehicle variables a snapshot reads (libsumo constants ``c``)."""
    return [c.VAR_POSITION3D, c.VAR_ANGLE, c.VAR_SPEED, c.VAR_TYPE]


def _arrays(ids: list[int], sumo_ids: list[str], types: list[str], data: np.ndarray | None,
            z: list[float]) -> ActorArrays:
    if data is None or not len(data):
        return ActorArrays()
    yaw = (data[:, 2] + 180.0) % 360.0 - 180.0
    return ActorArrays(ids=ids, sumo_ids=sumo_ids, types=types, xy=data[:, :2].copy(), yaw_deg=yaw,
                       speed_mps=data[:, 3].copy(), half_length_m=data[:, 4].copy(),
                       half_width_m=data[:, 5].copy(), z_m=np.asarray(z, dtype=float))
