"""The embedded world: one SUMO simulation (libsumo) with the ego injected into it.

libsumo runs one simulation per process and takes the process down when SUMO
aborts, so a :class:`SumoWorld` lives in a process of its own (the runner
starts one child process per route). :class:`SumoWorld` owns SUMO's process
and its subscriptions, and hands each other job to its part:

- the ego's presence in SUMO (moveToXY, the shadow vehicle, re-insertion):
  :mod:`sumo_world.simulation.ego_presence`;
- static actors only the ego sees: :mod:`sumo_world.simulation.static_actors`;
- traffic lights held at one state: :mod:`sumo_world.simulation.lights`;
- the snapshot of the other actors: :mod:`sumo_world.simulation.snapshot`.

SUMO drivers decide every :data:`ACTION_STEP_S` (SUMO's action step: their
reaction time; positions still move every tick). With ``sense_radius_m`` set
(the runner sets :data:`SENSE_RADIUS_M`) a snapshot holds the vehicles within
that radius of the ego only: one context subscription instead of one per
vehicle.

Everything leaving this package is in CARLA's frame (see
:mod:`sumo_world.roads.transform`).
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from driving.clock import TICK_S
from sumo_world.ego.dynamics import EgoParams, EgoState
from sumo_world.simulation.ego_presence import EGO_ID, SHADOW_ID, EgoPresence
from sumo_world.simulation.errors import WorldError
from sumo_world.simulation.headings import BodyHeadings
from sumo_world.simulation.lights import ForcedLights
from sumo_world.simulation.snapshot import ActorIds, SnapshotReader, WorldSnapshot, vehicle_vars
from sumo_world.simulation.static_actors import StaticActors

if TYPE_CHECKING:
    from sumo_world.traffic.demand import TrafficConfig

__all__ = ["SumoWorld", "WorldError", "ACTION_STEP_S", "SENSE_RADIUS_M", "LANE_CHANGE_S"]

logger = logging.getLogger(__name__)

# SUMO drivers decide (follow, change lanes, yield) this often; they move every tick. 0.1 s is a
# quick driver's reaction time and makes SUMO about twice as fast as deciding every 0.05 s tick.
ACTION_STEP_S = 0.1
# What a route run needs to see around the ego: the scene's 50 m, the bird's-eye picture's 80 m.
SENSE_RADIUS_M = 100.0
LANE_CHANGE_S = 2.0  # how long a SUMO lane change takes (CARLA's autopilot takes about as long)


class SumoWorld:
    """A SUMO simulation of one town with background traffic and the ego.

    ``town`` is a :class:`sumo_world.towns.info.TownInfo`; ``traffic`` a
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
        self._actor_ids = ActorIds()
        self._static = StaticActors(self._actor_ids)
        # The parts that act on the running simulation (made by start()).
        self._ego: EgoPresence | None = None
        self._lights: ForcedLights | None = None
        self._reader: SnapshotReader | None = None
        self.warnings: list[str] = []  # what the world left out of the asked-for set-up, and why
        # Vehicles' bodies trail their front bumpers; its count of SUMO's jumps outlives close().
        self.headings = BodyHeadings(self.ego_params)

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
        self._ego = EgoPresence(libsumo, self.transform, self.ego_params, self.sense_radius_m)
        self._lights = ForcedLights(libsumo)
        self._reader = SnapshotReader(libsumo, self.transform, self._actor_ids, (EGO_ID, SHADOW_ID),
                                      self._static.merge, self.headings)
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
                    self._sumo.vehicle.subscribe(vid, vehicle_vars(c))
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
            self._ego = self._lights = self._reader = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "SumoWorld":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _require_started(self) -> None:
        if self._sumo is None:
            raise WorldError("the world is not started")

    @property
    def sumo(self) -> Any:
        """The libsumo module of the running simulation (for tests and scripted scenes)."""
        self._require_started()
        return self._sumo

    @property
    def time_s(self) -> float:
        """SUMO's simulation time after the last step (s)."""
        return self._time_s

    @property
    def ego(self) -> EgoPresence:
        """The ego's presence in SUMO (its vehicle, shadow and re-insertions) while the world runs."""
        self._require_started()
        return self._ego

    # ------------------------------------------------------------------ ego
    def add_ego(self, state: EgoState, edges: Sequence[str], clear_radius_m: float = 12.0) -> None:
        """Insert the ego at ``state`` with the SUMO route ``edges`` (see :meth:`EgoPresence.add`)."""
        self.ego.add(state, edges, clear_radius_m)

    def move_ego(self, state: EgoState) -> None:
        """Place the ego's SUMO vehicle at ``state`` (centre pose, CARLA frame)."""
        self.ego.move(state)

    def ego_lane_id(self) -> str:
        """The SUMO lane the ego is mapped to ("" off the network; ":..." inside a junction)."""
        return self._ego.lane_id() if self._ego is not None else ""

    # ------------------------------------------------------------------ stepping
    def step(self) -> float:
        """Advance SUMO by one tick; returns the new simulation time (s)."""
        sumo = self.sumo
        self._lights.apply()
        sumo.simulationStep()
        self._time_s = sumo.simulation.getTime()
        self._subscribe(sumo.simulation.getDepartedIDList(), sumo.simulation.getDepartedPersonIDList())
        return self._time_s

    # ------------------------------------------------------------------ scripting (tests, scenes)
    def add_static_vehicle(self, x: float, y: float, yaw_deg: float, half_length_m: float = 2.4,
                           half_width_m: float = 1.0, actor_type: str = "car") -> int:
        """Add a parked vehicle (CARLA frame) that only the ego sees (scene, criteria); returns its id."""
        return self._static.add_vehicle(x, y, yaw_deg, half_length_m, half_width_m, actor_type)

    def add_static_pedestrian(self, x: float, y: float, yaw_deg: float = 0.0) -> int:
        """Add a standing pedestrian (CARLA frame) that only the ego sees; returns its id."""
        return self._static.add_pedestrian(x, y, yaw_deg)

    def force_traffic_lights(self, state_char: str | None = "r") -> None:
        """Hold every traffic light at ``state_char`` ("r", "y", "G"); None returns to the programs."""
        self._require_started()
        self._lights.force(state_char)

    def light_state(self, tls_id: str, link_index: int) -> str:
        """SUMO's signal character of one link ('r', 'y', 'G', 'g', 'u', 'o', 's', ...)."""
        self._require_started()
        return self._lights.light_state(tls_id, link_index)

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> WorldSnapshot:
        """Every other actor's state now (CARLA frame, centres)."""
        self._require_started()
        added = self._ego.added
        return self._reader.read(self._time_s, self._vehicle_values(), self._ego.lane_id() if added else "",
                                 self._ego.z_m() if added else float("nan"))

    def _vehicle_values(self) -> dict[str, dict[int, Any]]:
        """Subscribed variables of the vehicles a snapshot holds: all, or those within the sense radius."""
        vehicle = self._sumo.vehicle
        if self.sense_radius_m is None:
            return vehicle.getAllSubscriptionResults()
        if self._ego.added:
            return vehicle.getContextSubscriptionResults(EGO_ID)
        c = self._sumo.constants  # no ego to centre the radius on yet: read every vehicle once
        return {vid: {c.VAR_POSITION3D: vehicle.getPosition3D(vid), c.VAR_ANGLE: vehicle.getAngle(vid),
                      c.VAR_SPEED: vehicle.getSpeed(vid), c.VAR_TYPE: vehicle.getTypeID(vid)}
                for vid in vehicle.getIDList()}
