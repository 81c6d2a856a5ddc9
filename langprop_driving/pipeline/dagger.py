"""DAgger with infraction penalties: drive the current script, relabel, aggregate, train.

Iteration ``i`` (1-based):

1. the current best script drives the training routes through the LangProp
   agent, recording every tick (with probability ``beta_i`` per route the
   expert drives instead: DAgger's mixing); the rollout's leaderboard results
   are the script's driving score;
2. the ticks are marked with the seconds to the next infraction, relabelled by
   the expert and appended to the aggregate dataset (never overwriting);
3. a training run starts from the current checkpoint's scripts and trains on the
   whole aggregate, where the records before infractions carry the penalty term.

Each step is resumable: rollouts by route (run ids in the dataset), training by
its done-marker and checkpoints.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from driving.dataset import SceneDataset

from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorkDir, WorldConfig
from langprop_driving.pipeline.evaluate import team_code_agent
from langprop_driving.pipeline.rollouts import mean_driving_score, raise_on_failed_routes, record_rollouts
from langprop_driving.pipeline.train import TrainOutcome, train_stage

__all__ = ["IterationOutcome", "DaggerOutcome", "dagger"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationOutcome:
    """One DAgger iteration: the script that drove, how it drove, and what training made of it."""

    iteration: int
    driven_checkpoint: str
    driven_policy_id: str | None
    beta: float
    driving_score: float | None
    route_records: list[dict[str, Any]]
    n_new_records: int
    train: TrainOutcome

    @property
    def expert_routes(self) -> list[str]:
        """The routes the expert drove in this iteration's rollouts (DAgger's beta)."""
        from sumo_world.scoring.leaderboard_statistics import route_config_id

        return [route_config_id(r) for r in self.route_records
                if (r.get("meta") or {}).get("policy_driver") == "expert"]

    @property
    def policy_driving_score(self) -> float | None:
        """Mean driving score of the routes the script drove itself (the expert's routes left out)."""
        scores = [float(r["scores"]["score_composed"]) for r in self.route_records
                  if (r.get("meta") or {}).get("policy_driver") != "expert"]
        return sum(scores) / len(scores) if scores else None


@dataclass(frozen=True)
class DaggerOutcome:
    """The iterations of a DAgger run, in order."""

    iterations: list[IterationOutcome] = field(default_factory=list)

    @property
    def final_checkpoint(self) -> str | None:
        return self.iterations[-1].train.checkpoint if self.iterations else None

    def best_driven(self) -> IterationOutcome | None:
        """The iteration whose driven script scored best on the road (ties: the later one)."""
        scored = [it for it in self.iterations if it.driving_score is not None]
        return max(scored, key=lambda it: (it.driving_score, it.iteration)) if scored else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the report's dagger.json): each route's driving score instead of its record."""
        return {"iterations": [
            {**{k: v for k, v in asdict(it).items() if k != "route_records"},
             "expert_routes": it.expert_routes, "policy_driving_score": it.policy_driving_score,
             "routes": {str(r.get("route_id")): float(r["scores"]["score_composed"]) for r in it.route_records}}
            for it in self.iterations]}


def _driven_scripts(current: str) -> tuple[list[str], str | None]:
    """The seed scripts for training from ``current`` (a .py script, or a checkpoint's deployed script first,
    then its ranking) and the id of the script that drove (None for a plain .py script)."""
    if Path(current).suffix == ".py":
        return [Path(current).read_text()], None
    from langprop_core.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(Path(current))
    if not checkpoint.policies:
        return [], None
    best = checkpoint.best  # the one rule for "the best script" (a selection's choice, else the top)
    ranked = [best] + [p for p in checkpoint.policies if p.id != best.id]
    return [p.source for p in ranked], best.id


def dagger(work: WorkDir, world: WorldConfig, routes: Path, train_route_ids: Sequence[str],
           val_route_ids: Sequence[str] | None, optimizer_config: Any, train_config: TrainConfig,
           dagger_config: DaggerConfig, init_checkpoint: str | Path, progress: bool = True,
           sandbox_agent: bool = True, selection: Any = None) -> DaggerOutcome:
    """Run ``dagger_config.iterations`` DAgger iterations from ``init_checkpoint`` (a checkpoint or a .py script).

    With ``selection`` (a :class:`~langprop_driving.pipeline.validation.ValidationConfig`) each
    iteration's training ends by driving its top scripts on the validation routes; the script that
    drove stays deployed unless one drives better there.
    """
    dataset = SceneDataset(work.data)
    agent = str(team_code_agent("langprop_agent"))
    current = str(init_checkpoint)
    outcomes: list[IterationOutcome] = []
    for iteration in range(1, dagger_config.iterations + 1):
        stage = f"dagger-{iteration}"
        beta = dagger_config.beta_at(iteration)
        rollouts = record_rollouts(
            work, stage, world, routes, train_route_ids, agent, dataset,
            # No training timeout here: in closed loop the world waits for the
            # agent, and the agent's own default limit applies.
            agent_settings={"checkpoint": current, "dagger_beta": beta, "sandbox": sandbox_agent},
            relabel=True, progress=progress)
        raise_on_failed_routes(rollouts, f"DAgger iteration {iteration}")
        score = mean_driving_score(rollouts)
        log.info("DAgger %d: the script of %s drove with mean driving score %.2f (beta %.2f)",
                 iteration, current, score or 0.0, beta)
        seeds, driven_policy_id = _driven_scripts(current)
        trained = train_stage(work, stage, dataset, train_route_ids, val_route_ids, optimizer_config, train_config,
                              seed_sources=seeds, selection=selection, incumbent=current, progress=progress,
                              expert_share=dagger_config.expert_share)
        outcomes.append(IterationOutcome(
            iteration=iteration, driven_checkpoint=current, driven_policy_id=driven_policy_id,
            beta=beta, driving_score=score, route_records=[r.record for r in rollouts if r.record],
            n_new_records=sum(r.n_records for r in rollouts), train=trained))
        current = trained.checkpoint
    return DaggerOutcome(outcomes)
