"""Select by driving: the scripts a stage could deploy are driven on held-out validation routes.

:class:`RoadValidator` is the driving task's ``validate`` function for
:class:`langprop_core.selection.SelectByValidation`: each candidate script
drives every validation route through the LangProp agent (one job per script
and route, in parallel), and its score is the mean leaderboard driving score
per town of the validation routes (each route runs in the town its route file
names; the other world settings are the validation world's), so that
:class:`~langprop_core.selection.SelectByValidation` deploys a candidate only if
it is not worse than the incumbent on any town by more than the margin, and
ranks by the mean over towns. Validation routes should come from towns the
training never saw (e.g. train on Town01, validate on Town03 and Town04). Results are files::

    <work>/validate/<stage>/scripts/<policy id>.py
    <work>/validate/<stage>/results/<policy id>/<route>.json

so a killed validation resumes with the routes it had finished.
:func:`road_selection` builds the callback of one stage, with the script the
previous stage deployed as the incumbent.
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from langprop_core.policy import Policy
from langprop_core.selection import SelectByValidation

from langprop_driving.pipeline.config import WorkDir, WorldConfig, atomic_write_json

__all__ = ["ValidationConfig", "RoadValidator", "road_selection", "VALIDATION_NAME"]

log = logging.getLogger(__name__)

VALIDATION_NAME = "validation DS"


@dataclass(frozen=True)
class ValidationConfig:
    """Where and how candidates are driven: the world (its town may differ from training), the route file
    and route ids, how many top scripts by objective (``top_k``), by how many DS points a candidate must
    beat the incumbent (``min_gain``), and whether the script runs sandboxed."""

    world: WorldConfig
    routes: Path
    route_ids: tuple[str, ...]
    top_k: int = 3
    # On three routes a vehicle collision on one of them moves the mean by 13 DS points; a smaller
    # gain is as likely one route's luck (a collision traded for another elsewhere) as better driving.
    min_gain: float = 5.0
    sandbox: bool = True

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"validation top_k must be >= 1, got {self.top_k}")
        if not self.route_ids:
            raise ValueError("validation needs at least one route id")
        if self.min_gain < 0:
            raise ValueError(f"validation min_gain must be >= 0, got {self.min_gain}")


class RoadValidator:
    """``validate(policies) -> {policy id: {town: mean driving score}}`` on the validation routes (see the
    module docstring); ``route_scores`` keeps every route's score per script driven."""

    def __init__(self, work: WorkDir, stage: str, config: ValidationConfig, progress: bool = True) -> None:
        self.root = work.root / "validate" / stage
        self.config = config
        self.progress = progress
        self.route_scores: dict[str, dict[str, float]] = {}
        self.towns = route_towns(config)

    def __call__(self, policies: Sequence[Policy]) -> dict[str, dict[str, float]]:
        from langprop_driving.pipeline.evaluate import team_code_agent
        from langprop_driving.pipeline.rollouts import finished_route_record, rollout_agent_settings, run_evaluations

        world, cfg = self.config.world, self.config
        agent = str(team_code_agent("langprop_agent"))
        evaluations, plans = [], []
        for policy in policies:
            script = self.root / "scripts" / f"{policy.id}.py"
            if not script.is_file():
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(policy.source, encoding="utf-8")
            settings = rollout_agent_settings({"checkpoint": script, "sandbox": cfg.sandbox, "seed": world.seed})
            config_path = self.root / "configs" / f"{policy.id}.json"
            atomic_write_json(config_path, settings)
            for route_id in cfg.route_ids:
                results = self.root / "results" / policy.id / f"{route_id}.json"
                plans.append((policy.id, route_id, results))
                if finished_route_record(results) is not None:
                    continue
                results.unlink(missing_ok=True)  # a killed run's partial file: drive again
                evaluations.append(replace(world, town=self.towns[route_id]).evaluation(
                    Path(cfg.routes), agent, config_path, results, route_ids=[route_id]))
        if evaluations:
            run_evaluations(evaluations, world, f"validate {len(policies)} script(s)", self.progress)
        scores: dict[str, dict[str, float]] = {}
        failed = []
        for policy_id, route_id, results in plans:
            record = finished_route_record(results)
            if record is None:
                failed.append(f"{policy_id} on route {route_id}: {_failure(results)}")
                continue
            scores.setdefault(policy_id, {})[route_id] = float(record["scores"]["score_composed"])
        if failed:
            raise RuntimeError("validation rollouts failed: " + "; ".join(failed) + " (rerun to retry them)")
        self.route_scores.update(scores)
        out: dict[str, dict[str, float]] = {}
        for pid, by_route in scores.items():
            towns: dict[str, list[float]] = {}
            for route_id, score in by_route.items():
                towns.setdefault(self.towns[route_id], []).append(score)
            out[pid] = {town: statistics.fmean(values) for town, values in sorted(towns.items())}
        return out


def _failure(results: Path) -> str:
    """Why a validation route has no finished record: its crashed record's status and error, or none written."""
    from langprop_driving.pipeline.rollouts import route_record

    record = route_record(results)
    return f"{record['status']}: {(record.get('meta') or {}).get('error', '')}" if record else "no results were written"


def route_towns(config: ValidationConfig) -> dict[str, str]:
    """The town of each validation route, as its route file names it; an unknown id raises naming it."""
    from sumo_world.routes.files import read_routes

    towns = {r.route_id: r.town for r in read_routes(config.routes)}
    missing = [r for r in config.route_ids if r not in towns]
    if missing:
        raise ValueError(f"{config.routes}: no route(s) {', '.join(missing)} for validation")
    return {r: towns[r] for r in config.route_ids}


def road_selection(work: WorkDir, stage: str, config: ValidationConfig, incumbent_checkpoint: str | Path | None,
                   progress: bool = True) -> SelectByValidation:
    """The select-by-driving callback of ``stage``; the incumbent is the deployed script of
    ``incumbent_checkpoint`` (a checkpoint, or a ``.py`` seed script; None: no incumbent), with its
    validation DS when that checkpoint was selected on the same routes."""
    incumbent, score, groups = _incumbent(incumbent_checkpoint, config)
    return SelectByValidation(RoadValidator(work, stage, config, progress), top_k=config.top_k,
                              incumbent=incumbent, incumbent_score=score, incumbent_groups=groups,
                              plot_path=work.train(stage) / "objective_vs_validation.png",
                              validation_name=VALIDATION_NAME, context={"validation_key": validation_key(config)},
                              min_gain=config.min_gain)


def _incumbent(path: str | Path | None,
               config: ValidationConfig) -> tuple[Policy | None, float | None, dict[str, float] | None]:
    if path is None:
        return None, None, None
    path = Path(path)
    if path.suffix == ".py":
        from langprop_driving.model.seed_policy import FUNCTION_NAME

        return Policy.from_source(path.read_text(encoding="utf-8"), FUNCTION_NAME, optimizer="file"), None, None
    from langprop_core.checkpoint import load_checkpoint
    from langprop_core.selection import incumbent_of, selection_of

    checkpoint = load_checkpoint(path)
    policy, score = incumbent_of(checkpoint)
    record: dict[str, Any] = selection_of(checkpoint) or {}
    # A score measured elsewhere (other routes, town or traffic) is not comparable: drive it again.
    if record.get("validation_key") != validation_key(config):
        score = None
    groups = record.get("deployed_groups") if score is not None else None
    return policy, score, groups


def validation_key(config: ValidationConfig) -> str:
    """What makes two validation scores comparable: world, route file and routes (which name their towns)."""
    w = config.world
    key = f"{w.town}|{w.towns_dir}|{w.traffic}|{w.seed}|{Path(config.routes).resolve()}|{','.join(config.route_ids)}"
    # scores with scenarios are not comparable with scores without them; keys of runs without keep their form
    return f"{key}|{Path(w.scenarios).resolve()}" if w.scenarios else key
