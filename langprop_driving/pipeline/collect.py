"""Collect: expert rollouts on a route set, recorded into the scene dataset."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from driving.dataset import SceneDataset

from langprop_driving.pipeline.config import WorkDir, WorldConfig
from langprop_driving.pipeline.evaluate import team_code_agent
from langprop_driving.pipeline.rollouts import RolloutResult, mean_driving_score, record_rollouts

__all__ = ["route_ids_of", "collect"]

log = logging.getLogger(__name__)


def route_ids_of(routes: Path) -> list[str]:
    """The route ids of a leaderboard route file, in file order."""
    from sumo_world.routes.files import read_routes

    return [spec.route_id for spec in read_routes(Path(routes))]


def collect(work: WorkDir, world: WorldConfig, routes: Path, route_ids: Sequence[str] | None = None,
            stage: str = "collect", progress: bool = True) -> list[RolloutResult]:
    """Drive ``routes`` with the expert, recording every tick with its label into ``work.data``.

    Resumable: routes already in the dataset are not driven again. Writes the
    done-marker ``stages/<stage>.json`` once every route is in.
    """
    route_ids = list(route_ids) if route_ids is not None else route_ids_of(routes)
    dataset = SceneDataset(work.data)
    results = record_rollouts(work, stage, world, routes, route_ids, str(team_code_agent("expert_agent")),
                              dataset, agent_settings={"sandbox": False}, relabel=False, progress=progress)
    failed = [r.route_id for r in results if r.record is None]
    info = {"routes": route_ids, "failed": failed, "n_records": sum(r.n_records for r in results),
            "mean_driving_score": mean_driving_score(results)}
    if not failed:
        work.mark_done(stage, info)
    else:
        log.error("collect: routes %s failed; rerun to retry them", ", ".join(failed))
    return results
