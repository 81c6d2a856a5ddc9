"""The privileged-state interface between a simulator and a driving agent.

An agent drives from a scene dict (see :mod:`driving.scene`). Where the scene
comes from is the simulator's business: the CARLA extractor builds it from
``CarlaDataProvider`` and the world; the embedded world builds it from SUMO.
Both implement :class:`SceneProvider`.

How an agent gets one:

- In the embedded world, the runner calls ``agent.set_scene_provider(provider)``
  after ``setup`` and ``set_global_plan`` and before the first ``run_step``
  (when the agent defines that method).
- Under the CARLA leaderboard nobody calls it; the agent builds the CARLA
  extractor lazily in its first ``run_step``, when the hero exists.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["SceneProvider"]


@runtime_checkable
class SceneProvider(Protocol):
    """Gives the scene dict of the current tick, for the hero and its route."""

    def get_scene(self) -> dict[str, Any]:
        """The scene at the current simulation tick, following the contract (strict)."""
        ...
