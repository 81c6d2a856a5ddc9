"""Trainer callbacks: hooks that do nothing by default.

The trainer calls every hook from one place, in the order the callbacks were
given. ``record`` is the history entry just written (see
:mod:`langprop_core.metrics`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.module import Module
    from langprop_core.trainer import FitResult, Trainer

__all__ = ["Callback", "LoggingCallback"]


class Callback:
    """Override the hooks you need.

    A callback with a ``state_key`` keeps :meth:`state_dict` in the trainer's
    state inside the checkpoint, and gets it back through
    :meth:`load_state_dict` when a run resumes; :meth:`checkpoint_extra` is
    merged into the checkpoint index's ``extra`` on every save (what readers
    of the checkpoint should see, e.g. which script was selected).
    """

    state_key: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """What this callback must remember across a resume (JSON-ready)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output of the run being resumed."""

    def checkpoint_extra(self) -> dict[str, Any]:
        """Entries for the checkpoint index's ``extra`` (JSON-ready; not ``trainer_state``)."""
        return {}

    def on_fit_start(self, trainer: "Trainer", module: "Module") -> None:
        """Called once the population is ready (seeded, set up or resumed)."""

    def on_batch_end(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        """Called after a batch was scored, the population reranked and the checkpoint written."""

    def on_epoch_end(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        """Called after an epoch (and its validation, when there is validation data)."""

    def on_fit_end(self, trainer: "Trainer", module: "Module", result: "FitResult") -> None:
        """Called when training has finished."""


class LoggingCallback(Callback):
    """Logs one line per batch and per epoch through :mod:`logging`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("langprop_core.trainer")

    def on_batch_end(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        self.log.info("epoch %d batch %d: best %s priority %.4f, batch mean %.4f, %d new, rejected %s",
                      record["epoch"], record["batch"], record["best_id"], record["best_priority"],
                      record["mean_batch_score"], record["new_scripts"], record["rejected"])

    def on_epoch_end(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        self.log.info("epoch %d done: %s", record["epoch"], record)
