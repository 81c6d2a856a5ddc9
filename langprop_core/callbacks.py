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
    """Override the hooks you need."""

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
