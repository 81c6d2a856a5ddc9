"""A module: a named function, its prompts, and its population of scripts.

The population is ranked by priority, a decayed running average of batch
scores: after a batch with mean score ``s``,
``weight' = decay * weight + 1`` and
``priority' = (decay * weight * priority + s) / weight'``,
so a script's first batch sets its priority to ``s`` and older batches count
less and less. At most ``max_keep`` scripts survive a ranking.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from langprop_core.llm.base import ChatMessage
from langprop_core.policy import Policy, policy_id_for
from langprop_core.templates import render_chat

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.inference import PolicyFunction

__all__ = ["Module"]

log = logging.getLogger(__name__)

SETUP_TEMPLATE = "setup.txt"
UPDATE_TEMPLATE = "update.txt"


class Module:
    """A trainable function: ``function_name`` defined by the best of its scripts.

    ``template_dir`` holds ``setup.txt`` (write from scratch) and ``update.txt``
    (improve a script given its failures). ``template_vars`` are passed to
    both. ``seed_sources`` start the population (no setup phase then).
    """

    def __init__(self, name: str, function_name: str, template_dir: Path, max_keep: int = 16,
                 priority_decay: float = 0.9, seed_sources: Iterable[str] = (),
                 template_vars: dict[str, Any] | None = None) -> None:
        if max_keep < 1:
            raise ValueError(f"Module {name!r}: max_keep must be >= 1, not {max_keep}")
        if not 0.0 <= priority_decay < 1.0:
            raise ValueError(f"Module {name!r}: priority_decay must be in [0, 1), not {priority_decay}")
        self.name = name
        self.function_name = function_name
        self.template_dir = Path(template_dir)
        for template in (SETUP_TEMPLATE, UPDATE_TEMPLATE):
            if not (self.template_dir / template).is_file():
                raise FileNotFoundError(f"Module {name!r}: {self.template_dir / template} not found")
        self.max_keep = max_keep
        self.priority_decay = priority_decay
        self.seed_sources = list(seed_sources)
        self.template_vars = dict(template_vars or {})
        self.population: list[Policy] = []
        # Every script id ever admitted: a script dropped from the population
        # is not admitted again when an optimizer proposes it once more.
        self.seen_ids: set[str] = set()

    # -- population

    def seed(self) -> int:
        """Admit the seed scripts; returns how many were new."""
        return sum(self.admit(Policy.from_source(src, self.function_name, optimizer="seed"))
                   for src in self.seed_sources)

    def admit(self, policy: Policy) -> bool:
        """Add ``policy`` unless the same script (up to comments and layout) was seen before."""
        if policy.id != policy_id_for(policy.source):
            policy.id = policy_id_for(policy.source)
        if policy.id in self.seen_ids:
            return False
        self.seen_ids.add(policy.id)
        self.population.append(policy)
        return True

    def update_priority(self, policy: Policy, batch_score: float) -> None:
        """Fold one batch's mean score into the policy's decayed running average."""
        old_weight = self.priority_decay * policy.priority_weight
        new_weight = old_weight + 1.0
        previous = policy.priority if policy.priority is not None else 0.0
        policy.priority = (old_weight * previous + batch_score) / new_weight
        policy.priority_weight = new_weight
        policy.scores.append(batch_score)

    def rerank(self) -> list[Policy]:
        """Sort best first and keep ``max_keep``; returns the dropped policies.

        Unscored scripts rank last; ties go to the older generation, then the id,
        so the order never depends on dict or thread order.
        """
        self.population.sort(key=lambda p: (p.priority is None, -(p.priority or 0.0),
                                            p.generation, p.id))
        dropped = self.population[self.max_keep:]
        del self.population[self.max_keep:]
        return dropped

    def best(self) -> Policy:
        """The top-ranked script."""
        if not self.population:
            raise LookupError(f"module {self.name!r} has no scripts yet")
        return self.population[0]

    def policy_function(self, sandbox: bool = True, timeout_s: float = 1.0) -> "PolicyFunction":
        """The best script as a callable (see :mod:`langprop_core.inference`)."""
        from langprop_core.inference import PolicyFunction
        return PolicyFunction(self.best(), sandbox=sandbox, timeout_s=timeout_s)

    def load_population(self, policies: Iterable[Policy], seen_ids: Iterable[str] = ()) -> None:
        """Replace the population (from a checkpoint)."""
        self.population = list(policies)
        self.seen_ids = set(seen_ids) | {p.id for p in self.population}

    # -- prompts

    def setup_prompt(self, **variables: Any) -> list[ChatMessage]:
        """The zero-shot prompt: write the function from scratch."""
        return render_chat(self.template_dir / SETUP_TEMPLATE,
                           **self._vars(variables))

    def update_prompt(self, policy: Policy, score: float | None, failures: list[str],
                      **variables: Any) -> list[ChatMessage]:
        """Ask to improve ``policy``; ``failures`` are the case texts of its worst calls."""
        return render_chat(self.template_dir / UPDATE_TEMPLATE,
                           **self._vars(dict(variables, code=policy.source.rstrip(), score=score,
                                             failures=failures, parent_id=policy.id,
                                             generation=policy.generation)))

    def _vars(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"function_name": self.function_name, "module_name": self.name,
                **self.template_vars, **extra}

    def __repr__(self) -> str:
        return (f"Module({self.name!r}, function={self.function_name!r}, "
                f"population={len(self.population)}, max_keep={self.max_keep})")
