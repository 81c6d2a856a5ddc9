"""Inputs: prepared once per batch, a fresh deep copy on every call; or, for a worker, each
input as bytes that its job process decodes into the call's own copy."""
from __future__ import annotations

import copy
import marshal
import pickle
from dataclasses import dataclass
from typing import Any, Sequence

from langprop_core.copier import CopyPlanner

__all__ = ["Inputs", "prepare_inputs", "encode_input", "decode_input"]

_MARSHAL, _PICKLE = b"M", b"P"


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


# Exactly these types survive a marshal round trip as themselves; marshal also takes any
# object with a buffer (a numpy array, a bytearray) and gives it back as bytes.
_MARSHAL_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_MARSHAL_CONTAINERS = frozenset({tuple, list, set, frozenset, dict})


def _marshals_as_itself(value: Any) -> bool:
    """Whether ``value`` is builtin data only (exact types, no buffers), so marshal keeps it."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _MARSHAL_SCALARS:
            continue
        if kind not in _MARSHAL_CONTAINERS or id(item) in seen:
            return False  # a container met twice may hold itself: pickle keeps the sharing
        seen.add(id(item))
        if kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            stack.extend(item)
    return True


def encode_input(args: tuple) -> bytes:
    """One input as a worker's job process gets it: its length (8 bytes), then ``marshal``
    bytes where the input is builtin data only (a third faster to decode than pickle), else
    pickle bytes. Raises what ``pickle`` raises for an input it cannot encode."""
    if _marshals_as_itself(args):
        data = _MARSHAL + marshal.dumps(args)
    else:  # numpy arrays, subclasses of builtins, objects
        data = _PICKLE + pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(8, "little") + data


def decode_input(data: memoryview) -> tuple:
    """The call's own copy of an input from :func:`encode_input`'s bytes (after the length);
    the caller's own data, decoded in the job process."""
    return marshal.loads(data[1:]) if data[0] == _MARSHAL[0] else pickle.loads(data[1:])
