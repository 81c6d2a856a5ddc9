"""Typed settings of the pipeline stages, and the layout of a pipeline's work directory.

Work directory layout (every stage resumes from what it finds there)::

    <work>/
      stages/<stage>.json           # done-markers: a stage with a marker is skipped on rerun
      data/                         # the aggregate SceneDataset (expert runs, then DAgger runs)
      rollouts/<stage>/<route>/     # raw recording of one route run (wiped before a rerun)
      rollouts/<stage>/results/<route>.json   # leaderboard results of that route run
      train/<name>/                 # a Trainer run: checkpoints/<module>/, metrics.jsonl, training_curve.png
      eval/<label>/results.json     # evaluations (pictures beside them)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from langprop_common.files import atomic_write_json as _write_json
from langprop_driving.model.objective import DrivingObjective

__all__ = [
    "WorldConfig", "TrainConfig", "DaggerConfig", "WorkDir", "atomic_write_json", "config_dict", "SEARCH_SIZE",
]

# (new scripts per parent and update, scripts kept) by whether the optimizer's replies are free.
# An LLM's replies cost tokens and are few and considered. The mutation optimizer's are free and
# blind: on the leaderboard set's data its first good move (stop for any car in line, objective
# 0.68 from the seed's 0.09) is a dead end that needs the lost "ahead" test back, and the move
# that pays (the seed's 2 m look-ahead raised past 8 m: 0.95) is one draw in hundreds. With 2
# replies and 8 kept, 0 of 5 seeds found it in one epoch; with 16 and 16, 5 of 6 (issue 26).
SEARCH_SIZE: dict[bool, tuple[int, int]] = {False: (2, 8), True: (16, 16)}


def atomic_write_json(path: Path, data: Any) -> None:
    """Pipeline state as JSON, atomically; paths and other objects are written as strings."""
    _write_json(path, data, indent=1, sort_keys=False, default=str)


@dataclass(frozen=True)
class WorldConfig:
    """Where rollouts run: the embedded world's town, traffic and parallelism.

    ``backend`` is "local" (processes on this machine) or "ray" (a Ray cluster:
    ``ray_address`` or $RAY_ADDRESS; one embedded world per task).
    """

    town: str
    towns_dir: Path | None = None
    traffic: str = "light"
    seed: int = 0
    workers: int = 1
    backend: str = "local"
    ray_address: str | None = None
    #: custom Ray resources every rollout task needs, e.g. (("carla_server", 1.0),)
    ray_resources: tuple[tuple[str, float], ...] = ()
    timeout_factor: float | None = None
    # seconds standing still before "agent blocked" ends a route (None: the leaderboard's 180 s)
    blocked_time_s: float | None = None
    pictures: bool = False
    # a leaderboard-1.0 scenario file: the routes run the scenarios it gives them (sumo_world.scenarios)
    scenarios: Path | None = None

    def ray_options(self) -> Any:
        """The :class:`~langprop_driving.pipeline.parallel.RayOptions` of this world."""
        from langprop_driving.pipeline.parallel import RayOptions

        return RayOptions(address=self.ray_address, resources=tuple(self.ray_resources))

    def shared_paths(self, *paths: Any) -> tuple[str, ...]:
        """``paths``, the towns folder and the scenario file: what a Ray worker must see to run a route of this world."""
        from sumo_world.towns.store import TownStore

        extra = (self.scenarios,) if self.scenarios else ()
        return tuple(str(p) for p in (*paths, TownStore(self.towns_dir).root, *extra))

    def route_executor(self, *paths: Any) -> Any:
        """The runner's route executor of this world's backend: None (local processes), or one Ray task per
        route (whose workers must see ``paths``, the towns and the scenario file)."""
        if self.backend != "ray":
            return None
        from langprop_driving.pipeline.parallel import ray_route_executor

        return ray_route_executor(self.ray_options(), self.workers, self.shared_paths(*paths))

    def evaluation(self, routes: Path, agent: str, agent_config: str | Path | None, results: Path,
                   route_ids: Sequence[str] | None = None, pictures_dir: Path | None = None,
                   progress: bool = False, **runner_options: Any) -> Any:
        """The runner's :class:`~sumo_world.run.runner.EvaluationConfig` of ``agent`` on ``routes`` in this world.

        The one mapping from a world to route jobs: evaluation, collection,
        validation and DAgger all build their runs here, so they drive under the
        same conditions (town, traffic, seed, time limits, scenarios, backend).
        ``runner_options`` are further ``EvaluationConfig`` fields (e.g.
        ``repetitions``, ``resume``, ``agent_label``); settings this world
        leaves as None take the runner's defaults.
        """
        from sumo_world.run.runner import EvaluationConfig

        limits = {"timeout_factor": self.timeout_factor, "blocked_time_s": self.blocked_time_s}
        options = {"route_executor": self.route_executor(routes, Path(results).parent),
                   **{key: value for key, value in limits.items() if value is not None}, **runner_options}
        return EvaluationConfig(
            town=self.town, routes=Path(routes), agent=str(agent),
            agent_config=str(agent_config) if agent_config is not None else None, results=Path(results),
            towns_dir=self.towns_dir, traffic=self.traffic, seed=self.seed,
            route_ids=[str(r) for r in route_ids] if route_ids is not None else None, pictures_dir=pictures_dir,
            workers=self.workers, progress=progress, scenarios=self.scenarios, **options)

    def __post_init__(self) -> None:
        if self.backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class TrainConfig:
    """Offline training of ``predict_speed_and_steering``: the Trainer's knobs and the objective's config.

    Every field can be set in a config file (``langprop train --config FILE``,
    read by :func:`langprop_common.config_files.load_config`); the objective's
    under ``objective:``.
    """

    epochs: int = 2
    batch_size: int = 64
    # new scripts per parent and update, and the population kept; None: the optimizer's search size
    # (SEARCH_SIZE: a few replies of an LLM, many of the free mutation optimizer)
    n_responses: int | None = None
    top_k: int = 2
    n_failure_cases: int = 3
    max_keep: int | None = None
    # keep 1/n of the records (20 Hz recordings are highly redundant)
    record_stride: int = 5
    # share that room equally between kinds of scene (the expert's level and reason, a red light in view);
    # off by default: on the full leaderboard set the mutation search then found worse drivers
    # (validation DS 53.6 offline, 62.0 after DAgger, against 83.3), though the objective does see car stops
    balance_scene_kinds: bool = False
    max_records: int | None = 3000
    infraction_weight: float = 3.0
    # the objective's settings, nested (its dataclass is the one source of their names and defaults)
    objective: DrivingObjective = field(default_factory=DrivingObjective)
    sandbox_mode: str = "process"
    sandbox_workers: int | None = None
    timeout_s: float = 1.0
    seed: int = 0
    progress: bool = True
    # LLM spend per training run (None: no limit); a cost limit needs llm_prices, a JSON file of
    # {"model": {"input": per million input tokens, "output": per million output tokens}}.
    max_llm_calls: int | None = None
    max_llm_tokens: int | None = None
    max_llm_cost: float | None = None
    llm_prices: Path | None = None
    # what update prompts ask the LLM for: "auto", "edits" or "rewrite" (langprop_core.trainer.TrainerConfig)
    reply_format: str = "auto"
    # keep distinct behaviours on the probe scenes (islands, niches, novelty rejection;
    # langprop_core.diversity); off: the population is ranked by the objective alone
    diversity: bool = True
    islands: int = 2
    migration_interval: int = 4

    def __post_init__(self) -> None:
        if self.max_llm_cost is not None and self.llm_prices is None:
            raise ValueError("an LLM cost budget needs a price table (llm_prices / --llm-prices / "
                             "$LANGPROP_LLM_PRICES)")
        if self.record_stride < 1:
            raise ValueError(f"record_stride must be >= 1, got {self.record_stride}")
        from langprop_core.llm.edits import REPLY_FORMATS

        if self.reply_format not in REPLY_FORMATS:
            raise ValueError(f"reply_format must be one of {', '.join(REPLY_FORMATS)}, got {self.reply_format!r}")
        if self.sandbox_mode not in ("process", "strict", "inprocess"):
            raise ValueError(f"sandbox_mode must be 'process', 'strict' or 'inprocess', got {self.sandbox_mode!r}")
        for name in ("n_responses", "max_keep"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def search_size(self, free_optimizer: bool) -> tuple[int, int]:
        """(n_responses, max_keep): the values set, else :data:`SEARCH_SIZE` of the optimizer's kind."""
        n_responses, max_keep = SEARCH_SIZE[free_optimizer]
        return (self.n_responses or n_responses, self.max_keep or max_keep)


@dataclass(frozen=True)
class DaggerConfig:
    """The DAgger loop: iterations, expert mixing (beta per route, decayed), and the infraction term."""

    iterations: int = 2
    beta: float = 0.0
    beta_decay: float = 0.5
    # Share of the training records drawn from the expert's offline runs, beside the relabelled
    # rollouts (None: as aggregated, every run in proportion to its records).
    expert_share: float | None = None

    def beta_at(self, iteration: int) -> float:
        """Expert-mixing probability of iteration ``iteration`` (1-based): beta * decay^(i-1)."""
        return self.beta * self.beta_decay ** max(0, iteration - 1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be within [0, 1], got {self.beta}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.expert_share is not None and not 0.0 <= self.expert_share <= 1.0:
            raise ValueError(f"expert_share must be within [0, 1], got {self.expert_share}")


@dataclass(frozen=True)
class WorkDir:
    """Paths inside a pipeline work directory, and its done-markers."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def rollouts(self, stage: str) -> Path:
        return self.root / "rollouts" / stage

    def train(self, name: str) -> Path:
        return self.root / "train" / name

    def eval(self, label: str) -> Path:
        return self.root / "eval" / label

    def marker(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def done(self, stage: str) -> dict[str, Any] | None:
        """The marker of a finished stage (what it recorded), or None when it has not finished."""
        path = self.marker(stage)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a marker is written atomically; an unreadable one means "redo"

    def mark_done(self, stage: str, info: dict[str, Any]) -> None:
        atomic_write_json(self.marker(stage), info)


def config_dict(*configs: Any) -> dict[str, Any]:
    """The dataclass configs as one JSON-safe dict (for markers and logs)."""
    out: dict[str, Any] = {}
    for config in configs:
        out[type(config).__name__] = json.loads(json.dumps(asdict(config), default=str))
    return out

