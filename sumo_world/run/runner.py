"""Running leaderboard agents on leaderboard routes in the embedded world.

:func:`evaluate` runs a route file (every route x repetition) and writes one
leaderboard-format results JSON (:class:`sumo_world.scoring.results.ResultsFile`,
resumable). Every route runs in a child process of its own: libsumo holds one
simulation per process and takes the process down when SUMO aborts, so a
dying child becomes a ``"Failed - Simulation crashed"`` record and the other
routes' results are kept. :func:`run_route` runs one route in the current
process (what the child does).

A route runs as a :class:`sumo_world.run.route_run.RouteRun`: the world, the
agent, and the tick's components in their one documented order
(:func:`sumo_world.run.tick_components.tick_components`). Exceptions raised by
``run_step`` are counted, the car brakes for that tick, and the run goes on;
the record's ``agent_exceptions`` adds the failures an agent caught itself and
counted in an integer ``exception_count`` attribute (the LangProp and expert
agents brake on a failing policy instead of raising). An agent may also report
extras about its run with a ``route_meta() -> dict`` method (the LangProp agent
counts its policy's timeouts there); they land in the record's meta. The meta's
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
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sumo_world.pictures.route_pictures import draw_pictures
from sumo_world.run.route_run import SENSORS_KEY, STATUS_AGENT_CRASHED, RouteSettings, infraction_events
from sumo_world.run.tick_components import AGENT_CRASH_TICKS, TickInfo
from sumo_world.scoring.records import RouteOutcome

if TYPE_CHECKING:  # the world's modules load libsumo: imported when a route runs
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.files import RouteSpec
    from sumo_world.scenarios.definitions import ScenarioFile
    from sumo_world.towns.info import TownInfo
    from sumo_world.traffic.demand import TrafficConfig

__all__ = ["EvaluationConfig", "evaluate", "evaluate_all", "run_route", "RouteJob", "route_settings",
           "run_route_jobs", "run_job", "crashed_outcome", "TickInfo", "EvaluationError",
           "STATUS_CRASHED", "STATUS_SETUP_FAILED", "STATUS_AGENT_CRASHED", "AGENT_CRASH_TICKS",
           "infraction_events", "run_provenance"]

logger = logging.getLogger(__name__)

STATUS_CRASHED = "Failed - Simulation crashed"
STATUS_SETUP_FAILED = "Failed - Agent couldn't be set up"

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
    #: runs the route jobs elsewhere (e.g. one Ray task each): ``(jobs, on_done)``, calling
    #: ``on_done(job, outcome)`` for each; None runs them in child processes here (``workers`` at a time)
    route_executor: Callable[[list["RouteJob"], Callable[["RouteJob", RouteOutcome], None]], None] | None = None
    scenarios: Path | None = None
    #: given one line before any route runs: a new run, or a resumed one and how much was done
    announce: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not float(self.timeout_factor) > 0:
            raise EvaluationError(f"the timeout factor must be > 0, got {self.timeout_factor}")
        if int(self.workers) < 1:
            raise EvaluationError(f"workers must be >= 1, got {self.workers}")


# ----------------------------------------------------------------------------- one route


def run_route(route: RouteSpec, town: TownInfo, agent: str, agent_config: str | None = None, *, seed: int = 0,
              traffic: str | TrafficConfig = "default", blocked_time_s: float = 180.0,
              timeout_factor: float = 1.0, warmup_s: float = 10.0, progress: bool = False,
              pictures_dir: Path | None = None, scene_setup: Callable[[Any, Any], None] | None = None,
              on_tick: Callable[[TickInfo], None] | None = None, network: RoadNetwork | None = None,
              scenarios: ScenarioFile | str | Path | None = None) -> RouteOutcome:
    """Run one route in this process; returns its outcome (a :class:`sumo_world.run.route_run.RouteRun`).

    Raises :class:`sumo_world.routes.planner.RoutePlanningError` for waypoints
    off the network, and whatever the agent's constructor/setup raises.
    ``scenarios``: a :class:`sumo_world.scenarios.ScenarioFile` (or a path to
    one) whose scenarios for the route's town run along it. The other keywords
    are those of :class:`sumo_world.run.route_run.RouteSettings`.
    """
    from sumo_world.run.route_run import RouteRun, RouteSettings

    settings = RouteSettings(seed=seed, traffic=traffic, blocked_time_s=blocked_time_s,
                             timeout_factor=timeout_factor, warmup_s=warmup_s, progress=progress,
                             pictures_dir=pictures_dir, scene_setup=scene_setup, on_tick=on_tick,
                             scenarios=scenarios)
    return RouteRun(route, town, agent, agent_config, settings, network).run()


# ----------------------------------------------------------------------------- child processes


def _child_main(conn: Any, job: dict[str, Any], env: dict[str, str] | None = None, cwd: str | None = None,
                evaluator_pid: int | None = None, scratch: str | None = None) -> None:
    """Entry of a route's child process: run it, send ("ok", outcome) or ("error", status, message).

    ``scratch``: the folder its temporary files go to (the world's route files), which the parent
    removes when the child has ended, however it ended.
    """
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
    if scratch is not None:
        tempfile.tempdir = scratch
    try:
        outcome = run_route(**job)
        conn.send(("ok", outcome))
    except BaseException as exc:  # report every failure to the parent, then exit
        from sumo_world.agents.loader import AgentLoadError
        from sumo_world.routes.planner import RoutePlanningError

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
        context.set_forkserver_preload(["numpy", "shapely", "sumolib", "sumo_world.run.runner"])
        return context
    return multiprocessing.get_context("spawn")


def _failed_outcome(route: Any, town_name: str, status: str, message: str, wall_s: float,
                    length_m: float = 0.0) -> RouteOutcome:
    return RouteOutcome(route_id=str(route.route_id), town=town_name, status=status,
                        route_completion_percent=0.0, route_length_m=length_m, duration_game_s=0.0,
                        duration_system_s=wall_s, meta={"error": message})


@dataclass(frozen=True)
class RouteJob:
    """One route run of an evaluation: the route, its town, its repetition and index in the evaluation's
    results file, and the evaluation it belongs to (its agent and world settings)."""

    index: int
    repetition: int
    route: Any
    town: Any
    config: EvaluationConfig


def route_settings(config: EvaluationConfig, repetition: int = 0, progress: bool = False) -> RouteSettings:
    """How a route of ``config`` runs (:class:`sumo_world.route_run.RouteSettings`): the one mapping from an
    evaluation to its route runs; repetition ``r`` runs with seed ``config.seed + r``."""
    return RouteSettings(seed=int(config.seed) + repetition, traffic=config.traffic,
                         blocked_time_s=config.blocked_time_s, timeout_factor=config.timeout_factor,
                         warmup_s=config.warmup_s, progress=progress, pictures_dir=None,
                         scene_setup=config.scene_setup, on_tick=config.tick_hook, scenarios=config.scenarios)


def run_route_jobs(jobs: list[RouteJob], on_done: Callable[[RouteJob, RouteOutcome], None], workers: int = 1) -> None:
    """The job scheduler: each job in a child process of its own, ``workers`` at a time, started in list order.

    ``on_done(job, outcome)`` gets every job's outcome as it finishes; a child
    that dies, raises or outlives its ``route_wall_limit_s`` becomes a failed
    outcome, and the other jobs go on.
    """
    context = _mp_context()
    pending = list(jobs)
    running: dict[Any, tuple[RouteJob, Any, Any, float, str]] = {}  # sentinel -> (job, process, conn, start, scratch)
    workers = max(1, int(workers))
    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop(0)
            config = job.config
            parent_conn, child_conn = context.Pipe(duplex=False)
            settings = route_settings(config, job.repetition, progress=config.progress and workers == 1)
            kwargs = dict(route=job.route, town=job.town, agent=config.agent, agent_config=config.agent_config,
                          **{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})
            # The forkserver's environment and folder date from its start: hand over today's.
            env = {key: value for key, value in os.environ.items() if key.startswith("LANGPROP_")}
            # A child killed at its wall limit cannot clean up its world's folder: the parent does.
            scratch = tempfile.mkdtemp(prefix="langprop_route_")
            process = context.Process(target=_child_main,
                                      args=(child_conn, kwargs, env, os.getcwd(), os.getpid(), scratch),
                                      daemon=True,
                                      name=f"langprop-route-{job.route.route_id}")
            process.start()
            child_conn.close()
            running[process.sentinel] = (job, process, parent_conn, time.perf_counter(), scratch)
        ready = multiprocessing.connection.wait(
            [conn for _, _, conn, _, _ in running.values()] + list(running.keys()), timeout=1.0)
        for sentinel, (job, process, conn, started, scratch) in list(running.items()):
            limit = job.config.route_wall_limit_s
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
            shutil.rmtree(scratch, ignore_errors=True)
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


def run_job(job: RouteJob) -> RouteOutcome:
    """Run one route job in a child process of this process; its outcome.

    For route executors that place jobs on other machines (the job travels
    there; the route then runs as it would locally).
    """
    outcomes: list[RouteOutcome] = []
    single = dataclasses.replace(job, config=dataclasses.replace(job.config, progress=False, route_executor=None,
                                                                 announce=None))
    run_route_jobs([single], lambda _job, outcome: outcomes.append(outcome))
    return outcomes[0]


def crashed_outcome(job: RouteJob, message: str, wall_s: float = 0.0) -> RouteOutcome:
    """The outcome of a job whose run died where it ran (recorded as a crashed route)."""
    outcome = _failed_outcome(job.route, getattr(job.town, "name", str(job.town)), STATUS_CRASHED, message, wall_s)
    outcome.meta["repetition"] = job.repetition
    return outcome


# ----------------------------------------------------------------------------- a route set


def _resolve_towns(config: EvaluationConfig, routes: list[Any]) -> dict[str, Any]:
    from sumo_world.towns.store import TownStore

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
    return evaluate_all([config])[0]


def evaluate_all(configs: list[EvaluationConfig], workers: int | None = None,
                 route_executor: Callable[..., None] | None = None,
                 progress: str | None = None) -> list[dict[str, Any]]:
    """Run several evaluations (each its own routes, agent and results file) as one set of route jobs.

    Every evaluation is checked and planned before any route runs (as
    :func:`evaluate` does for one); then all their jobs go to one scheduler:
    ``route_executor`` (default: the first config's), else
    :func:`run_route_jobs` with ``workers`` (default: the first config's)
    child processes at a time. ``progress``: the label of one progress bar
    over all the jobs (None: none beyond the configs' own). Returns each
    evaluation's results document, in the order of ``configs``.
    """
    if not configs:
        return []
    plans = [_Evaluation.plan(config) for config in configs]
    owner = {id(job): plan for plan in plans for job in plan.todo}
    todo = [job for plan in plans for job in plan.todo]
    executor = route_executor or configs[0].route_executor
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=progress, unit="route", disable=progress is None, leave=False)

    def on_done(job: RouteJob, outcome: RouteOutcome) -> None:
        owner[id(job)].on_done(job, outcome)
        bar.update(1)

    try:
        if not todo:
            pass  # all done already (a resumed run): nothing to start, not even a Ray session
        elif executor is not None:
            executor(todo, on_done)
        else:
            run_route_jobs(todo, on_done, workers=configs[0].workers if workers is None else workers)
    finally:
        bar.close()
        for plan in plans:
            plan.close_bar()
    return [plan.finish() for plan in plans]


class _Evaluation:
    """One evaluation's results file and route jobs: what runs, and where each outcome is written."""

    def __init__(self, config: EvaluationConfig, results: Any, jobs: list[RouteJob], todo: list[RouteJob]) -> None:
        self.config = config
        self.results = results
        self.jobs = jobs
        self.todo = todo
        self.pictures: list[tuple[RouteOutcome, Any]] = []
        self.sensors_known = bool(results.to_dict().get("sensors"))
        self.bar = None
        if config.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="routes", unit="route", position=0)

    @classmethod
    def plan(cls, config: EvaluationConfig) -> "_Evaluation":
        """Check the routes, towns, scenario file and agent, open the results file, list the runs to do."""
        from sumo_world.agents.loader import AgentLoadError, agent_name, load_agent_class
        from sumo_world.routes.files import read_routes
        from sumo_world.scoring.results import RETRY_STATUSES, ResultsFile

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
        jobs: list[RouteJob] = []
        index = 0
        for repetition in range(config.repetitions):
            for route in routes:
                jobs.append(RouteJob(index, repetition, route, towns[config.town or route.town], config))
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
        return cls(config, results, jobs, todo)

    def on_done(self, job: RouteJob, outcome: RouteOutcome) -> None:
        """Write a finished run into the results file (and keep its trajectory for the pictures)."""
        sensor_types = outcome.meta.pop(SENSORS_KEY, None)
        if sensor_types and not self.sensors_known:
            self.results.set_sensors(sensor_types)
            self.sensors_known = True
        self.results.add(outcome, job.index, job.repetition)
        if self.config.pictures_dir is not None and outcome.trajectory:
            self.pictures.append((outcome, job.town))
        if self.bar is not None:
            self.bar.set_postfix_str(f"{job.route.route_id}: {outcome.status}")
            self.bar.update(1)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self) -> dict[str, Any]:
        """Draw the pictures, finalize a complete results file; the results document."""
        if self.pictures:
            draw_pictures(self.pictures, Path(self.config.pictures_dir), self.config.animation)
        if len(self.results.records()) >= len(self.jobs):
            self.results.finalize()
        return self.results.to_dict()


def run_provenance(config: EvaluationConfig, route_ids: list[str]) -> dict[str, Any]:
    """What produces a run's results (stored in the results file; a resume must match it).

    The agent by name and by digest of its file and of its config or checkpoint
    (a config that names a checkpoint adds that checkpoint's digest), the routes
    file's digest and the routes run, traffic, seed, scenario file digest,
    repetitions, the timeout factor and the package version.
    """
    from importlib.metadata import PackageNotFoundError, version

    from sumo_world.scoring.results import path_digest

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
    from sumo_world.scoring.results import path_digest

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
