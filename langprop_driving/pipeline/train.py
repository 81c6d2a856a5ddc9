"""Offline training of ``predict_speed_and_steering`` from a scene dataset.

Training data are the labelled records of the training routes, thinned (20 Hz
recordings repeat themselves; optionally evenly across the kinds of scene, so
that rare ones such as a stop behind a car are not thinned away) but keeping
every record in the seconds before an infraction, which are then oversampled
(:func:`infraction_weighted`).
Validation uses the records of held-out routes. The Trainer checkpoints as it
goes; a finished run leaves a done-marker and is not trained again.
"""
from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

from driving.dataset import SceneDataset, SceneRecord

from langprop_driving.model.objective import (
    DrivingObjective, in_infraction_window, infraction_weighted, target_from_record,
)
from langprop_driving.pipeline.config import TrainConfig, WorkDir

__all__ = ["TrainOutcome", "TrainingStopped", "select_records", "scene_kind", "mix_records", "train_stage",
           "usage_callback", "OFFLINE_STAGE"]

# the stage name of the expert's offline runs in the aggregate dataset (pipeline.collect)
OFFLINE_STAGE = "collect"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """What a training stage produced (also its done-marker's content)."""

    name: str
    run_dir: str
    checkpoint: str
    best_policy_id: str
    best_score: float | None
    val_score: float | None
    optimizer: str
    n_train: int
    n_val: int
    wall_s: float
    policy_calls: int
    calls_per_s: float
    #: LLM usage of the run (see langprop_core.llm.usage.LLMUsage) and rejected replies by reason
    llm: dict[str, Any] | None = None
    rejected: dict[str, int] | None = None
    # select by driving (None without validation routes): the deployed script's validation DS, whether
    # the incumbent stayed, the objective-DS rank correlation and each candidate's figures
    validation_ds: float | None = None
    kept_incumbent: bool | None = None
    spearman: float | None = None
    candidates: list[dict[str, Any]] | None = None
    # the DS points by which a candidate had to beat the incumbent
    min_gain: float | None = None
    # the final population on the probe scenes (langprop_core.diversity.Archive.occupancy), None without
    # diversity; and the dead conditions of the deployed script (langprop_core.dead_logic; [] for none)
    behaviours: dict[str, Any] | None = None
    deployed_dead_conditions: list[str] | None = None
    # selection by driving: the deployed script's validation DS per town
    validation_towns: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainOutcome":
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


class TrainingStopped(RuntimeError):
    """Training stopped at an LLM budget; the checkpoint is written and the stage is not done."""

    def __init__(self, reason: str, checkpoint: str, usage: str) -> None:
        super().__init__(f"{reason}; {usage}; checkpoint {checkpoint} (run again with a larger budget to go on)")
        self.reason = reason
        self.checkpoint = checkpoint


def usage_callback(config: TrainConfig) -> Any:
    """The LLM usage and budget callback of ``config`` (prices from ``llm_prices`` or $LANGPROP_LLM_PRICES)."""
    import os

    from langprop_core.llm.usage import LLMBudget, UsageCallback, load_prices

    prices_path = config.llm_prices or (os.environ.get("LANGPROP_LLM_PRICES") or None)
    prices = load_prices(prices_path) if prices_path else {}
    return UsageCallback(LLMBudget(config.max_llm_calls, config.max_llm_tokens, config.max_llm_cost), prices)


def scene_kind(record: SceneRecord) -> tuple[str, str, bool]:
    """What a record teaches: the expert's speed level and reason, and whether a red light is in view.

    The red light is part of the kind because most of the expert's stops behind a
    car are queues at a light, which a script that stops for red lights already
    gets right; the stops behind a car with no light in view are the ones that
    teach a car check.
    """
    return (record.label.speed_level, record.label.reason, record.scene.get("distance_to_red_light") is not None)


def _quotas(sizes: dict[Any, int], room: int) -> dict[Any, int]:
    """An equal share of ``room`` per kind; a kind with fewer records keeps them all and leaves the rest to others."""
    quotas: dict[Any, int] = {}
    pending = sorted(sizes, key=lambda k: (sizes[k], str(k)))
    while pending:
        share, extra = divmod(room, len(pending))
        if sizes[pending[0]] > share:
            for i, kind in enumerate(pending):  # every kind left is larger than its share
                quotas[kind] = share + (1 if i < extra else 0)
            break
        kind = pending.pop(0)
        quotas[kind] = sizes[kind]
        room -= sizes[kind]
    return quotas


def _evenly_spaced(items: Sequence[Any], k: int) -> list[Any]:
    n = len(items)
    return list(items) if k >= n else [items[(i * n) // k] for i in range(k)]


def select_records(records: Iterable[SceneRecord], stride: int = 1, max_records: int | None = None,
                   horizon_s: float = 3.0, seed: int = 0, balance_kinds: bool = False) -> list[SceneRecord]:
    """Labelled records: every ``stride``-th per run, plus every record within ``horizon_s`` of an infraction.

    Records further from an infraction (a standstill's long blame window) are
    thinned like the rest. At most ``max_records`` (the seconds before
    infractions are kept first). With ``balance_kinds`` the thinned records
    (``1 / stride`` of them) are shared equally between the kinds of scene
    (:func:`scene_kind`), evenly spaced in time within each, a kind with fewer
    records keeping all of them: a stop behind a car away from a light, a
    crossing pedestrian or a yield is a few seconds of a route, and thinning
    every kind alike leaves the objective little that rewards handling them,
    while free road and red-light waits fill the data.
    """
    by_run: dict[str, list[SceneRecord]] = defaultdict(list)
    for record in records:
        if record.label is None:
            continue
        by_run[str(record.meta.get("run_id"))].append(record)
    kept, window, rest = [], [], []
    for run_records in by_run.values():
        for i, record in enumerate(run_records):
            if in_infraction_window(target_from_record(record), horizon_s):
                window.append(record)
            else:
                if balance_kinds:
                    rest.append(record)
                if i % stride == 0:
                    kept.append(record)
    rng = random.Random(seed)
    if max_records is not None and len(window) > max_records:
        window = rng.sample(window, max_records)
    room = len(kept) if max_records is None else min(len(kept), max(0, max_records - len(window)))
    if balance_kinds:
        by_kind: dict[tuple[str, str, bool], list[SceneRecord]] = defaultdict(list)
        for record in rest:
            by_kind[scene_kind(record)].append(record)
        quotas = _quotas({kind: len(group) for kind, group in by_kind.items()}, room)
        return window + [r for kind, group in by_kind.items() for r in _evenly_spaced(group, quotas[kind])]
    return window + (rng.sample(kept, room) if room < len(kept) else kept)


def mix_records(records: Sequence[SceneRecord], expert_share: float | None, seed: int = 0) -> list[SceneRecord]:
    """``records`` with ``expert_share`` of them from the expert's offline runs, the rest relabelled rollouts.

    The total stays; a side with too few records is repeated (drawn with replacement beyond its size).
    None, or records of only one side, returns them as they are.
    """
    expert = [r for r in records if r.meta.get("stage") == OFFLINE_STAGE]
    rollouts = [r for r in records if r.meta.get("stage") != OFFLINE_STAGE]
    if expert_share is None or not expert or not rollouts:
        return list(records)
    rng = random.Random(seed)
    n_expert = round(expert_share * len(records))

    def draw(pool: list[SceneRecord], k: int) -> list[SceneRecord]:
        return rng.sample(pool, k) if k <= len(pool) else pool + rng.choices(pool, k=k - len(pool))

    return draw(expert, n_expert) + draw(rollouts, len(records) - n_expert)


def _counting(objective: DrivingObjective, counter: list[int]) -> Callable[[Any, Any, tuple], float]:
    """``objective`` that counts its calls in ``counter[0]`` (policy calls scored, for calls per second)."""
    def counted(output: Any, target: Any, args: tuple = ()) -> float:
        counter[0] += 1
        return objective(output, target, args)
    return counted


def train_stage(work: WorkDir, name: str, dataset: SceneDataset, train_routes: Sequence[str] | None,
                val_routes: Sequence[str] | None, optimizer_config: Any, config: TrainConfig,
                seed_sources: Sequence[str], resume: bool = True, callbacks: Sequence[Any] = (),
                selection: Any = None, incumbent: str | None = None, progress: bool = True,
                expert_share: float | None = None) -> TrainOutcome:
    """Train on ``dataset`` (records of ``train_routes``; all when None), validate on ``val_routes``.

    With ``selection`` (a :class:`~langprop_driving.pipeline.validation.ValidationConfig`) the top
    scripts are driven on its routes when training ends and the best driver is deployed, unless
    ``incumbent`` (the checkpoint or script deployed before) drives at least as well.
    ``expert_share``: see :func:`mix_records` (DAgger's mix of expert data and rollouts).

    ``optimizer_config`` is a ``langprop_core.llm.factory.OptimizerConfig``; the
    optimizer is built here with ``seed_sources`` (what the mutation optimizer
    rewrites). Returns the stage's outcome; a finished stage returns its marker.
    """
    stage = f"train-{name}"
    done = work.done(stage)
    if resume and done is not None:
        log.info("stage %s already done: %s", stage, done.get("checkpoint"))
        return TrainOutcome.from_dict(done)

    from langprop_core.checkpoint import resolve_checkpoint_dir
    from langprop_core.dead_logic import dead_conditions
    from langprop_core.llm.factory import make_optimizer
    from langprop_core.rescoring import RescoreOnFitEnd
    from langprop_core.sandbox import SandboxConfig
    from langprop_core.trainer import Trainer, TrainerConfig

    from langprop_driving.model.module import make_driving_module
    from langprop_driving.model.task import driving_task

    train_view = dataset.filter(route_ids=train_routes, labelled=True) if train_routes is not None \
        else dataset.filter(labelled=True)
    horizon_s = config.objective.horizon_s
    train_records = select_records(train_view, config.record_stride, config.max_records, horizon_s,
                                   config.seed, config.balance_scene_kinds)
    train_records = mix_records(train_records, expert_share, config.seed)
    if not train_records:
        raise ValueError(f"{dataset.root}: no labelled records for training routes {list(train_routes or [])} "
                         "(run collect first)")
    train_data = infraction_weighted(train_records, config.infraction_weight, horizon_s, config.seed,
                                     config.objective.standstill_horizon_s)
    val_data = None
    if val_routes:
        val_data = select_records(dataset.filter(route_ids=val_routes, labelled=True), config.record_stride,
                                  config.max_records, horizon_s, config.seed) or None

    objective = config.objective
    counter = [0]
    task = driving_task(_counting(objective, counter), exception_score=-max(1.0, objective.repeat_penalty),
                        diversity=config.diversity)
    optimizer = make_optimizer(optimizer_config, seed_sources=list(seed_sources))
    n_responses, max_keep = config.search_size(optimizer.free)
    module = make_driving_module(seed_sources=seed_sources, max_keep=max_keep)
    # "strict": worker processes that refuse to run without every protection.
    sandbox = SandboxConfig(mode="process" if config.sandbox_mode == "strict" else config.sandbox_mode,
                            strict=config.sandbox_mode == "strict", timeout_s=config.timeout_s,
                            **({"workers": config.sandbox_workers} if config.sandbox_workers else {}))
    trainer_config = TrainerConfig(epochs=config.epochs, batch_size=config.batch_size,
                                   n_responses=n_responses, top_k=config.top_k,
                                   n_failure_cases=config.n_failure_cases, seed=config.seed, sandbox=sandbox,
                                   progress=config.progress, islands=config.islands,
                                   migration_interval=config.migration_interval,
                                   reply_format=config.reply_format)
    run_dir = work.train(name)
    usage = usage_callback(config)
    # What the stage hands on (its best script, selection's candidates) is ranked on all the training
    # records, not by the running batch average that chose parents.
    callbacks = [usage, *callbacks, RescoreOnFitEnd(task, train_data)]
    selector = None
    if selection is not None:
        from langprop_driving.pipeline.validation import road_selection

        selector = road_selection(work, name, selection, incumbent, progress=progress)
        callbacks.append(selector)
    trainer = Trainer(optimizer, trainer_config, run_dir, callbacks=callbacks)
    log.info("training %s on %d records (%d distinct), validating on %d; optimizer: %s", name, len(train_data),
             len(train_records), len(val_data or []), optimizer.describe())
    start = time.perf_counter()
    result = trainer.fit(module, task, train_data, val_data, resume=resume)
    wall_s = time.perf_counter() - start
    if result.stopped is not None:
        raise TrainingStopped(result.stopped, str(trainer.checkpoint_dir(module)), usage.usage.describe())
    best = result.best_policy  # the deployed script when selecting by driving
    record = (selector.record or {}) if selector is not None else {}
    val_records = [h for h in result.history if h.get("kind") == "val"]
    val_score = val_records[-1].get("best_val_score") if val_records else None
    outcome = TrainOutcome(
        name=name, run_dir=str(run_dir), checkpoint=str(resolve_checkpoint_dir(run_dir, module.name)),
        best_policy_id=best.id, best_score=best.priority, val_score=val_score,
        optimizer=optimizer.describe(), n_train=len(train_data), n_val=len(val_data or []),
        wall_s=round(wall_s, 3), policy_calls=counter[0],
        calls_per_s=round(counter[0] / wall_s, 1) if wall_s > 0 else 0.0,
        llm=usage.usage.to_dict(), rejected=dict(sorted(trainer.rejected.items())),
        validation_ds=record.get("deployed_validation"), kept_incumbent=record.get("kept_incumbent"),
        spearman=record.get("spearman"), candidates=record.get("candidates"), min_gain=record.get("min_gain"),
        behaviours=trainer.behaviours(module),
        deployed_dead_conditions=[str(d) for d in dead_conditions(best.source, task.input_domains)],
        validation_towns=record.get("deployed_groups"))
    work.mark_done(stage, asdict(outcome))
    return outcome
