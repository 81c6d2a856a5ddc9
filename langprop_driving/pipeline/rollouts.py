"""Recorded rollouts: run an agent on routes, one results file per route, and import what it saw.

Used by ``collect`` (the expert drives) and ``dagger`` (the current script
drives, the expert labels). Per route:

1. the agent runs through ``sumo_world.run.runner.evaluate_all`` (all the
   stage's routes through the one route scheduler, each built by
   :meth:`WorldConfig.evaluation`) with a JSON agent
   config that names its recording directory (``rollouts/<stage>/<route>/``),
   route id and run id, and writes leaderboard results
   (``rollouts/<stage>/results/<route>.json``);
2. the recorded ticks are marked with the seconds to the rollout's next
   infraction (:func:`mark_infractions`), labelled by the expert where the
   policy drove, and appended to the aggregate dataset as run
   ``<stage>-<route>``.

Resuming: a route whose run id is already in the dataset is done; a route with
finished results is imported without running again; anything else is wiped and
run again (a killed run leaves a partial recording that must not be mixed in).
"""
from __future__ import annotations

import logging
import math
import re
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from driving.dataset import SceneDataset, SceneRecord
from driving.penalties import ROUTE_ENDING_INFRACTIONS
from sumo_world.scoring.results import RETRY_STATUSES  # runs that never really drove run again, as on the runner's resume
from team_code.config import DEFAULT_TIMEOUT_S

from langprop_driving.pipeline.config import WorkDir, WorldConfig, atomic_write_json

__all__ = [
    "InfractionEvent", "RolloutResult", "infraction_events", "mark_infractions",
    "relabel_records", "record_rollouts", "route_records_of", "import_recording", "import_rollout",
    "rollout_agent_settings", "warn_policy_timeouts", "mean_driving_score", "raise_on_failed_routes",
    "finished_route_record", "route_record", "run_evaluations",
]

log = logging.getLogger(__name__)

# "... at (x=12.3, y=-4.5, z=0.0)" in the leaderboard's infraction messages
_LOCATION_RE = re.compile(r"x=\s*(-?[\d.]+(?:[eE][-+]?\d+)?),\s*y=\s*(-?[\d.]+(?:[eE][-+]?\d+)?)")
# point events that a policy's action can cause (off-lane driving is a share, not an event)
_POINT_EVENTS = ("collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light",
                 "stop_infraction", *ROUTE_ENDING_INFRACTIONS)


@dataclass(frozen=True)
class InfractionEvent:
    kind: str
    time_s: float


@dataclass(frozen=True)
class RolloutResult:
    """One route run: its leaderboard record and how many ticks it added to the dataset."""

    route_id: str
    run_id: str
    record: dict[str, Any] | None
    n_records: int
    error: str | None = None


def mean_driving_score(results: Sequence[RolloutResult]) -> float | None:
    """Mean driving score of the routes that were driven; None when none was."""
    scores = [float(r.record["scores"]["score_composed"]) for r in results if r.record is not None]
    return statistics.fmean(scores) if scores else None


def raise_on_failed_routes(results: Sequence[RolloutResult], where: str) -> None:
    """Raise RuntimeError naming every route of ``results`` that failed, and its error (``where``: the stage)."""
    failed = [r for r in results if r.record is None]
    if failed:
        raise RuntimeError(f"{where}: " + "; ".join(f"route {r.route_id} failed: {r.error}" for r in failed)
                           + " (rerun to retry them)")


def run_evaluations(evaluations: Sequence[Any], world: WorldConfig, desc: str, progress: bool = True) -> None:
    """Run the route jobs of ``evaluations`` (:meth:`WorldConfig.evaluation`, each with its results file)
    through the runner's one scheduler: ``world.workers`` at a time, or on ``world``'s Ray cluster."""
    from sumo_world.run.runner import evaluate_all

    folders = sorted({str(Path(e.results).parent) for e in evaluations} | {str(e.routes) for e in evaluations})
    # one executor for all of them: its Ray workers must see every routes file and results folder
    evaluate_all(list(evaluations), workers=world.workers, route_executor=world.route_executor(*folders),
                 progress=desc if progress else None)


def route_records_of(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The route records of a results JSON."""
    return list((results.get("_checkpoint") or {}).get("records") or [])



def route_record(results_path: Path) -> dict[str, Any] | None:
    """The route's record in a one-route results file (finished or not); None when there is none."""
    if not results_path.is_file():
        return None
    from sumo_world.scoring.results import load_results

    try:
        records = route_records_of(load_results(results_path))
    except Exception as exc:  # an unreadable file means the route runs again
        log.warning("%s: unreadable results (%s); the route runs again", results_path, exc)
        return None
    return records[0] if records else None


def _finished_record(results_path: Path) -> dict[str, Any] | None:
    """The route's record when it was driven (to its end or an infraction that ended it), else None."""
    record = route_record(results_path)
    return record if record is not None and record.get("status") not in RETRY_STATUSES else None


finished_route_record = _finished_record  # public: validation rollouts resume by it too


# -- infraction timing ----------------------------------------------------------------------------
def infraction_events(record: Mapping[str, Any], records: Sequence[SceneRecord]) -> list[InfractionEvent]:
    """When the infractions of a route record happened, in the recording's clock.

    Uses ``meta["infraction_events"]`` ([{kind, time_s}, ...]) when the runner
    wrote them. Otherwise each message's location is matched to the recorded ego
    positions: route-ending infractions happen at the end of the recording; the
    others at the first tick where the ego was nearest to the reported place.
    """
    meta = record.get("meta") or {}
    if isinstance(meta.get("infraction_events"), list):
        return sorted((InfractionEvent(str(e["kind"]), float(e["time_s"])) for e in meta["infraction_events"]
                       if e.get("kind") in _POINT_EVENTS), key=lambda e: e.time_s)
    if not records:
        return []
    times = [float(r.meta.get("time_s", r.scene.get("timestamp_s", 0.0))) for r in records]
    end_s = max(times)
    positions = [r.scene["ego_location_world_coord"] for r in records]
    events = []
    for kind, messages in (record.get("infractions") or {}).items():
        if kind not in _POINT_EVENTS:
            continue
        for message in messages:
            if kind in ROUTE_ENDING_INFRACTIONS:
                events.append(InfractionEvent(kind, end_s))
                continue
            match = _LOCATION_RE.search(str(message))
            if not match:
                log.debug("no location in infraction message %r; skipped", message)
                continue
            x, y = float(match.group(1)), float(match.group(2))
            distances = [math.hypot(float(p[0]) - x, float(p[1]) - y) for p in positions]
            nearest = min(distances)
            # the first tick within half a metre of the closest approach (a stopped car sits
            # there for many ticks; the infraction happened when it arrived)
            first = next(i for i, d in enumerate(distances) if d <= nearest + 0.5)
            events.append(InfractionEvent(kind, times[first]))
    return sorted(events, key=lambda e: e.time_s)


def mark_infractions(records: Sequence[SceneRecord], events: Sequence[InfractionEvent]) -> int:
    """Set ``infraction_within_s`` / ``infraction_kind`` of each record from the next event; count marked."""
    marked = 0
    for record in records:
        t = float(record.meta.get("time_s", record.scene.get("timestamp_s", 0.0)))
        upcoming = [e for e in events if e.time_s >= t - 1e-6]
        if upcoming:
            event = min(upcoming, key=lambda e: e.time_s)
            record.meta["infraction_within_s"] = round(event.time_s - t, 3)
            record.meta["infraction_kind"] = event.kind
            marked += 1
        else:
            record.meta["infraction_within_s"] = None
            record.meta["infraction_kind"] = None
    return marked


def relabel_records(records: Iterable[SceneRecord], only_missing: bool = False) -> int:
    """Label records with the expert (DAgger); with ``only_missing`` keep existing labels. Count labelled."""
    from expert import Expert

    expert = Expert()
    n = 0
    for record in records:
        if only_missing and record.label is not None:
            continue
        record.label = expert.predict(record.scene)
        n += 1
    return n


# -- the stage ----------------------------------------------------------------------------------
def _agent_config_file(path: Path, settings: Mapping[str, Any]) -> Path:
    atomic_write_json(path, {k: v for k, v in settings.items() if v is not None})  # paths are written as strings
    return path


def rollout_agent_settings(settings: Mapping[str, Any] | None,
                           min_timeout_s: float | None = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """``settings`` with the policy's per-call ``timeout_s`` raised to at least ``min_timeout_s``.

    A rollout is closed-loop and the world waits for the agent, so the limit
    only has to stop runaway scripts; a training limit (about a second, meant
    for scoring batches) would make the drive depend on the machine's load (a
    call that overruns brakes that tick). ``None`` keeps ``settings`` as given.
    """
    out = dict(settings or {})
    if min_timeout_s is not None and float(out.get("timeout_s") or 0.0) < min_timeout_s:
        if out.get("timeout_s") is not None:
            log.info("policy time limit for rollouts raised from %.3g s to %.3g s (the world waits for the agent)",
                     float(out["timeout_s"]), min_timeout_s)
        out["timeout_s"] = float(min_timeout_s)
    return out


def record_rollouts(work: WorkDir, stage: str, world: WorldConfig, routes: Path, route_ids: Sequence[str],
                    agent: str, dataset: SceneDataset, agent_settings: Mapping[str, Any] | None = None,
                    relabel: bool = True, progress: bool = True,
                    min_timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[RolloutResult]:
    """Run ``agent`` on each route with recording and append the marked, labelled ticks to ``dataset``.

    ``agent_settings`` go into the agent's JSON config (e.g. ``checkpoint``,
    ``dagger_beta``, ``sandbox``); ``record_dir``, ``route_id`` and ``run_id``
    are set here, and ``timeout_s`` is at least ``min_timeout_s``
    (:func:`rollout_agent_settings`). ``relabel`` labels every tick the policy
    drove with the expert (ticks the expert drove keep its label).
    """
    agent_settings = rollout_agent_settings(agent_settings, min_timeout_s)
    stage_dir = work.rollouts(stage)
    results_dir = stage_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    existing_runs = set(dataset.runs())
    evaluations, plans = [], []
    for route_id in route_ids:
        run_id = f"{stage}-{route_id}"
        results_path = results_dir / f"{route_id}.json"
        record_dir = stage_dir / route_id
        plans.append((route_id, run_id, results_path, record_dir))
        if run_id in existing_runs or _finished_record(results_path) is not None:
            continue
        # a killed run left a partial recording and maybe a partial results file: start clean
        shutil.rmtree(record_dir, ignore_errors=True)
        results_path.unlink(missing_ok=True)
        settings = {**(agent_settings or {}), "record_dir": record_dir, "route_id": route_id, "run_id": run_id,
                    "seed": world.seed}
        config_path = _agent_config_file(stage_dir / "configs" / f"{route_id}.json", settings)
        evaluations.append(world.evaluation(routes, agent, config_path, results_path, route_ids=[route_id],
                                            pictures_dir=stage_dir / "pictures" if world.pictures else None))
    if evaluations:
        run_evaluations(evaluations, world, f"{stage} rollouts", progress)

    results = []
    for route_id, run_id, results_path, record_dir in plans:
        record = _finished_record(results_path)
        if run_id in existing_runs:
            n = sum(int(c.get("n_records", 0)) for c in dataset.chunks() if c["run_id"] == run_id)
            results.append(RolloutResult(route_id, run_id, record, n))
            continue
        if record is None:
            crashed = route_record(results_path)
            error = (f"{crashed['status']}: {(crashed.get('meta') or {}).get('error', '')}" if crashed
                     else "no results were written")
            log.error("route %s of stage %s failed: %s", route_id, stage, error)
            results.append(RolloutResult(route_id, run_id, None, 0, error=error))
            continue
        warn_policy_timeouts(record, f"route {route_id} of stage {stage}")
        recorded = list(SceneDataset(record_dir)) if (record_dir / "index.json").exists() else []
        n = import_recording(recorded, record, run_id, stage, dataset, relabel)
        if not n:
            log.warning("route %s of stage %s recorded no ticks", route_id, stage)
        results.append(RolloutResult(route_id, run_id, record, n))
    return results


def warn_policy_timeouts(record: Mapping[str, Any], where: str) -> int:
    """Log a warning when the route record's policy timed out (``meta.policy_timeouts``); the count.

    A timed-out call brakes that tick, so the drive may differ from a rerun on a
    less loaded machine: it must be visible, not silent.
    """
    meta = record.get("meta") or {}
    count = int(meta.get("policy_timeouts") or 0)
    if count:
        log.warning("%s: the policy timed out %d time(s) (limit %s s)%s; the car braked on those ticks, so "
                    "this drive may not repeat", where, count, meta.get("policy_timeout_s", "?"),
                    f" and was abandoned at tick {meta['policy_abandoned_at_tick']}"
                    if meta.get("policy_abandoned_at_tick") is not None else "")
    return count


def import_recording(recorded: list[SceneRecord], record: Mapping[str, Any] | None, run_id: str, stage: str,
                     dataset: SceneDataset, relabel: bool = True) -> int:
    """Mark one route's recorded ticks with its infractions, relabel, append as ``run_id``; count appended."""
    recorded = sorted(recorded, key=lambda r: float(r.meta.get("time_s", 0.0)))
    mark_infractions(recorded, infraction_events(record, recorded) if record is not None else [])
    if relabel:
        relabel_records([r for r in recorded if r.meta.get("controller") != "expert" or r.label is None])
    for r in recorded:
        r.meta["stage"] = stage
    if recorded:
        # Keyed by run (one run per stage and route): an import that was cut short is replaced, not doubled.
        dataset.append(recorded, run_id, replace=True)
    return len(recorded)


def _matching_record(records: Sequence[Mapping[str, Any]], recorded: Sequence[SceneRecord]) -> Mapping[str, Any] | None:
    """The results record of a recorded run: by route id, else by infraction places on its path."""
    from sumo_world.scoring.leaderboard_statistics import route_config_id

    route_id = next((str(r.meta["route_id"]) for r in recorded if r.meta.get("route_id")), None)
    for record in records:
        if route_id is not None and route_config_id(record) == route_id:
            return record
    best, best_distance = None, 3.0  # metres: an infraction this close to the path is this run's
    for record in records:
        for messages in (record.get("infractions") or {}).values():
            for message in messages:
                match = _LOCATION_RE.search(str(message))
                if not match:
                    continue
                x, y = float(match.group(1)), float(match.group(2))
                distance = min(math.hypot(float(r.scene["ego_location_world_coord"][0]) - x,
                                          float(r.scene["ego_location_world_coord"][1]) - y) for r in recorded)
                if distance < best_distance:
                    best, best_distance = record, distance
    return best


def import_rollout(record_dir: Path, results_path: Path, dataset: SceneDataset, stage: str,
                   relabel: bool = True) -> dict[str, int]:
    """Import a leaderboard run (CARLA or embedded) recorded by the LangProp agent into ``dataset``.

    Every recorded run in ``record_dir`` is matched to its route record of
    ``results_path`` (route id, else infraction places), marked with the seconds
    to its infractions, relabelled by the expert and appended as
    ``<stage>-<run id>``. Runs already imported are skipped. Returns the ticks
    appended per run id.
    """
    from sumo_world.scoring.results import load_results

    records = route_records_of(load_results(results_path))
    source = SceneDataset(record_dir)
    existing = set(dataset.runs())
    out: dict[str, int] = {}
    for run in source.runs():
        run_id = f"{stage}-{run}"[:128]  # the dataset's limit on run ids
        if run_id in existing:
            continue
        recorded = list(source.filter(run_ids=[run]))
        record = _matching_record(records, recorded) if recorded else None
        if record is None:
            log.warning("%s: no route record of %s matches run %s; imported without infraction marks",
                        record_dir, results_path, run)
        out[run_id] = import_recording(recorded, record, run_id, stage, dataset, relabel)
    return out
