"""Rank the population on the whole training set when a fit ends.

During training a script's priority is a decayed running average of the
batches it was scored on (:meth:`langprop_core.module.Module.update_priority`):
cheap, and good enough to choose parents, but a script born late was scored
on a few batches only, and a small batch may hold none of the rare scenes that
tell two scripts apart. What a stage hands on (its best script, the top few
that selection by validation runs) should be ranked by the objective itself.
:class:`RescoreOnFitEnd` scores every script of the population on the given
data once, in the trainer's sandbox, and makes those scores the priorities;
give it before :class:`langprop_core.selection.SelectByValidation`, which then
takes its candidates from that ranking.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Iterable

from langprop_core.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.module import Module
    from langprop_core.task import Task
    from langprop_core.trainer import FitResult, Trainer

__all__ = ["RescoreOnFitEnd"]

log = logging.getLogger(__name__)


class RescoreOnFitEnd(Callback):
    """At the end of a fit, every script's priority becomes its mean score on ``data`` under ``task``.

    The scores are kept in the checkpoint index as ``extra["rescored"]``
    (``{"records": n, "scores": {policy id: score}}``); ``result.best_policy``
    becomes the new top script.
    """

    state_key = "rescore"

    def __init__(self, task: "Task", data: Iterable[Any]) -> None:
        self.task = task
        self.data = list(data)
        self.scores: dict[str, float] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"scores": dict(self.scores)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = {k: float(v) for k, v in (state.get("scores") or {}).items()}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"rescored": {"records": len(self.data), "scores": dict(self.scores)}} if self.scores else {}

    def on_fit_end(self, trainer: "Trainer", module: "Module", result: "FitResult") -> None:
        if not module.population or not self.data:
            return
        log.info("scoring %d script(s) on all %d training records", len(module.population), len(self.data))
        scores = trainer.evaluate(module, self.task, self.data)
        for policy in module.population:
            score = scores.get(policy.id)
            if score is not None and not math.isnan(score):  # NaN: nothing scored
                policy.priority = float(score)
        self.scores = {p.id: float(p.priority) for p in module.population if p.priority is not None}
        module.rerank()
        result.best_policy = module.best()
        trainer.save(module)
