"""Inputs: prepared once per batch, a fresh deep copy on every call."""
from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from typing import Any, Sequence

from langprop_core.copier import CopyPlanner

__all__ = ["Inputs", "prepare_inputs"]


@dataclass
class Inputs:
    """Per input: a function returning a fresh deep copy of its argument tuple,
    and the data it copies from (``copiers[i](data[i])``)."""

    copiers: list[Any]
    data: list[Any]


def prepare_inputs(inputs: Sequence[tuple], planner: CopyPlanner) -> Inputs:
    """Plan the per-call copies: a compiled structural copy where the input is
    plain data (see :mod:`langprop_core.copier`), else a pickle round trip, else
    ``copy.deepcopy`` (inputs that cannot be pickled). The inputs are the
    caller's own (trusted) data."""
    copiers: list[Any] = []
    data: list[Any] = []
    for args in inputs:
        fn = planner.copier_for(args)
        if fn is not None:
            copiers.append(fn)
            data.append(args)
            continue
        try:
            blob = pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - unpicklable inputs: the slow general copy
            copiers.append(copy.deepcopy)
            data.append(args)
        else:
            copiers.append(pickle.loads)
            data.append(blob)
    return Inputs(copiers, data)
