"""A bounded ``repr`` of values that untrusted code produced.

A script's output can be huge, deep, self-referencing or an object whose own
``__repr__`` raises; messages, logs and prompts show it through
:func:`bounded_repr`, bounded in size and in the work it takes.
"""
from __future__ import annotations

import reprlib
import sys
from typing import Any

__all__ = ["bounded_repr"]


class _Repr(reprlib.Repr):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxdict = self.maxset = self.maxfrozenset = 24
        self.maxdeque = self.maxarray = 24
        self.maxstring = max(16, limit // 2)
        self.maxlong = 60
        self.maxother = max(16, limit // 2)

    def repr_ndarray(self, x: Any, level: int) -> str:
        np = sys.modules.get("numpy")  # an ndarray exists only where numpy is imported
        if np is None:  # pragma: no cover
            return f"<ndarray {x.shape}>"
        with np.printoptions(threshold=24, edgeitems=3, linewidth=120):
            return self.repr_instance(x, level)


def bounded_repr(value: Any, limit: int = 1000) -> str:
    """``repr`` of a script's output, at most ``limit`` characters and a bounded
    number of elements (deep, wide or self-sharing values are elided)."""
    try:
        text = _Repr(limit).repr(value)
    except Exception as exc:  # noqa: BLE001 - an in-process object's own __repr__ may fail
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:max(0, limit - 14)] + "... (trimmed)"
