"""Select by validation: the script a training stage deploys is the one that does best where it counts.

A training objective scores single calls; what matters may only show when a
script runs whole episodes (for a driving policy: routes driven in closed
loop). :class:`SelectByValidation` is a trainer callback: when a fit ends, the
``top_k`` scripts by objective (one per objective value) and the incumbent
(the script deployed before this stage) are run by a ``validate`` function the
task supplies (for driving: rollouts on held-out routes, in parallel), and the
checkpoint records which script to deploy:

- the candidate with the best validation score (ties: the better objective),
- unless it fails to beat the incumbent by more than ``min_gain``: the
  incumbent stays, so the deployed script's validation score never falls from
  one stage to the next;
- where the validator scores groups (for driving: the towns of the validation
  routes; it returns ``{policy id: {group: score}}`` and a script's score is the
  mean over its groups), a candidate that is worse than the incumbent on any
  group by more than ``min_gain`` is not deployed, however good its mean: a
  script that gains on one town by losing on another has learnt that town,
  not to drive. A few validation episodes are noisy; a margin keeps a
  candidate that only trades one episode's failure for another's from
  replacing a script that generalises (compare ``min_delta`` of early stopping).

Both figures of every script validated, the deployed one, and Spearman's rank
correlation between objective and validation over the scripts validated (does
the objective predict the validation score?) go into the checkpoint index as
``extra["selection"]`` (read by :attr:`langprop_core.checkpoint.Checkpoint.best`,
the one rule for "the best script") and into the callback's resumable state, so
a resumed run does not validate a script twice.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from langprop_core.callbacks import Callback
from langprop_core.metrics import plot_score_pairs, spearman
from langprop_core.policy import Policy

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.checkpoint import Checkpoint
    from langprop_core.module import Module
    from langprop_core.trainer import FitResult, Trainer

__all__ = ["SelectByValidation", "Validator", "selection_of", "incumbent_of"]

log = logging.getLogger(__name__)

# validate(policies) -> {policy id: score, or {group: score}}; higher is better
Validator = Callable[[Sequence[Policy]], Mapping[str, "float | Mapping[str, float]"]]


def selection_of(checkpoint: "Checkpoint") -> dict[str, Any] | None:
    """The selection record of a checkpoint (see the module docstring), or None."""
    record = checkpoint.extra.get("selection")
    return record if isinstance(record, dict) else None


def incumbent_of(checkpoint: "Checkpoint") -> tuple[Policy, float | None]:
    """The deployed script of ``checkpoint`` and its validation score (None when it was not validated)."""
    record = selection_of(checkpoint) or {}
    best = checkpoint.best
    score = record.get("deployed_validation") if record.get("deployed_id") == best.id else None
    return best, score


class SelectByValidation(Callback):
    """Validate the top scripts when a fit ends and record which one to deploy (see the module docstring).

    ``incumbent`` is the script deployed before this stage, and
    ``incumbent_score`` its validation score (validated here when None); a
    candidate replaces it only with a validation score above ``incumbent_score + min_gain``.
    ``plot_path``: where to draw objective against validation score.
    ``validation_name`` names the validation score in records and plots;
    ``context`` is recorded with the selection (e.g. what the validation ran on).
    """

    state_key = "selection"

    def __init__(self, validate: Validator, top_k: int = 3, incumbent: Policy | None = None,
                 incumbent_score: float | None = None, plot_path: Path | str | None = None,
                 validation_name: str = "validation score", context: Mapping[str, Any] | None = None,
                 min_gain: float = 0.0, incumbent_groups: Mapping[str, float] | None = None) -> None:
        if top_k < 1:
            raise ValueError(f"SelectByValidation: top_k must be >= 1, not {top_k}")
        if min_gain < 0:
            raise ValueError(f"SelectByValidation: min_gain must be >= 0, not {min_gain}")
        self.min_gain = float(min_gain)
        self.validate = validate
        self.top_k = top_k
        self.incumbent = incumbent
        self.plot_path = Path(plot_path) if plot_path is not None else None
        self.validation_name = validation_name
        self.context = dict(context or {})
        self.scores: dict[str, float] = {}
        # per group, for validators that score groups
        self.groups: dict[str, dict[str, float]] = {}
        if incumbent is not None and incumbent_score is not None:
            self.scores[incumbent.id] = float(incumbent_score)
            if incumbent_groups:
                self.groups[incumbent.id] = {str(k): float(v) for k, v in incumbent_groups.items()}
        self.record: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"scores": dict(self.scores), "groups": dict(self.groups), "record": self.record}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores.update({k: float(v) for k, v in (state.get("scores") or {}).items()})
        self.groups.update({k: {g: float(x) for g, x in v.items()} for k, v in (state.get("groups") or {}).items()})
        self.record = state.get("record")

    def _take(self, policy_id: str, value: Any) -> None:
        if isinstance(value, Mapping):
            if not value:
                raise RuntimeError(f"the validator returned no group scores for {policy_id}")
            self.groups[policy_id] = {str(k): float(v) for k, v in value.items()}
            self.scores[policy_id] = sum(self.groups[policy_id].values()) / len(self.groups[policy_id])
        else:
            self.scores[policy_id] = float(value)

    def worse_group(self, candidate_id: str, incumbent_id: str) -> str | None:
        """A group on which the candidate scores below the incumbent by more than ``min_gain`` (None: none)."""
        mine, theirs = self.groups.get(candidate_id), self.groups.get(incumbent_id)
        if not mine or not theirs:
            return None
        worse = [g for g in sorted(theirs) if g in mine and mine[g] < theirs[g] - self.min_gain]
        return worse[0] if worse else None

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"selection": self.record} if self.record else {}

    def on_fit_end(self, trainer: "Trainer", module: "Module", result: "FitResult") -> None:
        """Validate, choose, record, save the checkpoint; ``result.best_policy`` becomes the deployed script."""
        candidates = self.candidates(module, getattr(trainer, "archive", None))
        if not candidates:
            return
        pending = [p for p in candidates if p.id not in self.scores]
        if self.incumbent is not None and (self.incumbent.id not in self.scores or (
                self.groups and self.incumbent.id not in self.groups)):
            pending.append(self.incumbent)
        if pending:
            log.info("validating %d script(s): %s", len(pending), ", ".join(p.id for p in pending))
            scores = self.validate(pending)
            missing = [p.id for p in pending if p.id not in scores]
            if missing:
                raise RuntimeError(f"the validator returned no score for {', '.join(missing)}")
            for p in pending:
                self._take(p.id, scores[p.id])
        eligible = list(enumerate(candidates))
        if self.incumbent is not None:
            eligible = [(r, p) for r, p in eligible
                        if p.id == self.incumbent.id or self.worse_group(p.id, self.incumbent.id) is None]
        best = max(eligible, key=lambda rc: (self.scores[rc[1].id], -rc[0]))[1] if eligible else None
        deployed, kept = best, False
        if self.incumbent is not None and (
                best is None or self.scores[best.id] <= self.scores[self.incumbent.id] + self.min_gain):
            deployed, kept = self.incumbent, True
            if all(p.id != deployed.id for p in module.population):
                # The incumbent left the population (or never was in it): it comes back, so the
                # checkpoint holds the script it deploys; unscored on this stage's data.
                module.population.append(replace(deployed, priority=None, priority_weight=0.0, scores=[]))
        self.record = self._record(module, candidates, deployed, kept)
        result.best_policy = next(p for p in module.population if p.id == deployed.id)
        log.info("selection: deploying %s (%s %.3f%s); objective-%s rank correlation %s",
                 deployed.id, self.validation_name, self.scores[deployed.id],
                 ", the incumbent stays" if kept else "", self.validation_name,
                 "n/a" if self.record["spearman"] is None else f"{self.record['spearman']:.3f}")
        if self.plot_path is not None:
            self._plot(module.name)
        trainer.save(module)

    def candidates(self, module: "Module", archive: Any = None) -> list[Policy]:
        """The ``top_k`` best scripts by objective, one of each behaviour.

        With a behaviour archive (:class:`langprop_core.diversity.Archive`, the
        trainer's when the task has a behaviour space) one of each behaviour on the
        probe set: scripts the objective cannot tell apart may still drive apart,
        and driving is what decides. Without one, one of each objective value:
        scripts with the same objective on thousands of training cases almost
        always behave alike (mutants that differ in dead code); driving two of
        them spends a validation slot on nothing new.
        """
        behaviours = getattr(archive, "behaviours", None) or {}

        def same(a: Policy, b: Policy) -> bool:
            if a.id in behaviours and b.id in behaviours:
                return behaviours[a.id].signature == behaviours[b.id].signature
            return a.priority is not None and a.priority == b.priority

        out: list[Policy] = []
        for policy in module.population:
            if any(same(policy, c) for c in out):
                continue
            out.append(policy)
            if len(out) == self.top_k:
                break
        return out

    def _record(self, module: "Module", candidates: list[Policy], deployed: Policy, kept: bool) -> dict[str, Any]:
        in_population = {p.id: p for p in module.population}
        rows = []
        for rank, policy in enumerate(candidates):
            rows.append({"id": policy.id, "rank": rank, "objective": policy.priority,
                         "validation": self.scores[policy.id],
                         **({"groups": self.groups[policy.id]} if policy.id in self.groups else {})})
        incumbent = self.incumbent
        if incumbent is not None and all(r["id"] != incumbent.id for r in rows):
            current = in_population.get(incumbent.id)
            rows.append({"id": incumbent.id, "rank": None,
                         "objective": current.priority if current is not None else None,
                         "validation": self.scores[incumbent.id],
                         **({"groups": self.groups[incumbent.id]} if incumbent.id in self.groups else {})})
        paired = [r for r in rows if r["objective"] is not None]
        rho = spearman([r["objective"] for r in paired], [r["validation"] for r in paired])
        current = in_population.get(deployed.id)
        return {"deployed_id": deployed.id, "deployed_validation": self.scores[deployed.id],
                "deployed_groups": self.groups.get(deployed.id),
                "deployed_objective": current.priority if current is not None else None,
                "kept_incumbent": kept, "incumbent_id": incumbent.id if incumbent else None,
                "incumbent_validation": self.scores.get(incumbent.id) if incumbent else None,
                "validation_name": self.validation_name, "top_k": self.top_k, "min_gain": self.min_gain,
                "candidates": rows,
                "spearman": rho, "n_paired": len(paired), **self.context}

    def _plot(self, module_name: str) -> None:
        rows = [r for r in self.record["candidates"] if r["objective"] is not None]
        rho = self.record["spearman"]
        try:
            plot_score_pairs([(r["objective"], r["validation"], r["id"][:7]) for r in rows], self.plot_path,
                             "objective (training priority)", self.validation_name,
                             f"{module_name}: Spearman {'n/a' if rho is None else f'{rho:.2f}'}")
        except Exception as exc:  # noqa: BLE001 - a picture must not fail a finished stage
            log.warning("could not draw %s: %s", self.plot_path, exc)
