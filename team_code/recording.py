"""Buffered recording of driven scenes into a :class:`driving.dataset.SceneDataset`.

Agents record every tick (scene, the action taken, which controller drove, and
the expert's label when there is one) for DAgger; the buffer is written every
``flush_every`` ticks and at ``close``, so a crash loses at most one buffer.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from driving.dataset import SceneDataset, SceneRecord
from driving.labels import DrivingLabel, PolicyAction
from driving.scene import copy_scene

__all__ = ["SceneRecorder", "make_run_id"]

log = logging.getLogger(__name__)


def make_run_id(route_id: str | None = None) -> str:
    """A run name unique across processes: route, UTC time, pid, random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    prefix = f"{route_id}_" if route_id else ""
    return f"{prefix}{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


class SceneRecorder:
    """Appends ticks of one run to the dataset at ``root``."""

    def __init__(self, root: Path, run_id: str, route_id: str | None = None, flush_every: int = 200) -> None:
        self.root = Path(root)
        self.run_id = run_id
        self.route_id = route_id
        self.flush_every = max(1, int(flush_every))
        self._dataset = SceneDataset(self.root)
        self._buffer: list[SceneRecord] = []
        self.n_recorded = 0
        self.chunks: list[Path] = []

    def add(self, scene: dict[str, Any], action: PolicyAction, controller: str,
            label: DrivingLabel | None = None, extra: dict[str, Any] | None = None) -> None:
        """Buffer one tick; writes a chunk every ``flush_every`` ticks.

        ``extra`` adds JSON-safe metadata (e.g. the policy's exception).
        """
        meta = {
            "route_id": self.route_id,
            "run_id": self.run_id,
            "time_s": float(scene.get("timestamp_s", 0.0)),
            "action": {"target_speed_mps": float(action.target_speed_mps),
                       "steering_deg": float(action.steering_deg)},
            "controller": controller,
            "infraction_within_s": None,
            "infraction_kind": None,
        }
        if extra:
            meta.update(extra)
        self._buffer.append(SceneRecord(scene=copy_scene(scene), label=label, meta=meta))
        self.n_recorded += 1
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered ticks as one chunk (nothing when the buffer is empty)."""
        if not self._buffer:
            return
        records, self._buffer = self._buffer, []
        chunk = self._dataset.append(records, self.run_id)
        self.chunks.append(Path(chunk))
        log.debug("recorded %d ticks of run %s to %s", len(records), self.run_id, chunk)

    def close(self) -> None:
        """Write what is still buffered."""
        self.flush()
