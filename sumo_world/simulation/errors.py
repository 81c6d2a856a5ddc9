"""The one error type of the simulation package."""
from __future__ import annotations

__all__ = ["WorldError"]


class WorldError(RuntimeError):
    """The world cannot be started or driven (the message names the cause)."""
