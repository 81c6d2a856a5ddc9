"""The training loop: score the population, keep the best, ask for rewrites.

Per batch: every script runs on the batch (in parallel, sandboxed), each call
is scored by the task, priorities are updated and the population reranked and
cut to ``max_keep``; the ``top_k`` scripts that are not yet perfect are sent to
the optimizer with their worst cases (the calls run concurrently), and the
replies that hold a new, valid script join the population. An update prompt
asks for edit blocks against its parent or for the complete script
(``TrainerConfig.reply_format``); a reply whose edits do not apply gets one
follow-up request for the complete script. The checkpoint,
with the trainer's position and history inside the index, is written after
every batch, so ``resume=True`` continues a killed run exactly where its last
checkpoint left it.

When the task has a behaviour space (``Task.behaviour``), the population is
kept diverse (:mod:`langprop_core.diversity`): every child is run on the probe
inputs before it is admitted, and one that behaves like its parent or like a
member is rejected; the population is cut keeping the best of every niche and
island; parents are drawn across islands and niches. Every child is also
checked for conditions that never or always hold
(:mod:`langprop_core.dead_logic`, with the task's ``input_domains``). Both
rejections are counted by reason with the others ("dead_condition",
"no_change", "duplicate_behaviour"); the population's distinct behaviours,
niches and islands go into every batch record (``behaviours``).

A module with dependencies (``Module(depends_on=...)``) is trained alone: the
best script of each dependency when ``fit`` starts is frozen, loaded beside
every script of the module, and recorded in its checkpoint.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from langprop_core.callbacks import Callback
from langprop_core.checkpoint import INDEX_FILE, load_checkpoint, save_checkpoint
from langprop_common.files import atomic_write_json
from langprop_core.dead_logic import dead_conditions
from langprop_core.diversity import Archive, Behaviour
from langprop_core.llm.base import ChatMessage, LLMError, Optimizer, Proposal, ProposalRequest
from langprop_core.llm.edits import EDIT_MIN_LINES, REPLY_FORMATS
from langprop_core.llm.reply import ReplyError, extract_script, script_from_reply
from langprop_core.metrics import MetricsLog, plot_behaviours, plot_training_curve
from langprop_core.module import Module
from langprop_core.policy import Policy, policy_id_for
from langprop_core.sandbox import CallResult, Dependency, SandboxConfig, ScriptRunner, bounded_repr
from langprop_core.task import CaseScore, Task, score_call

__all__ = ["TrainerConfig", "FitResult", "Trainer", "SetupError"]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
STATE_VERSION = 1
_TRACEBACK_LINES = 12


class SetupError(RuntimeError):
    """The zero-shot setup phase produced no usable script."""


@dataclass(frozen=True)
class TrainerConfig:
    """How training runs. ``seed`` fixes the batch order and the optimizer's per-request seeds."""

    epochs: int = 1
    batch_size: int = 32
    n_responses: int = 2
    top_k: int = 2
    n_failure_cases: int = 3
    max_case_chars: int = 1500
    val_every_epoch: bool = True
    seed: int = 0
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    progress: bool = True
    shuffle: bool = True
    setup_attempts: int = 3
    # diversity (used when the task has a behaviour space): islands and batches between migrations
    islands: int = 2
    migration_interval: int = 4
    # reject children with a condition that never or always holds
    reject_dead_logic: bool = True
    # what update prompts ask for: "edits" (edit blocks against the parent), "rewrite" (the complete
    # script), "auto" (edits for parents of more than edit_min_lines lines). A reply whose edits do not
    # apply gets one follow-up request for the complete script; setup prompts always ask for one.
    reply_format: str = "auto"
    edit_min_lines: int = EDIT_MIN_LINES

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_responses", "setup_attempts", "islands", "migration_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainerConfig.{name} must be >= 1, not {getattr(self, name)}")
        if self.reply_format not in REPLY_FORMATS:
            raise ValueError(f"TrainerConfig.reply_format must be one of {', '.join(REPLY_FORMATS)}, "
                             f"not {self.reply_format!r}")
        for name in ("top_k", "n_failure_cases", "edit_min_lines"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainerConfig.{name} must be >= 0, not {getattr(self, name)}")


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns: the best script (None if the population
    is empty) and every history record of the run, resumed parts included."""

    best_policy: Policy | None
    history: list[dict[str, Any]]
    #: why training stopped before its last epoch (a callback's :meth:`Trainer.request_stop`), else None
    stopped: str | None = None


@dataclass(frozen=True)
class _Answer:
    """What one reply gave: a script (with the proposal that gave it and the messages it answered), or
    why not. ``edit_error`` is set when the reply's edits did not apply and a follow-up was asked."""

    proposal: Proposal
    messages: tuple[ChatMessage, ...]
    source: str | None = None
    error: ReplyError | None = None
    edit_error: ReplyError | None = None


@dataclass
class _Prepared:
    args: list[tuple]
    labels: list[Any]


def _derive_seed(*parts: Any) -> int:
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(0, limit - 14)] + "\n... (trimmed)"


def _short_repr(value: Any, limit: int) -> str:
    # Bounded in size and time: a script's output may be built to make repr explode.
    return bounded_repr(value, limit)


_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD")


def _secrets(optimizer: Any) -> tuple[str, ...]:
    """Values no script output may carry into a prompt, the index or a log: the
    configured API key and any environment value named like a key, token or password."""
    from langprop_core.llm.factory import resolve_api_key

    found = {resolve_api_key(), getattr(optimizer, "api_key", None)}
    found.update(v for k, v in os.environ.items() if any(w in k.upper() for w in _SECRET_WORDS))
    return tuple(sorted((v for v in found if isinstance(v, str) and len(v) >= 8), key=len, reverse=True))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _speed_class(mean_call_s: float | None) -> str | None:
    """The mean call time as the prompts show it: an order of magnitude, so the
    prompt (and with it a replayed LLM call) does not change with the machine's load."""
    if mean_call_s is None:
        return None
    ms = mean_call_s * 1000.0
    for bound in (1, 10, 100, 1000):
        if ms < bound:
            return f"under {bound}" if bound == 1 else f"{bound // 10}-{bound}"
    return "over 1000"


def _state_key(callback: Callback) -> str:
    return getattr(callback, "state_key", "") or type(callback).__name__


def _mean_score(cases: list[CaseScore]) -> float:
    return sum(c.score for c in cases) / len(cases)


class Trainer:
    """Owns the loop; see the module docstring. ``run_dir`` receives checkpoints,
    ``metrics.jsonl`` and ``training_curve.png``."""

    def __init__(self, optimizer: Optimizer, config: TrainerConfig | None = None,
                 run_dir: Path | str = "runs/langprop", callbacks: Sequence[Callback] = ()) -> None:
        self.optimizer = optimizer
        self.config = config or TrainerConfig()
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.rejected: Counter[str] = Counter()
        #: children the optimizer's replies added to the population (setup and updates) by this trainer
        self.children_admitted = 0
        self._runner: ScriptRunner | None = None
        self._state: dict[str, Any] | None = None
        self._dependencies: tuple[Dependency, ...] = ()
        self._secrets = _secrets(optimizer)
        self.stop_reason: str | None = None
        self._task: Task | None = None
        #: behaviours and islands of the population (None when the task has no behaviour space)
        self.archive: Archive | None = None

    def request_stop(self, reason: str) -> None:
        """Stop at the next batch boundary (the checkpoint is already written); ``fit`` returns ``stopped``."""
        self.stop_reason = reason

    # -- public API

    def checkpoint_dir(self, module: Module) -> Path:
        """Where ``module``'s checkpoint is written (see :meth:`checkpoint_dir_for`)."""
        return self.checkpoint_dir_for(module.name)

    def checkpoint_dir_for(self, module_name: str) -> Path:
        """``run_dir/checkpoints/<module_name>``."""
        return self.run_dir / "checkpoints" / module_name

    def fit(self, module: Module, task: Task, train_data: Iterable, val_data: Iterable | None = None,
            resume: bool = False) -> FitResult:
        """Train ``module`` on ``train_data``; validate on ``val_data`` after every epoch."""
        cfg = self.config
        train = self._prepare(task, train_data, "train")
        val = self._prepare(task, val_data, "validation") if val_data is not None else None
        if not train.args:
            raise ValueError("fit: the training data is empty")
        n_batches = -(-len(train.args) // cfg.batch_size)
        validate = val is not None and bool(val.args) and cfg.val_every_epoch
        # Frozen for the whole fit: only ``module`` is trained.
        self._dependencies = module.dependencies()
        metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self._task = task
        self.archive = (Archive(cfg.islands, cfg.migration_interval) if task.behaviour is not None else None)
        state = self._start_state(module, resume, metrics)
        self._state = state
        self._check_layout(state, len(train.args))
        self._runner = ScriptRunner(cfg.sandbox)
        try:
            if not state["setup_done"]:
                self._setup(module, state)
                state["setup_done"] = True
                self._save(module, state)
            self._measure(module, module.population)
            if (validate and state["step"] == 0
                    and not any(r["kind"] == "val" for r in state["history"])):
                # Where training starts from, so the curve shows what it gained.
                state["history"].append(self._validate(module, task, val, -1, 0))
                metrics.append(state["history"][-1])
                self._save(module, state)
            self.stop_reason = None
            self._call("on_fit_start", module)
            total = cfg.epochs * n_batches
            done = min(total, state["epoch"] * n_batches + state["batch"])
            with self._progress(total, done, module.name) as bar:
                while state["epoch"] < cfg.epochs and self.stop_reason is None:
                    epoch = state["epoch"]
                    order = self._batch_order(len(train.args), epoch)
                    while state["batch"] < n_batches and self.stop_reason is None:
                        b = state["batch"]
                        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                        last = epoch == cfg.epochs - 1 and b == n_batches - 1
                        record = self._train_batch(module, task, train, idx, state, propose=not last)
                        self._call("on_batch_record", module, record)
                        state["history"].append(record)
                        state["batch"] = b + 1
                        state["step"] += 1
                        self._save(module, state)
                        metrics.append(dict(record, time_s=round(time.time(), 3),
                                            tokens=vars(self.optimizer.usage())))
                        self._call("on_batch_end", module, record)
                        bar.update(1)
                        bar.set_postfix(best=f"{record['best_priority']:.3f}", pop=len(module.population))
                    if state["batch"] < n_batches:  # stopped inside the epoch: its end is for the resumed run
                        break
                    epoch_record = {"kind": "epoch", "epoch": epoch, "step": state["step"],
                                    "best_id": module.best().id, "best_priority": module.best().priority}
                    if self.archive is not None:
                        epoch_record["behaviours"] = self.archive.occupancy(module.population)
                    if validate:
                        val_record = self._validate(module, task, val, epoch, state["step"])
                        state["history"].append(val_record)
                        metrics.append(val_record)
                        epoch_record.update(best_val_score=val_record["best_val_score"])
                    state["epoch"] = epoch + 1
                    state["batch"] = 0
                    self._save(module, state)
                    self._plot(module, state)
                    self._call("on_epoch_end", module, epoch_record)
            result = FitResult(best_policy=module.best() if module.population else None,
                               history=list(state["history"]),
                               stopped=self.stop_reason if state["epoch"] < cfg.epochs else None)
            if result.stopped is not None:
                log.warning("training stopped: %s; checkpoint %s (resume to go on)", self.stop_reason,
                            self.checkpoint_dir(module))
            self._plot(module, state)
            self._call("on_fit_end", module, result)
            return result
        except LLMError as exc:
            log.error("the optimizer failed: %s; the last checkpoint in %s is intact, "
                      "continue with resume=True", exc, self.checkpoint_dir(module))
            raise
        finally:
            self._runner.close()
            self._runner = None

    def evaluate(self, module: Module, task: Task, data: Iterable) -> dict[str, float]:
        """Mean score of every script of the population on ``data`` (no training)."""
        prepared = self._prepare(task, data, "evaluation")
        own = self._runner is None
        if own:
            self._dependencies = module.dependencies()
        runner = ScriptRunner(self.config.sandbox) if own else self._runner
        try:
            scores = self._score_population(module, task, prepared, list(range(len(prepared.args))),
                                            runner)
        finally:
            if own:
                runner.close()
        return {pid: (_mean_score(cases) if cases else float("nan"))
                for pid, (cases, _) in scores.items()}

    def behaviours(self, module: Module) -> dict[str, Any] | None:
        """What ``module``'s population holds on the task's probe set (distinct behaviours, niches, islands,
        each script's descriptor; see :meth:`langprop_core.diversity.Archive.occupancy`), scripts not yet
        measured measured now; None when the last fit's task has no behaviour space."""
        if self.archive is None:
            return None
        self._measure(module, module.population)
        return self.archive.occupancy(module.population)

    # -- state and checkpoints

    def _start_state(self, module: Module, resume: bool, metrics: MetricsLog) -> dict[str, Any]:
        ck_dir = self.checkpoint_dir(module)
        if resume and (ck_dir / INDEX_FILE).is_file():
            ck = load_checkpoint(ck_dir)
            state = ck.extra.get("trainer_state")
            if not state:
                raise ValueError(f"{ck_dir / INDEX_FILE}: no trainer_state to resume from "
                                 f"(a checkpoint written for inference only?)")
            module.load_population(ck.policies, state.get("seen_ids", ()))
            self.rejected = Counter(state.get("rejected", {}))
            if self.archive is not None and state.get("diversity"):
                self.archive.load_state_dict(state["diversity"])
            for callback in self.callbacks:
                saved = state.get("callbacks", {}).get(_state_key(callback))
                if saved and hasattr(callback, "load_state_dict"):
                    callback.load_state_dict(saved)
            metrics.rewrite(state["history"])
            log.info("resuming %s at epoch %d batch %d (%d scripts)", module.name, state["epoch"],
                     state["batch"], len(module.population))
            return state
        if not resume and metrics.path.exists():
            metrics.path.unlink()
        module.load_population([])
        module.seed()
        self.rejected = Counter()
        return {"version": STATE_VERSION, "epoch": 0, "batch": 0, "step": 0, "setup_done": False,
                "history": [], "seen_ids": [], "rejected": {}}

    def _check_layout(self, state: dict[str, Any], n_train: int) -> None:
        """Batches must be cut the same way as before a resume, or it would not continue the run."""
        layout = {"batch_size": self.config.batch_size, "seed": self.config.seed,
                  "shuffle": self.config.shuffle, "n_train": n_train}
        before = state.setdefault("layout", layout)
        changed = {k: (before.get(k), v) for k, v in layout.items() if before.get(k) != v}
        if changed:
            text = ", ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"cannot resume {self.run_dir}: {text} (use the same settings and "
                             f"data, or start a new run without resume)")

    def _save(self, module: Module, state: dict[str, Any]) -> None:
        state["seen_ids"] = sorted(module.seen_ids)
        state["rejected"] = dict(sorted(self.rejected.items()))
        if self.archive is not None:
            state["diversity"] = self.archive.state_dict()
        kept = {_state_key(cb): cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")}
        state["callbacks"] = {key: value for key, value in kept.items() if value}
        extra: dict[str, Any] = {}
        for callback in self.callbacks:
            if hasattr(callback, "checkpoint_extra"):
                extra.update(callback.checkpoint_extra())
        ck_dir = self.checkpoint_dir(module)
        # The state lives in the index (one atomic write with the population);
        # trainer_state.json is a readable copy.
        save_checkpoint(ck_dir, module.name, module.function_name, module.population,
                        extra={**extra, "trainer_state": state}, dependencies=self._dependencies)
        atomic_write_json(ck_dir / STATE_FILE, {k: v for k, v in state.items() if k != "history"})

    def save(self, module: Module) -> None:
        """Write ``module``'s checkpoint now (for callbacks that changed the population or their state)."""
        if self._state is None:
            raise RuntimeError("Trainer.save: no fit has started")
        self._save(module, self._state)

    def _plot(self, module: Module, state: dict[str, Any]) -> None:
        plot_training_curve(state["history"], self.run_dir / "training_curve.png",
                            title=f"{module.name} ({self.optimizer.name} optimizer)")
        if self.archive is not None:
            plot_behaviours(state["history"], self.run_dir / "behaviours.png",
                            title=f"{module.name}: behaviours on the probe set")

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)  # a duck-typed callback may leave hooks out
            if method is not None:
                method(self, *args)

    # -- data

    @staticmethod
    def _prepare(task: Task, data: Iterable, what: str) -> _Prepared:
        args, labels = [], []
        for i, item in enumerate(data):
            try:
                a, label = task.preprocess(item)
            except Exception as exc:
                raise ValueError(f"{what} item {i}: preprocess failed: {type(exc).__name__}: {exc}") from exc
            if not isinstance(a, tuple):
                raise TypeError(f"{what} item {i}: preprocess must return (args_tuple, label), "
                                f"got args of type {type(a).__name__}")
            args.append(a)
            labels.append(label)
        return _Prepared(args, labels)

    def _batch_order(self, n: int, epoch: int) -> list[int]:
        order = list(range(n))
        if self.config.shuffle:
            random.Random(_derive_seed(self.config.seed, "epoch", epoch)).shuffle(order)
        return order

    def _progress(self, total: int, done: int, name: str) -> Any:
        from tqdm.auto import tqdm
        return tqdm(total=total, initial=done, desc=f"train {name}", unit="batch",
                    disable=not self.config.progress, leave=True)

    # -- scoring

    def _score_population(self, module: Module, task: Task, data: _Prepared, idx: list[int],
                          runner: ScriptRunner) -> dict[str, tuple[list[CaseScore], list[CallResult]]]:
        args = [data.args[i] for i in idx]
        sources = {p.id: p.source for p in module.population}
        results = runner.run_batch(sources, module.function_name, args, self._dependencies)
        out = {}
        for pid, calls in results.items():
            cases = [score_call(task, r, data.labels[i], data.args[i]) for r, i in zip(calls, idx)]
            out[pid] = (cases, calls)
        return out

    def _train_batch(self, module: Module, task: Task, data: _Prepared, idx: list[int],
                     state: dict[str, Any], propose: bool) -> dict[str, Any]:
        epoch, batch, step = state["epoch"], state["batch"], state["step"]
        scored = self._score_population(module, task, data, idx, self._runner)
        batch_scores: dict[str, float] = {}
        exceptions = 0
        for policy in module.population:
            cases, _ = scored[policy.id]
            mean = _mean_score(cases)
            n_exc = sum(c.error is not None for c in cases)
            batch_scores[policy.id] = mean
            _, calls = scored[policy.id]
            policy.record_call_times(sum(c.duration_s for c in calls), len(calls))
            policy.n_calls += len(cases)
            policy.n_exceptions += n_exc
            exceptions += n_exc
        difficulty = module.fold_batch(batch_scores)
        retired = self._retire_worker_killers(module, scored)
        self._rerank(module)
        before = Counter(self.rejected)
        new = 0
        migrated: list[tuple[str, int, int]] = []
        if propose:
            parents, islands = self._parents(module, batch_scores, step)
            requests = [self._update_request(module, task, data, idx, p, batch_scores[p.id],
                                             scored[p.id], step, rank,
                                             others=tuple(o.source for o in parents if o is not p))
                        for rank, p in enumerate(parents)]
            new = self._propose_and_admit(module, requests, parents, islands)
            if self.archive is not None:
                migrated = self.archive.migrate(module.population, step + 1)
        best = module.best()
        rejected_now = {k: v - before.get(k, 0) for k, v in self.rejected.items() if v - before.get(k, 0)}
        return {"kind": "train", "epoch": epoch, "batch": batch, "step": step + 1,
                "best_id": best.id, "best_priority": best.priority,
                "best_batch_score": max(batch_scores.values()),
                "mean_batch_score": sum(batch_scores.values()) / len(batch_scores),
                "batch_difficulty": difficulty,
                "population": len(module.population), "new_scripts": new,
                "exceptions": exceptions, "calls": len(idx) * len(batch_scores),
                "rejected": rejected_now, "retired": retired,
                **({"behaviours": {k: v for k, v in self.archive.occupancy(module.population).items()
                                   if k != "descriptors"}, "migrated": [list(m) for m in migrated]}
                   if self.archive is not None else {})}

    def _rerank(self, module: Module) -> None:
        """Sort and cut the population; with a behaviour space the best of every niche and island survive."""
        if self.archive is None:
            module.rerank()
            return
        module.rerank(select=self.archive.survivors)
        self.archive.forget(module.population)

    def _parents(self, module: Module, batch_scores: dict[str, float],
                 step: int) -> tuple[list[Policy], list[int | None]]:
        """The ``top_k`` scripts to rewrite (not yet perfect), drawn across islands and niches when the task
        has a behaviour space, and the island each is drawn for."""
        if self.archive is None:
            parents = [p for p in module.population[:self.config.top_k] if batch_scores[p.id] < 1.0]
            return parents, [None] * len(parents)
        eligible = [p for p in module.population if p.id in batch_scores and batch_scores[p.id] < 1.0]
        drawn = self.archive.parents(eligible, self.config.top_k, step)
        return [p for p, _ in drawn], [i for _, i in drawn]

    def _probe_outputs(self, policies: Sequence[Policy], function_name: str,
                       inputs: list[tuple] | None = None) -> dict[str, list[Any]]:
        """Each script's outputs on the task's probes, or on ``inputs`` (None for a call that failed)."""
        behaviour = self._task.behaviour if self._task is not None else None
        if behaviour is None or not policies:
            return {}
        runner = self._runner or ScriptRunner(self.config.sandbox)
        try:
            results = runner.run_batch({p.id: p.source for p in policies}, function_name,
                                       list(behaviour.probes) if inputs is None else inputs, self._dependencies)
        finally:
            if runner is not self._runner:
                runner.close()
        return {pid: [c.output if c.exception is None else None for c in calls] for pid, calls in results.items()}

    def _measure(self, module: Module, policies: Sequence[Policy]) -> None:
        """Record the behaviour of every script of ``policies`` the archive does not know yet."""
        if self.archive is None or self._task is None or self._task.behaviour is None:
            return
        todo = [p for p in policies if p.id not in self.archive.behaviours]
        for pid, outputs in self._probe_outputs(todo, module.function_name).items():
            policy = next(p for p in todo if p.id == pid)
            self.archive.add(policy, self._task.behaviour.measure(outputs))

    @staticmethod
    def _retire_worker_killers(module: Module, scored: dict[str, tuple[list, list]]) -> list[str]:
        """Drop scripts that ended their worker on every call of the batch (a resume of a
        checkpoint holding one then progresses); one script always stays. Their ids."""
        retired = []
        for policy in list(module.population):
            calls = scored[policy.id][1]
            if len(module.population) > 1 and calls and all(c.killed_worker for c in calls):
                module.population.remove(policy)
                retired.append(policy.id)
                log.info("script %s retired: it ended its worker on every call", policy.id)
        return retired

    def _validate(self, module: Module, task: Task, data: _Prepared, epoch: int,
                  step: int) -> dict[str, Any]:
        scored = self._score_population(module, task, data, list(range(len(data.args))), self._runner)
        means = {pid: _mean_score(cases) for pid, (cases, _) in scored.items()}
        best = module.best()
        return {"kind": "val", "epoch": epoch, "step": step, "best_id": best.id,
                "best_val_score": means[best.id], "max_val_score": max(means.values()),
                "mean_val_score": sum(means.values()) / len(means)}

    # -- prompts and proposals

    def _case_text(self, task: Task, args: tuple, label: Any, result: CallResult,
                   case: CaseScore) -> str:
        limit = self.config.max_case_chars
        body = None
        if task.describe_case is not None:
            try:
                body = task.describe_case(args, label, result.output)
            except Exception as exc:  # noqa: BLE001 - fall back to the generic text
                log.debug("describe_case failed: %s", exc)
        if body is None:
            body = (f"Inputs: {_short_repr(args, limit // 2)}\n"
                    f"Expected: {_short_repr(label, limit // 4)}\n"
                    f"Actual output: {_short_repr(result.output, limit // 4)}")
        parts = [body.rstrip(), f"Score: {case.score:.3f}"]
        if case.error:
            parts.append(f"Exception: {case.error}")
            if case.traceback:
                lines = case.traceback.rstrip().splitlines()[-_TRACEBACK_LINES:]
                parts.append("Traceback (last lines):\n" + "\n".join(lines))
        if result.stdout:
            parts.append("Printed output:\n" + _trim(result.stdout.rstrip(), limit // 4))
        return _mask(_trim("\n".join(parts), limit), self._secrets)

    def _update_request(self, module: Module, task: Task, data: _Prepared, idx: list[int],
                        parent: Policy, score: float, scored: tuple[list[CaseScore], list[CallResult]],
                        step: int, rank: int, others: tuple[str, ...] = ()) -> ProposalRequest:
        cases, calls = scored
        worst = sorted(range(len(cases)), key=lambda j: (cases[j].score, j))
        worst = [j for j in worst if cases[j].score < 1.0][:self.config.n_failure_cases]
        failures = [self._case_text(task, data.args[idx[j]], data.labels[idx[j]], calls[j], cases[j])
                    for j in worst]
        messages = module.update_prompt(parent, score, failures, reply_format=self._reply_format(parent),
                                        mean_call_ms=_speed_class(parent.mean_call_s))
        return ProposalRequest(messages=tuple(messages), n=self.config.n_responses,
                               function_name=module.function_name, parent_source=parent.source,
                               seed=_derive_seed(self.config.seed, "update", step, rank, parent.id),
                               other_sources=others, cases=tuple(data.args[idx[j]] for j in worst))

    def _reply_format(self, parent: Policy) -> str:
        """What the update prompt of ``parent`` asks for: "edits" or "rewrite" (see ``TrainerConfig``)."""
        chosen = self.config.reply_format
        if chosen == "auto":
            return "edits" if len(parent.source.splitlines()) > self.config.edit_min_lines else "rewrite"
        return chosen

    def _propose(self, request: ProposalRequest) -> list[Proposal]:
        # An LLMError (the client gave up after its retries, or a replay-cache
        # miss) ends the run: the checkpoint of the last batch is intact, and a
        # silent gap would make a replayed run differ from its recording.
        return list(self.optimizer.propose(request))

    def _answers(self, request: ProposalRequest) -> list[_Answer]:
        """The replies to ``request`` made scripts; a reply whose edits do not apply (and that holds no
        complete script) gets one follow-up request, in this thread, for the complete script."""
        answers = []
        for k, proposal in enumerate(self._propose(request)):
            try:
                source = script_from_reply(proposal.reply, request.function_name, request.parent_source)
                answers.append(_Answer(proposal, request.messages, source=source))
            except ReplyError as exc:
                answers.append(self._rewrite_after(request, proposal, exc, k) if exc.reason == "edit_failed"
                               else _Answer(proposal, request.messages, error=exc))
        return answers

    def _rewrite_after(self, request: ProposalRequest, proposal: Proposal, edit_error: ReplyError,
                       k: int) -> _Answer:
        """Ask once more, for the complete script: the conversation so far and, in one line, which edit
        failed and why (deterministic, as every prompt: a recorded run replays it)."""
        messages = (*request.messages, ChatMessage("assistant", proposal.reply), ChatMessage(
            "user", f"Your edits could not be applied ({edit_error}). Answer with the complete improved "
                    f"script in one fenced ```python block."))
        follow_up = ProposalRequest(messages=messages, n=1, function_name=request.function_name,
                                    parent_source=request.parent_source,
                                    seed=_derive_seed(request.seed, "rewrite", k), other_sources=request.other_sources)
        replies = self._propose(follow_up)
        if not replies:
            return _Answer(proposal, messages, error=ReplyError("no_code", "the follow-up request got no reply"),
                           edit_error=edit_error)
        try:
            source = extract_script(replies[0].reply, request.function_name)
        except ReplyError as exc:
            return _Answer(replies[0], messages, error=exc, edit_error=edit_error)
        return _Answer(replies[0], messages, source=source, edit_error=edit_error)

    def _propose_and_admit(self, module: Module, requests: list[ProposalRequest],
                           parents: list[Policy | None], islands: Sequence[int | None] | None = None) -> int:
        if not requests:
            return 0
        pool = ThreadPoolExecutor(max_workers=len(requests), thread_name_prefix="langprop-llm")
        try:
            answered = list(pool.map(self._answers, requests))
        except BaseException:
            # Ctrl-C (or one proposal's error), wherever it lands: calls that wait on an answer stop, so the
            # pool can close
            self.optimizer.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
        islands = list(islands) if islands is not None else [None] * len(requests)
        children: list[tuple[Policy, Policy | None, int | None, tuple[tuple, ...]]] = []
        for request, parent, island, answers in zip(requests, parents, islands, answered):
            for answer in answers:
                if answer.edit_error is not None:
                    # counted apart: "edit_failed" replies each cost a follow-up request,
                    # "fallback_failed" follow-ups gave no script either
                    self.rejected["edit_failed"] += 1
                    log.info("edits rejected (%s); asked for the complete script", answer.edit_error)
                if answer.error is not None:
                    reason = "fallback_failed" if answer.edit_error is not None else answer.error.reason
                    self.rejected[reason] += 1
                    log.warning("reply rejected (%s): %s", reason, answer.error)
                    continue
                proposal = answer.proposal
                child = Policy.from_source(
                    answer.source, module.function_name, parent_id=parent.id if parent else None,
                    generation=parent.generation + 1 if parent else 0,
                    prompt=[m.to_dict() for m in answer.messages], reply=proposal.reply,
                    optimizer=proposal.optimizer, sampling=dict(proposal.sampling))
                children.append((child, parent, island, request.cases))
        admitted = self._admit(module, children)
        self.children_admitted += admitted
        return admitted

    def _admit(self, module: Module,
               children: list[tuple[Policy, Policy | None, int | None, tuple[tuple, ...]]]) -> int:
        """Admit the children that are new text, have no dead condition and (with a behaviour space) behave
        unlike their parent and every member, on the probes or on the failure cases their prompt showed;
        count the others by reason."""
        domains = self._task.input_domains if self._task is not None else None
        fresh: list[tuple[Policy, Policy | None, int | None, tuple[tuple, ...]]] = []
        ids: set[str] = set()
        for child, parent, island, cases in children:
            child.id = policy_id_for(child.source)
            if child.id in module.seen_ids or child.id in ids:
                self.rejected["duplicate"] += 1
                continue
            if self.config.reject_dead_logic:
                dead = dead_conditions(child.source, domains)
                if dead:
                    self.rejected["dead_condition"] += 1
                    module.seen_ids.add(child.id)  # the same text would be rejected again
                    log.debug("child rejected: %s", "; ".join(map(str, dead)))
                    continue
            ids.add(child.id)
            fresh.append((child, parent, island, cases))
        behaviour = self._task.behaviour if self._task is not None and self.archive is not None else None
        outputs = self._probe_outputs([c for c, _, _, _ in fresh], module.function_name) if behaviour else {}
        if behaviour is not None:
            self._measure(module, [*module.population, *(p for _, p, _, _ in fresh if p is not None)])
        admitted = 0
        for child, parent, island, cases in fresh:
            measured: Behaviour | None = None
            if behaviour is not None and self.archive is not None:
                measured = behaviour.measure(outputs[child.id])
                reason = self.archive.novelty(measured, parent, module.population)
                if reason is not None and not self._fixes_differently(child, parent, cases, measured, module):
                    self.rejected[reason] += 1
                    module.seen_ids.add(child.id)
                    continue
            if module.admit(child):
                admitted += 1
                if measured is not None and self.archive is not None:
                    if island is None and parent is not None:
                        island = min(self.archive.island_of(parent))
                    self.archive.add(child, measured, island)
            else:
                self.rejected["duplicate"] += 1
        return admitted

    def _fixes_differently(self, child: Policy, parent: Policy | None, cases: tuple[tuple, ...],
                           measured: Behaviour, module: Module) -> bool:
        """Whether a child that behaves like its parent or a member on the probes answers the failure cases
        its prompt showed unlike every one of them: a fix of what the probes do not cover (a reply that
        changes how a crossing walker is handled, say) is new behaviour, not a duplicate."""
        if not cases or self._task is None or self._task.behaviour is None or self.archive is None:
            return False
        candidates = {p.id: p for p in (*module.population, parent) if p is not None}
        twins = self.archive.alike(measured, candidates.values())
        if not twins:
            return False
        signature = self._task.behaviour.signature
        answers = self._probe_outputs([child, *twins], module.function_name, inputs=list(cases))
        mine = signature(answers[child.id])
        return all(signature(answers[t.id]) != mine for t in twins)

    def _setup(self, module: Module, state: dict[str, Any]) -> None:
        """Zero-shot setup: ask for scripts from scratch until the population is not empty."""
        for attempt in range(self.config.setup_attempts):
            if module.population:
                return
            request = ProposalRequest(messages=tuple(module.setup_prompt()), n=self.config.n_responses,
                                      function_name=module.function_name, parent_source=None,
                                      seed=_derive_seed(self.config.seed, "setup", attempt))
            self._propose_and_admit(module, [request], [None])
        if not module.population:
            raise SetupError(f"module {module.name!r}: no usable script after "
                             f"{self.config.setup_attempts} setup attempts with "
                             f"{self.optimizer.describe()} (rejected replies: {dict(self.rejected)})")
