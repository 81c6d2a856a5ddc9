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

    A callback with state to keep across a resume returns it from
    :meth:`state_dict` (JSON-safe); the trainer saves it in the checkpoint
    under :attr:`state_key` and hands it back to :meth:`load_state_dict` when
    the run resumes. :meth:`checkpoint_extra` is merged into the checkpoint
    index's ``extra`` on every save (what readers of the checkpoint should
    see, e.g. which script was selected).
    """

    #: where the trainer keeps this callback's state in the checkpoint (default: the class name)
    state_key: str = ""

    def state_dict(self) -> dict[str, Any]:
        """State to save with every checkpoint; nothing by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output on resume."""

    def checkpoint_extra(self) -> dict[str, Any]:
        """Entries for the checkpoint index's ``extra`` (JSON-ready; not ``trainer_state``)."""
        return {}

    def on_batch_record(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        """Called with a batch's history record before it is saved; may add keys to it."""

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
