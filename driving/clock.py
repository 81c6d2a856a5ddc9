"""The simulation clock every driving part shares.

The CARLA leaderboard steps its world at a fixed 20 Hz; the embedded world
steps at the same rate, the controllers' gains were tuned at it, and the
prompts tell the LLM about it.
"""
from __future__ import annotations

__all__ = ["TICK_S", "TICKS_PER_SECOND"]

TICK_S = 0.05
TICKS_PER_SECOND = round(1.0 / TICK_S)
