"""Running leaderboard agents on leaderboard routes in the embedded world.

:func:`evaluate` runs a route file (every route x repetition) and writes one
leaderboard-format results JSON (:class:`sumo_world.results.ResultsFile`,
resumable). Every route runs in a child process of its own: libsumo holds one
simulation per process and takes the process down when SUMO aborts, so a
dying child becomes a ``"Failed - Simulation crashed"`` record and the other
routes' results are kept. :func:`run_route` runs one route in the current
process (what the child does).

Per route: plan the dense route on the town's network, start SUMO with the
town's background traffic (seeded), insert the ego at the route start, load
the agent (1.0 or 2.0 construction order, see :mod:`sumo_world.agent_loader`),
then every 0.05 s tick: snapshot the world, evaluate the criteria (the run
ends on completion, deviation, blocking or timeout), hand the agent its
sensor data and the scene provider, apply its control to the bicycle model,
move the ego in SUMO and step SUMO. Exceptions raised by ``run_step`` are
counted, the car brakes for that tick, and the run goes on; the record's
``agent_exceptions`` adds the failures an agent caught itself and counted in
an integer ``exception_count`` attribute (the LangProp and expert agents brake
on a failing policy instead of raising). An agent may also report extras about
its run with a ``route_meta() -> dict`` method (the LangProp agent counts its
policy's timeouts there); they land in the record's meta. The meta's
``infraction_events`` lists every infraction with its kind, place and time in
the scenes' clock (seconds from the route's start).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sumo_world.records import ActorSample, Infraction, RouteOutcome, TrajectorySample

__all__ = ["EvaluationConfig", "evaluate", "run_route", "TickInfo", "EvaluationError",
           "STATUS_CRASHED", "STATUS_SETUP_FAILED", "STATUS_AGENT_CRASHED", "AGENT_CRASH_TICKS",
           "infraction_events", "run_provenance"]

logger = logging.getLogger(__name__)

STATUS_CRASHED = "Failed - Simulation crashed"
STATUS_SETUP_FAILED = "Failed - Agent couldn't be set up"
STATUS_AGENT_CRASHED = "Failed - Agent crashed"
#: consecutive ticks whose run_step raised after which the route ends as STATUS_AGENT_CRASHED: an
#: occasional exception costs a braking tick (the interface's rule), an agent that keeps raising
#: cannot drive, and the leaderboard would have stopped it at its first exception (1 s of game time)
AGENT_CRASH_TICKS = 20
_ACTOR_SAMPLE_PERIOD_S = 1.0
_ACTOR_SAMPLE_RADIUS_M = 80.0
# Record meta keys an agent's route_meta() may not set (the runner's and the run's own).
_RESERVED_META = frozenset({"agent", "seed", "traffic", "world", "error", "repetition", "timeout_s",
                            "infraction_events", "agent_exceptions", "agent_exceptions_raised",
                            "agent_exceptions_reported", "sensors_unsupported", "scenarios", "world_warnings",
                            "jam_releases", "waits_for_ego_ended"})
# Outcome meta key carrying the agent's sensor types to the parent (moved to the file's "sensors").
_SENSORS_KEY = "agent_sensor_types"


class EvaluationError(RuntimeError):
    """The evaluation cannot start (bad routes file, unknown town or agent); names the problem."""


@dataclass
class EvaluationConfig:
    """One evaluation run. ``agent`` is a path to an agent .py file or ``builtin:<name>``.

    ``town`` may be empty: each route then runs in its own ``town`` attribute's
    town. ``blocked_time_s`` and ``warmup_s`` exist for tests and quick runs
    (the leaderboard's blocked time is 180 s). ``scene_setup`` is an optional
    picklable callable ``(world, context) -> None`` called after the ego is
    inserted (scripted scenes: parked cars, forced lights); ``tick_hook`` an
    optional picklable callable given a :class:`TickInfo` every tick, in the
    route's child process (recording what a policy saw). ``route_wall_limit_s``
    kills a route's process after that many wall-clock seconds (a hanging
    agent) and records the route as crashed. ``animation`` adds a GIF of each
    run beside its PNG in ``pictures_dir``. ``agent_label`` names the agent in
    the records' meta (default: ``builtin:<name>`` or the agent file's stem).
    ``scenarios`` is a leaderboard-1.0 scenario file (the leaderboard's
    ``--scenarios``): each route then runs the scenarios the leaderboard would
    give it (:mod:`sumo_world.scenarios`), listed in its record's meta
    ``scenarios``; without it nothing of them exists.
    """

    town: str
    routes: Path
    agent: str
    agent_config: str | None = None
    results: Path = Path("results/embedded_results.json")
    towns_dir: Path | None = None
    traffic: str = "default"
    seed: int = 0
    route_ids: list[str] | None = None
    repetitions: int = 1
    resume: bool = True
    pictures_dir: Path | None = None
    timeout_factor: float = 1.0
    workers: int = 1
    progress: bool = True
    blocked_time_s: float = 180.0
    warmup_s: float = 10.0
    scene_setup: Callable[[Any, Any], None] | None = None
    tick_hook: Callable[["TickInfo"], None] | None = None
    route_wall_limit_s: float | None = None
    animation: bool = False
    agent_label: str | None = None
    #: runs the route jobs elsewhere (e.g. one Ray task each): ``(jobs, config, on_done)``, calling
    #: ``on_done(job, outcome)`` for each; None runs them in child processes here (``workers`` at a time)
    route_executor: Callable[[list[Any], "EvaluationConfig", Callable[[Any, "RouteOutcome"], None]], None] | None = None
    scenarios: Path | None = None
    #: given one line before any route runs: a new run, or a resumed one and how much was done
    announce: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not float(self.timeout_factor) > 0:
            raise EvaluationError(f"the timeout factor must be > 0, got {self.timeout_factor}")
        if int(self.workers) < 1:
            raise EvaluationError(f"workers must be >= 1, got {self.workers}")


@dataclass
class TickInfo:
    """What a per-tick hook of :func:`run_route` sees (in-process runs only)."""

    time_s: float
    frame: int
    ego: Any
    provider: Any
    control: Any
    infractions: list[Infraction] = field(default_factory=list)


# ----------------------------------------------------------------------------- one route


def _traffic_config(traffic: Any, town: Any = None, network: Any = None) -> Any:
    """A preset name as its :class:`TrafficConfig` for the town (the world gives it the run's seed)."""
    from sumo_world.traffic import TrafficConfig

    if not isinstance(traffic, str):
        return traffic
    return TrafficConfig.for_density(traffic, town=getattr(town, "name", None), network=network)


def run_route(route: Any, town: Any, agent: str, agent_config: str | None = None, *, seed: int = 0,
              traffic: Any = "default", blocked_time_s: float = 180.0, timeout_factor: float = 1.0,
              warmup_s: float = 10.0, progress: bool = False, pictures_dir: Path | None = None,
              scene_setup: Callable[[Any, Any], None] | None = None,
              on_tick: Callable[[TickInfo], None] | None = None, network: Any = None,
              scenarios: Any = None) -> RouteOutcome:
    """Run one route (a :class:`sumo_world.routes.RouteSpec`) in this process; returns its outcome.

    Raises :class:`sumo_world.route_planner.RoutePlanningError` for waypoints
    off the network, and whatever the agent's constructor/setup raises.
    ``scenarios``: a :class:`sumo_world.scenarios.ScenarioFile` (or a path to
    one) whose scenarios for the route's town run along it.
    """
    from driving.carla_compat import VehicleControl
    from sumo_world.agent_loader import create_agent, load_agent_class
    from sumo_world.collisions import CollisionResponse
    from sumo_world.jams import JamRelease
    from sumo_world.traffic_yield import TrafficYield
    from sumo_world.criteria import CriteriaConfig, RouteCriteria
    from sumo_world.ego import EgoState, EgoVehicle
    from sumo_world.road_network import RoadNetwork
    from sumo_world.route_planner import plan_route
    from sumo_world.scene_builder import RouteContext, SumoSceneProvider
    from sumo_world.sensors import SensorSuite
    from sumo_world.world import SENSE_RADIUS_M, SumoWorld

    wall_start = time.perf_counter()
    network = network or RoadNetwork.load(town.net_path)
    dense = plan_route(network, route)
    context = RouteContext.from_dense_route(network, dense)
    context.route_id = str(route.route_id)
    spec = load_agent_class(agent)

    world = SumoWorld(town, _traffic_config(traffic, town, network), seed=seed, network=network, warmup_s=warmup_s,
                      sense_radius_m=SENSE_RADIUS_M)
    world.start()
    try:
        yaw0 = float(dense.yaw_deg[0])
        start = EgoState(float(dense.points[0][0]), float(dense.points[0][1]), yaw0, 0.0)
        ego = EgoVehicle(start, world.ego_params)
        world.add_ego(start, dense.edges)
        if scene_setup is not None:
            scene_setup(world, context)
        manager = _scenario_manager(scenarios, town, context, dense, network, world, seed, route)
        world.step()  # as the leaderboard ticks once after spawning the hero (SUMO inserts it now)
        start_time = world.time_s
        criteria = RouteCriteria(context, network, CriteriaConfig(blocked_time_s=blocked_time_s,
                                                                  timeout_factor=timeout_factor),
                                 world.ego_params, start_time_s=start_time, world=world)
        provider = SumoSceneProvider(world, context=context, ego_params=world.ego_params,
                                     start_time_s=start_time)
        crashes = CollisionResponse(world, world.ego_params)  # a crash costs speed and time, as in CARLA
        yielding = TrafficYield(world, world.ego_params)  # SUMO's drivers stop for the ego's body in their path
        jams = JamRelease(world)  # vehicles locked in a SUMO jam leave (SUMO teleports nobody)
        agent_obj = create_agent(spec, agent_config, dense.gps_plan(), dense.world_plan())
        if hasattr(agent_obj, "set_scene_provider"):
            agent_obj.set_scene_provider(provider)
        sensors = SensorSuite(agent_obj.sensors())

        trajectory: list[TrajectorySample] = []
        actors: list[ActorSample] = []
        exceptions = 0
        raised_in_a_row = 0
        agent_crash: str | None = None
        frame = 0
        next_actor_sample = 0.0
        control = VehicleControl(throttle=0.0, steer=0.0, brake=1.0)
        bar = _route_bar(route, context.length_m, progress)
        try:
            while True:
                snap = world.snapshot()
                state = ego.state
                elapsed = snap.time_s - start_time
                if manager is not None:  # the scenarios' actors join the snapshot like any other
                    snap = manager.update(elapsed, state, context.tracker.update(state.xy),
                                          context.progress_m, snap)
                criteria.update(state, snap)
                if elapsed + 1e-9 >= next_actor_sample:
                    actors.extend(_actor_samples(snap, state, elapsed))
                    next_actor_sample += _ACTOR_SAMPLE_PERIOD_S
                if criteria.done:
                    trajectory.append(_sample(elapsed, state, control))
                    break
                provider.update(state, snap)
                try:
                    control = _checked_control(agent_obj.run_step(sensors.read(frame, state), elapsed))
                    raised_in_a_row = 0
                except Exception as exc:  # the agent's bug: count it, brake, go on (the interface's rule)
                    exceptions += 1
                    raised_in_a_row += 1
                    if exceptions <= 3:
                        logger.warning("route %s: agent run_step raised at t=%.2f s: %s", route.route_id,
                                       elapsed, exc)
                        logger.debug("%s", traceback.format_exc())
                    control = VehicleControl(throttle=0.0, steer=0.0, brake=1.0)
                    if raised_in_a_row >= AGENT_CRASH_TICKS:
                        agent_crash = (f"run_step raised on {raised_in_a_row} ticks in a row, last at "
                                       f"t={elapsed:.2f} s: {type(exc).__name__}: {exc}")
                        trajectory.append(_sample(elapsed, state, control))
                        break
                if manager is not None:
                    control = manager.perturb(control)
                trajectory.append(_sample(elapsed, state, control))
                if on_tick is not None:
                    on_tick(TickInfo(elapsed, frame, state, provider, control, list(criteria.infractions)))
                ego.apply(control.throttle, control.steer, control.brake, world.step_s,
                          hand_brake=bool(getattr(control, "hand_brake", False)),
                          reverse=bool(getattr(control, "reverse", False)))
                ego.state = crashes.resolve(state, ego.state, snap)
                held = crashes.held_sumo_ids()
                yielding.update(ego.state, snap, held)
                jams.update(snap.time_s, held)
                world.move_ego(ego.state)
                world.step()
                frame += 1
                if bar is not None and frame % 20 == 0:
                    bar.n = round(criteria.route_completion_percent, 1)
                    bar.refresh()
        finally:
            if bar is not None:
                bar.n = round(criteria.route_completion_percent, 1)
                bar.close()
            reported = _reported_exceptions(agent_obj)
            agent_meta = _agent_route_meta(agent_obj, route.route_id)
            try:
                agent_obj.destroy()
            except Exception:
                logger.warning("route %s: agent destroy() raised:\n%s", route.route_id, traceback.format_exc())
        duration_game = world.time_s - start_time
    finally:
        world.close()

    outcome = RouteOutcome(
        route_id=str(route.route_id), town=str(town.name),
        status=STATUS_AGENT_CRASHED if agent_crash is not None else criteria.finish(),
        route_completion_percent=float(criteria.route_completion_percent),
        route_length_m=float(context.length_m), duration_game_s=float(duration_game),
        duration_system_s=float(time.perf_counter() - wall_start),
        infractions=list(criteria.infractions),
        outside_route_lanes_percent=float(criteria.outside_route_lanes_percent),
        trajectory=trajectory, actors=actors,
        route_xy=[(float(x), float(y)) for x, y in context.points],
        agent_exceptions=exceptions + reported,
        meta={**agent_meta, **({"error": agent_crash} if agent_crash is not None else {}),
              "agent_exceptions_raised": exceptions, "agent_exceptions_reported": reported,
              "seed": int(seed), "traffic": traffic if isinstance(traffic, str) else repr(traffic),
              "timeout_s": float(criteria.timeout_s), "sensors_unsupported": sensors.unsupported,
              "infraction_events": infraction_events(criteria.infractions),
              **({"scenarios": manager.records(criteria.infractions, duration_game)} if manager is not None else {}),
              "world_warnings": list(world.warnings), "jam_releases": len(jams.released),
              "waits_for_ego_ended": yielding.waits_ended,
              _SENSORS_KEY: list(sensors.types)},
    )
    if pictures_dir is not None:
        _picture(outcome, network, Path(pictures_dir))
    return outcome


def _scenario_manager(scenarios: Any, town: Any, context: Any, dense: Any, network: Any, world: Any,
                      seed: int, route: Any) -> Any:
    """The route's :class:`sumo_world.scenarios.ScenarioManager` (None without a scenario file)."""
    if scenarios is None:
        return None
    from sumo_world.scenarios import ScenarioManager, read_scenario_file

    scenario_file = read_scenario_file(scenarios) if isinstance(scenarios, (str, Path)) else scenarios
    return ScenarioManager.for_route(scenario_file, str(town.name), context, dense, network, world, seed,
                                     waypoints=getattr(route, "waypoints", None))


def _checked_control(control: Any) -> Any:
    """The agent's control, if it has finite throttle, steer and brake (TypeError otherwise)."""
    try:
        values = [float(control.throttle), float(control.steer), float(control.brake)]
    except (AttributeError, TypeError, ValueError):
        raise TypeError(f"run_step returned {type(control).__name__}, not a carla.VehicleControl") from None
    if not all(value == value for value in values):  # NaN
        raise TypeError(f"run_step returned a control with NaN: throttle, steer, brake = {values}")
    return control


def infraction_events(infractions: list[Infraction]) -> list[dict[str, Any]]:
    """The infractions as ``{kind, time_s, x, y}`` for the record's meta.

    ``time_s`` counts simulated seconds from the route's start, the clock of the
    scenes' ``timestamp_s`` (both subtract the same start time), so a recorded
    tick's time to its next infraction is a plain difference; the leaderboard's
    messages carry a place but no time.
    """
    return [{"kind": i.kind, "time_s": float(i.time_s), "x": round(float(i.x), 3), "y": round(float(i.y), 3)}
            for i in infractions]


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


def _sample(elapsed: float, state: Any, control: Any) -> TrajectorySample:
    return TrajectorySample(round(elapsed, 4), float(state.x), float(state.y), float(state.yaw_deg),
                            float(state.speed_mps), float(control.throttle), float(control.steer),
                            float(control.brake))


def _actor_samples(snap: Any, state: Any, elapsed: float) -> list[ActorSample]:
    import numpy as np

    out = []
    for actors in (snap.vehicles, snap.pedestrians):
        if not len(actors):
            continue
        near = np.nonzero(np.linalg.norm(actors.xy - state.xy, axis=1) < _ACTOR_SAMPLE_RADIUS_M)[0]
        for k in near:
            actor_type = actors.types[k]
            kind = "walker" if actor_type == "pedestrian" else ("bicycle" if actor_type == "bicycle" else "vehicle")
            out.append(ActorSample(round(elapsed, 4), int(actors.ids[k]), kind, float(actors.xy[k][0]),
                                   float(actors.xy[k][1]), float(actors.yaw_deg[k]),
                                   float(actors.half_length_m[k]), float(actors.half_width_m[k])))
    return out


def _picture(outcome: RouteOutcome, network: Any, folder: Path, animation: bool = False) -> None:
    try:
        from sumo_world.birdseye import render_route_animation, render_route_png

        folder.mkdir(parents=True, exist_ok=True)
        stem = f"route_{_safe(outcome.route_id)}_rep{outcome.meta.get('repetition', 0)}"
        render_route_png(outcome, network, folder / f"{stem}.png")
        if animation:
            render_route_animation(outcome, network, folder / f"{stem}.gif")
    except Exception:  # a picture must never cost the route's result
        logger.warning("route %s: drawing the picture failed:\n%s", outcome.route_id, traceback.format_exc())


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


# ----------------------------------------------------------------------------- child processes


def _child_main(conn: Any, job: dict[str, Any], env: dict[str, str] | None = None, cwd: str | None = None,
                evaluator_pid: int | None = None) -> None:
    """Entry of a route's child process: run it, send ("ok", outcome) or ("error", status, message)."""
    from langprop_common.processes import die_with

    # Its parent is the forkserver, which outlives the evaluator while a child
    # runs: watch the evaluator itself, so a kill -9 of collect/dagger/evaluate
    # leaves no route (nor its sandbox workers) running.
    if evaluator_pid is not None:
        die_with(evaluator_pid)
    logging.basicConfig(level=logging.WARNING)
    if cwd:
        os.chdir(cwd)
    if env is not None:
        for key in [k for k in os.environ if k.startswith("LANGPROP_") and k not in env]:
            del os.environ[key]
        os.environ.update(env)
    try:
        outcome = run_route(**job)
        conn.send(("ok", outcome))
    except BaseException as exc:  # report every failure to the parent, then exit
        from sumo_world.agent_loader import AgentLoadError
        from sumo_world.route_planner import RoutePlanningError

        if isinstance(exc, (RoutePlanningError, AgentLoadError)):
            status = STATUS_CRASHED
        elif _raised_by_agent(exc):
            status = STATUS_SETUP_FAILED
        else:
            status = STATUS_CRASHED
        conn.send(("error", status, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


def _raised_by_agent(exc: BaseException) -> bool:
    """True when the innermost frame of the traceback is outside our packages (the agent's code)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    if last is None:
        return False
    ours = (os.sep + "sumo_world" + os.sep, os.sep + "driving" + os.sep, "libsumo", "multiprocessing")
    return not any(part in last for part in ours)


def _mp_context() -> Any:
    if sys.platform.startswith("linux"):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "shapely", "sumolib", "sumo_world.runner"])
        return context
    return multiprocessing.get_context("spawn")


def _failed_outcome(route: Any, town_name: str, status: str, message: str, wall_s: float,
                    length_m: float = 0.0) -> RouteOutcome:
    return RouteOutcome(route_id=str(route.route_id), town=town_name, status=status,
                        route_completion_percent=0.0, route_length_m=length_m, duration_game_s=0.0,
                        duration_system_s=wall_s, meta={"error": message})


@dataclass
class _Job:
    index: int
    repetition: int
    route: Any
    town: Any


def _run_jobs(jobs: list[_Job], config: EvaluationConfig, on_done: Callable[[_Job, RouteOutcome], None]) -> None:
    """Run jobs in child processes, ``config.workers`` at a time, in index order of start."""
    context = _mp_context()
    pending = list(jobs)
    running: dict[Any, tuple[_Job, Any, Any, float]] = {}  # sentinel -> (job, process, conn, start)
    workers = max(1, int(config.workers))
    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop(0)
            parent_conn, child_conn = context.Pipe(duplex=False)
            kwargs = dict(route=job.route, town=job.town, agent=config.agent, agent_config=config.agent_config,
                          seed=int(config.seed) + job.repetition, traffic=config.traffic,
                          blocked_time_s=config.blocked_time_s, timeout_factor=config.timeout_factor,
                          warmup_s=config.warmup_s, progress=config.progress and workers == 1,
                          pictures_dir=None, scene_setup=config.scene_setup, on_tick=config.tick_hook,
                          scenarios=config.scenarios)
            # The forkserver's environment and folder date from its start: hand over today's.
            env = {key: value for key, value in os.environ.items() if key.startswith("LANGPROP_")}
            process = context.Process(target=_child_main, args=(child_conn, kwargs, env, os.getcwd(), os.getpid()),
                                      daemon=True,
                                      name=f"langprop-route-{job.route.route_id}")
            process.start()
            child_conn.close()
            running[process.sentinel] = (job, process, parent_conn, time.perf_counter())
        ready = multiprocessing.connection.wait(
            [conn for _, _, conn, _ in running.values()] + list(running.keys()), timeout=1.0)
        for sentinel, (job, process, conn, started) in list(running.items()):
            limit = config.route_wall_limit_s
            overdue = limit is not None and time.perf_counter() - started > limit and process.is_alive()
            message = None
            if overdue:
                process.kill()
            else:
                if conn not in ready and sentinel not in ready:
                    continue
                try:
                    if conn.poll():
                        message = conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is None and process.is_alive():
                    continue  # the pipe woke us but holds nothing yet
            process.join(timeout=30)
            conn.close()
            del running[sentinel]
            wall = time.perf_counter() - started
            town_name = getattr(job.town, "name", str(job.town))
            if overdue:
                outcome = _failed_outcome(job.route, town_name, STATUS_CRASHED,
                                          f"killed after the wall-clock limit of {limit:.0f} s", wall)
                logger.error("route %s: %s", job.route.route_id, outcome.meta["error"])
            elif message is None:
                code = process.exitcode
                outcome = _failed_outcome(job.route, town_name, STATUS_CRASHED,
                                          f"the simulation process died (exit code {code})", wall)
                logger.error("route %s: the simulation process died (exit code %s); recorded as %r",
                             job.route.route_id, code, STATUS_CRASHED)
            elif message[0] == "ok":
                outcome = message[1]
            else:
                _, status, text, tb = message
                logger.error("route %s failed: %s", job.route.route_id, text)
                logger.debug("route %s: the traceback in its process:\n%s", job.route.route_id, tb)
                outcome = _failed_outcome(job.route, town_name, status, text, wall)
            outcome.meta["repetition"] = job.repetition
            on_done(job, outcome)


def run_job(job: Any, config: EvaluationConfig) -> RouteOutcome:
    """Run one route job of :func:`evaluate` in a child process of this process; its outcome.

    For route executors that place jobs on other machines (the job and config
    travel there; the route then runs as it would locally).
    """
    outcomes: list[RouteOutcome] = []
    single = dataclasses.replace(config, workers=1, progress=False, route_executor=None, announce=None)
    _run_jobs([job], single, lambda _job, outcome: outcomes.append(outcome))
    return outcomes[0]


def crashed_outcome(job: Any, message: str, wall_s: float = 0.0) -> RouteOutcome:
    """The outcome of a job whose run died where it ran (recorded as a crashed route)."""
    outcome = _failed_outcome(job.route, getattr(job.town, "name", str(job.town)), STATUS_CRASHED, message, wall_s)
    outcome.meta["repetition"] = job.repetition
    return outcome


# ----------------------------------------------------------------------------- a route set


def _resolve_towns(config: EvaluationConfig, routes: list[Any]) -> dict[str, Any]:
    from sumo_world.towns import TownStore

    store = TownStore(config.towns_dir)
    towns: dict[str, Any] = {}
    for route in routes:
        name = config.town or getattr(route, "town", "")
        if not name:
            raise EvaluationError(f"route {route.route_id} names no town and no --town was given")
        if config.town and getattr(route, "town", "") and route.town != config.town:
            raise EvaluationError(f"{config.routes}: route {route.route_id} is in town {route.town!r}, "
                                  f"but the evaluation is for town {config.town!r} (filter with --route-id "
                                  f"or give the matching --town)")
        if name not in towns:
            towns[name] = store.get(name)  # TownNotFoundError lists known towns and the import command
    return towns


def evaluate(config: EvaluationConfig) -> dict[str, Any]:
    """Run the route set; returns the results document (also written to ``config.results``).

    Finished (route, repetition) runs in an existing results file are skipped
    when ``config.resume`` (crashed ones run again). Raises
    :class:`EvaluationError` (or the routes/towns modules' errors) before
    anything runs when the routes file, town or agent is unusable.
    """
    from sumo_world.agent_loader import AgentLoadError, agent_name, load_agent_class
    from sumo_world.results import RETRY_STATUSES, ResultsFile
    from sumo_world.routes import read_routes

    routes = read_routes(Path(config.routes))
    if config.route_ids:
        wanted = [str(r) for r in config.route_ids]
        known = {str(r.route_id) for r in routes}
        missing = [r for r in wanted if r not in known]
        if missing:
            raise EvaluationError(f"{config.routes}: no route with id {', '.join(missing)} "
                                  f"(ids in the file: {', '.join(sorted(known)) or 'none'})")
        routes = [r for r in routes if str(r.route_id) in wanted]
    if not routes:
        raise EvaluationError(f"{config.routes}: no routes to run")
    if config.repetitions < 1:
        raise EvaluationError(f"repetitions must be >= 1, got {config.repetitions}")
    towns = _resolve_towns(config, routes)
    if config.scenarios is not None:
        from sumo_world.scenarios import read_scenario_file

        read_scenario_file(config.scenarios)  # a malformed file fails here, before any route runs
    try:
        load_agent_class(config.agent)  # fail early, before any route runs
    except AgentLoadError as exc:
        raise EvaluationError(str(exc)) from exc

    run_meta = {"agent": config.agent_label or agent_name(config.agent), "seed": int(config.seed),
                # a TrafficConfig (e.g. a preset without walkers) is written as its repr, as in each route's meta
                "traffic": config.traffic if isinstance(config.traffic, str) else repr(config.traffic),
                "world": "embedded"}
    if config.scenarios is not None:
        run_meta["scenario_file"] = str(config.scenarios)
    results = ResultsFile(config.results, resume=config.resume, run_meta=run_meta,
                          provenance=run_provenance(config, [str(r.route_id) for r in routes]))
    jobs: list[_Job] = []
    index = 0
    for repetition in range(config.repetitions):
        for route in routes:
            jobs.append(_Job(index, repetition, route, towns[config.town or route.town]))
            index += 1
    results.set_total_routes(len(jobs))
    done = results.finished_runs()
    todo = [job for job in jobs if (str(job.route.route_id), job.repetition) not in done]
    retried = sum(1 for record in results.records()
                  if record["status"] in RETRY_STATUSES and int(record.get("index", -1)) < len(jobs))
    if len(todo) < len(jobs) or retried:
        line = (f"resuming {config.results}: {len(jobs) - len(todo)} of {len(jobs)} runs done, running the "
                f"other {len(todo)}" + (f" ({retried} that could not run before)" if retried else ""))
    else:
        line = f"new run: {len(jobs)} route runs into {config.results}" + (
            f" (the previous file is kept as {results.backup})" if results.backup is not None else "")
    logger.info("%s", line)
    if config.announce is not None:
        config.announce(line)

    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="routes", unit="route", position=0)
    pictures: list[tuple[RouteOutcome, Any]] = []

    sensors_known = bool(results.to_dict().get("sensors"))

    def on_done(job: _Job, outcome: RouteOutcome) -> None:
        nonlocal sensors_known
        sensor_types = outcome.meta.pop(_SENSORS_KEY, None)
        if sensor_types and not sensors_known:
            results.set_sensors(sensor_types)
            sensors_known = True
        results.add(outcome, job.index, job.repetition)
        if config.pictures_dir is not None and outcome.trajectory:
            pictures.append((outcome, job.town))
        if bar is not None:
            bar.set_postfix_str(f"{job.route.route_id}: {outcome.status}")
            bar.update(1)

    try:
        (config.route_executor or _run_jobs)(todo, config, on_done)
    finally:
        if bar is not None:
            bar.close()
    if pictures:
        _draw_pictures(pictures, Path(config.pictures_dir), config.animation)
    if len(results.records()) >= len(jobs):
        results.finalize()
    return results.to_dict()


def run_provenance(config: EvaluationConfig, route_ids: list[str]) -> dict[str, Any]:
    """What produces a run's results (stored in the results file; a resume must match it).

    The agent by name and by digest of its file and of its config or checkpoint
    (a config that names a checkpoint adds that checkpoint's digest), the routes
    file's digest and the routes run, traffic, seed, scenario file digest,
    repetitions, the timeout factor and the package version.
    """
    from importlib.metadata import PackageNotFoundError, version

    from sumo_world.results import path_digest

    try:
        package_version = version("langprop-driver")
    except PackageNotFoundError:  # a source tree that is not installed
        package_version = "unknown"
    agent_file = None if str(config.agent).startswith("builtin:") else config.agent
    return {
        "agent": config.agent_label or str(config.agent),
        "agent_digest": path_digest(agent_file),
        "agent_config_digest": _config_digest(config.agent_config),
        "routes_digest": path_digest(config.routes),
        "route_ids": list(route_ids),
        "traffic": config.traffic if isinstance(config.traffic, str) else repr(config.traffic),
        "seed": int(config.seed),
        "scenarios_digest": path_digest(config.scenarios),
        "repetitions": int(config.repetitions),
        "timeout_factor": float(config.timeout_factor),
        "version": package_version,
    }


def _config_digest(agent_config: str | None) -> str | None:
    """The digest of an agent config (file or checkpoint folder), with that of a checkpoint a JSON config names."""
    from sumo_world.results import path_digest

    if not agent_config:
        return None
    path = Path(agent_config)
    digest = path_digest(path)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            named = json.loads(path.read_text(encoding="utf-8")).get("checkpoint")
        except (ValueError, AttributeError, OSError):
            named = None
        if isinstance(named, str) and named:
            checkpoint = Path(named) if Path(named).is_absolute() else path.parent / named
            digest = f"{digest}+{path_digest(checkpoint if checkpoint.exists() else Path(named))}"
    return digest


def _draw_pictures(pictures: list[tuple[RouteOutcome, Any]], folder: Path, animation: bool = False) -> None:
    from sumo_world.birdseye import road_drawing
    from sumo_world.road_network import RoadNetwork

    drawings: dict[str, Any] = {}
    for outcome, town in pictures:
        try:
            if town.name not in drawings:  # loading a town's lanes costs more than drawing a route
                drawings[town.name] = road_drawing(RoadNetwork.load(town.net_path))
        except Exception:
            logger.warning("town %s: preparing the road drawing failed:\n%s", town.name, traceback.format_exc())
            return
        _picture(outcome, drawings[town.name], folder, animation)
