"""One route, run in this process: setting the world up, the tick loop, the outcome.

:class:`RouteRun` plans the dense route, starts SUMO with the town's
background traffic (seeded), inserts the ego at the route start, loads the
agent (1.0 or 2.0 construction order, see :mod:`sumo_world.agents.loader`),
then calls its tick components (:func:`sumo_world.run.tick_components.tick_components`,
where their order and its reason are written) every 0.05 s until one ends the
run, and returns the :class:`sumo_world.scoring.records.RouteOutcome`.
"""
from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sumo_world.pictures.route_pictures import draw_route_picture
from sumo_world.scoring.records import Infraction, RouteOutcome
from sumo_world.run.tick_components import (
    RouteParts,
    Tick,
    TickComponent,
    TickInfo,
    tick_components,
    trajectory_sample,
)

if TYPE_CHECKING:  # the world's modules load libsumo: imported when a route runs
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.files import RouteSpec
    from sumo_world.scenarios.definitions import ScenarioFile
    from sumo_world.towns.info import TownInfo
    from sumo_world.traffic.demand import TrafficConfig

__all__ = ["RouteRun", "RouteSettings", "run_ticks", "infraction_events", "STATUS_AGENT_CRASHED",
           "SENSORS_KEY"]

logger = logging.getLogger(__name__)

STATUS_AGENT_CRASHED = "Failed - Agent crashed"
# Outcome meta key carrying the agent's sensor types to the parent (moved to the file's "sensors").
SENSORS_KEY = "agent_sensor_types"
# Record meta keys an agent's route_meta() may not set (the runner's and the run's own).
_RESERVED_META = frozenset({"agent", "seed", "traffic", "world", "error", "repetition", "timeout_s",
                            "infraction_events", "agent_exceptions", "agent_exceptions_raised",
                            "agent_exceptions_reported", "sensors_unsupported", "scenarios", "world_warnings",
                            "jam_releases", "jam_refills", "waits_for_ego_ended", "heading_jumps",
                            "walkers_held", "walkers_gave_up"})


@dataclass(frozen=True)
class RouteSettings:
    """How one route runs (everything but the route, the town and the agent).

    ``traffic``: a preset name of :mod:`sumo_world.traffic.demand` or a
    :class:`~sumo_world.traffic.demand.TrafficConfig`. ``blocked_time_s`` and
    ``warmup_s`` exist for tests and quick runs (the leaderboard's blocked time
    is 180 s). ``scene_setup(world, context)`` runs after the ego is inserted
    (scripted scenes); ``on_tick`` gets a :class:`TickInfo` every tick.
    ``scenarios``: a leaderboard-1.0 scenario file (or its path) whose
    scenarios for the route's town run along it. ``pictures_dir``: where a
    bird's-eye PNG of the run goes.
    """

    seed: int = 0
    traffic: str | TrafficConfig = "default"
    blocked_time_s: float = 180.0
    timeout_factor: float = 1.0
    warmup_s: float = 10.0
    progress: bool = False
    pictures_dir: Path | None = None
    scene_setup: Callable[[Any, Any], None] | None = None
    on_tick: Callable[[TickInfo], None] | None = None
    scenarios: ScenarioFile | str | Path | None = None


def run_ticks(components: Sequence[TickComponent], parts: RouteParts, control: Any) -> Tick:
    """Calls ``components`` in order, tick after tick, until one sets ``stop``; returns that tick.

    The tick that stops the run is recorded as it stands (the ego where it was,
    the control it had): the run's last trajectory sample.
    """
    frame = 0
    while True:
        tick = Tick(frame, control)
        for component in components:
            component.step(tick)
            if tick.stop:
                parts.trajectory.append(trajectory_sample(tick.elapsed_s, tick.ego, tick.control))
                return tick
        control = tick.control
        frame += 1


class RouteRun:
    """One route run: its world, its agent, and the ordered tick components between them."""

    def __init__(self, route: RouteSpec, town: TownInfo, agent: str, agent_config: str | None = None,
                 settings: RouteSettings = RouteSettings(), network: RoadNetwork | None = None) -> None:
        self.route, self.town, self.agent, self.agent_config = route, town, agent, agent_config
        self.settings, self.network = settings, network

    def run(self) -> RouteOutcome:
        """Run the route to its end; returns its outcome.

        Raises :class:`sumo_world.routes.planner.RoutePlanningError` for
        waypoints off the network, and whatever the agent's constructor/setup
        raises.
        """
        from driving.carla_compat import VehicleControl
        from sumo_world.agents.loader import create_agent, load_agent_class
        from sumo_world.ego.collisions import CollisionResponse
        from sumo_world.scoring.criteria import CriteriaConfig, RouteCriteria
        from sumo_world.ego.dynamics import EgoState, EgoVehicle
        from sumo_world.traffic.jams import JamRelease
        from sumo_world.traffic.refill import Refill
        from sumo_world.roads.network import RoadNetwork
        from sumo_world.routes.planner import plan_route
        from sumo_world.scene.builder import RouteContext, SumoSceneProvider
        from sumo_world.scene.sensors import SensorSuite
        from sumo_world.traffic.yielding import TrafficYield
        from sumo_world.simulation.world import SENSE_RADIUS_M, SumoWorld

        route, town, settings, seed = self.route, self.town, self.settings, self.settings.seed
        wall_start = time.perf_counter()
        network = self.network or RoadNetwork.load(town.net_path)
        dense = plan_route(network, route)
        context = RouteContext.from_dense_route(network, dense)
        context.route_id = str(route.route_id)
        spec = load_agent_class(self.agent)

        # The order of what follows is the order of the world's random draws: keep it.
        world = SumoWorld(town, _traffic_config(settings.traffic, town, network), seed=seed, network=network,
                          warmup_s=settings.warmup_s, sense_radius_m=SENSE_RADIUS_M)
        world.start()
        try:
            yaw0 = float(dense.yaw_deg[0])
            start = EgoState(float(dense.points[0][0]), float(dense.points[0][1]), yaw0, 0.0)
            ego = EgoVehicle(start, world.ego_params)
            world.add_ego(start, dense.edges)
            if settings.scene_setup is not None:
                settings.scene_setup(world, context)
            manager = _scenario_manager(settings.scenarios, town, context, dense, network, world, seed, route)
            world.step()  # as the leaderboard ticks once after spawning the hero (SUMO inserts it now)
            start_time = world.time_s
            criteria = RouteCriteria(context, network, CriteriaConfig(blocked_time_s=settings.blocked_time_s,
                                                                      timeout_factor=settings.timeout_factor),
                                     world.ego_params, start_time_s=start_time, world=world)
            provider = SumoSceneProvider(world, context=context, ego_params=world.ego_params,
                                         start_time_s=start_time)
            crashes = CollisionResponse(world, world.ego_params)
            yielding = TrafficYield(world, world.ego_params)
            jams = JamRelease(world, refill=Refill(world))
            agent_obj = create_agent(spec, self.agent_config, dense.gps_plan(), dense.world_plan())
            if hasattr(agent_obj, "set_scene_provider"):
                agent_obj.set_scene_provider(provider)
            sensors = SensorSuite(agent_obj.sensors())

            parts = RouteParts(
                route_id=str(route.route_id), world=world, ego=ego, context=context, criteria=criteria,
                provider=provider, agent=agent_obj, sensors=sensors, crashes=crashes, yielding=yielding,
                jams=jams, start_time_s=start_time,
                brake=lambda: VehicleControl(throttle=0.0, steer=0.0, brake=1.0), manager=manager,
                on_tick=settings.on_tick, bar=_route_bar(route, context.length_m, settings.progress))
            try:
                run_ticks(tick_components(parts), parts, parts.brake())
            finally:
                if parts.bar is not None:
                    parts.bar.n = round(criteria.route_completion_percent, 1)
                    parts.bar.close()
                reported = _reported_exceptions(agent_obj)
                agent_meta = _agent_route_meta(agent_obj, route.route_id)
                try:
                    agent_obj.destroy()
                except Exception:
                    logger.warning("route %s: agent destroy() raised:\n%s", route.route_id,
                                   traceback.format_exc())
            duration_game = world.time_s - start_time
        finally:
            world.close()

        outcome = self._outcome(parts, duration_game, reported, agent_meta,
                                duration_system_s=time.perf_counter() - wall_start)
        if settings.pictures_dir is not None:
            draw_route_picture(outcome, network, Path(settings.pictures_dir))
        return outcome

    def _outcome(self, parts: RouteParts, duration_game: float, reported: int, agent_meta: dict[str, Any],
                 duration_system_s: float) -> RouteOutcome:
        """The run's outcome: the criteria's verdict, what was recorded, and the meta of the record."""
        criteria, context, sensors, manager = parts.criteria, parts.context, parts.sensors, parts.manager
        errors, traffic = parts.errors, self.settings.traffic
        return RouteOutcome(
            route_id=parts.route_id, town=str(self.town.name),
            status=STATUS_AGENT_CRASHED if errors.crash is not None else criteria.finish(),
            route_completion_percent=float(criteria.route_completion_percent),
            route_length_m=float(context.length_m), duration_game_s=float(duration_game),
            duration_system_s=float(duration_system_s),
            infractions=list(criteria.infractions),
            outside_route_lanes_percent=float(criteria.outside_route_lanes_percent),
            trajectory=parts.trajectory, actors=parts.actors,
            route_xy=[(float(x), float(y)) for x, y in context.points],
            agent_exceptions=errors.raised + reported,
            meta={**agent_meta, **({"error": errors.crash} if errors.crash is not None else {}),
                  "agent_exceptions_raised": errors.raised, "agent_exceptions_reported": reported,
                  "seed": int(self.settings.seed),
                  "traffic": traffic if isinstance(traffic, str) else repr(traffic),
                  "timeout_s": float(criteria.timeout_s), "sensors_unsupported": sensors.unsupported,
                  "infraction_events": infraction_events(criteria.infractions),
                  **({"scenarios": manager.records(criteria.infractions, duration_game)}
                     if manager is not None else {}),
                  "world_warnings": list(parts.world.warnings), "jam_releases": len(parts.jams.released),
                  "jam_refills": len(parts.jams.refill.added) if parts.jams.refill is not None else 0,
                  "waits_for_ego_ended": parts.yielding.waits_ended,
                  "heading_jumps": parts.world.headings.jumps,
                  "walkers_held": parts.yielding.walkers.holds, "walkers_gave_up": parts.yielding.walkers.gave_up,
                  SENSORS_KEY: list(sensors.types)},
        )


def infraction_events(infractions: list[Infraction]) -> list[dict[str, Any]]:
    """The infractions as ``{kind, time_s, x, y}`` for the record's meta.

    ``time_s`` counts simulated seconds from the route's start, the clock of the
    scenes' ``timestamp_s`` (both subtract the same start time), so a recorded
    tick's time to its next infraction is a plain difference; the leaderboard's
    messages carry a place but no time.
    """
    return [{"kind": i.kind, "time_s": float(i.time_s), "x": round(float(i.x), 3), "y": round(float(i.y), 3)}
            for i in infractions]


def _traffic_config(traffic: Any, town: Any = None, network: Any = None) -> Any:
    """A preset name as its :class:`TrafficConfig` for the town (the world gives it the run's seed)."""
    from sumo_world.traffic.demand import TrafficConfig

    if not isinstance(traffic, str):
        return traffic
    return TrafficConfig.for_density(traffic, town=getattr(town, "name", None), network=network)


def _scenario_manager(scenarios: Any, town: Any, context: Any, dense: Any, network: Any, world: Any,
                      seed: int, route: Any) -> Any:
    """The route's :class:`sumo_world.scenarios.ScenarioManager` (None without a scenario file)."""
    if scenarios is None:
        return None
    from sumo_world.scenarios import ScenarioManager, read_scenario_file

    scenario_file = read_scenario_file(scenarios) if isinstance(scenarios, (str, Path)) else scenarios
    return ScenarioManager.for_route(scenario_file, str(town.name), context, dense, network, world, seed,
                                     waypoints=getattr(route, "waypoints", None))


def _agent_route_meta(agent: Any, route_id: Any) -> dict[str, Any]:
    """Extras an agent reports about its run through an optional ``route_meta() -> dict`` (e.g. policy
    timeouts); they go into the record's meta, never over the runner's own keys."""
    method = getattr(agent, "route_meta", None)
    if not callable(method):
        return {}
    try:
        extra = method()
    except Exception:  # the agent's bug must not cost the route's result
        logger.warning("route %s: agent route_meta() raised:\n%s", route_id, traceback.format_exc())
        return {}
    if not isinstance(extra, dict):
        logger.warning("route %s: agent route_meta() returned %s, not a dict; ignored",
                       route_id, type(extra).__name__)
        return {}
    try:  # the results file must be able to hold them
        extra = json.loads(json.dumps(extra, default=str))
    except (TypeError, ValueError) as exc:
        logger.warning("route %s: agent route_meta() is not JSON-safe (%s); ignored", route_id, exc)
        return {}
    return {str(key): value for key, value in extra.items() if str(key) not in _RESERVED_META}


def _reported_exceptions(agent: Any) -> int:
    """Failures an agent caught itself and counted in ``exception_count`` (our privileged agents do)."""
    count = getattr(agent, "exception_count", 0)
    return int(count) if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _route_bar(route: Any, length_m: float, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=100.0, desc=f"route {route.route_id} ({length_m:.0f} m)", unit="%", leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}", position=1)
