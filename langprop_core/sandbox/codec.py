"""Plain data across the worker boundary: bounded in the worker, decoded without object construction.

What a worker sends is ``pickle`` bytes of plain data only: None, bool, int,
float, complex, str, bytes, tuple, list, dict (atom or tuple keys), numpy
arrays without object fields, numpy scalars. The worker checks each result
against the bounds before anything else looks at it (:func:`check_plain`:
exact types, nesting depth, and a size that counts what each value costs,
ints by their bit length, strings and bytes by their length, arrays by their
buffer, and every visit, so a list holding itself a million times costs a
million, not one). The parent decodes
with :class:`PlainUnpickler`, whose only globals are numpy's array and scalar
constructors and ``complex``: no ``__reduce__`` of the sender's choosing can
run, and the decoded tree is checked again (a hostile script may write to the
channel itself). Anything else is an :class:`UnsafeOutput`, scored like any
other failure of the script.

:func:`~langprop_common.reprs.bounded_repr` (re-exported here) is the one way
the trainer, the prompts and the agent turn a script's output into text.
"""
from __future__ import annotations

import contextlib
import io
import pickle
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from langprop_common.reprs import bounded_repr

__all__ = ["UnsafeOutput", "Bounds", "check_plain", "encode", "decode", "decode_each", "bounded_repr",
           "PlainUnpickler"]

PROTOCOL = pickle.HIGHEST_PROTOCOL
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})
_KEY_ATOMS = frozenset({type(None), bool, int, float, str, bytes})
_SMALL_ATOMS = frozenset({type(None), bool, int, float, complex})
_CONTAINERS = frozenset({tuple, list, dict})
_NUMPY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class UnsafeOutput(Exception):
    """A value that is not plain data, or over the size or depth bound; the message says which."""


@dataclass(frozen=True)
class Bounds:
    """Limits on one result: encoded-size estimate in bytes (every visit counts) and nesting depth."""

    max_bytes: int = 1 << 20
    max_depth: int = 32


def _numpy() -> Any:
    return sys.modules.get("numpy")


def check_plain(value: Any, bounds: Bounds) -> int:
    """The estimated size of ``value`` in bytes; raises :class:`UnsafeOutput` when
    it is not plain data or is over ``bounds``. Never calls ``repr`` or any method
    of the value (exact types only: a subclass could override anything)."""
    t = type(value)
    if t is float or t is bool or value is None:
        return 9
    if t is tuple and _ATOMS.issuperset(map(type, value)):  # the usual ("MOVE", angle): no walk
        size = 9 * len(value) + 5
        for v in value:
            tv = type(v)
            if tv is str or tv is bytes:
                size += len(v) if tv is bytes or v.isascii() else 4 * len(v)
            elif tv is int:
                size += v.bit_length() >> 3
        if size > bounds.max_bytes:
            raise UnsafeOutput("the value is over the size bound")
        return size
    budget = [bounds.max_bytes]
    _walk(value, 0, bounds.max_depth, budget, _numpy())
    return bounds.max_bytes - budget[0]


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise UnsafeOutput("the value is over the size bound (shared references count every time)")


def _walk(x: Any, depth: int, max_depth: int, budget: list[int], np: Any) -> None:
    t = type(x)
    if t is int:
        _spend(budget, 9 + (x.bit_length() >> 3))  # a big int costs its digits
        return
    if t in _SMALL_ATOMS:
        _spend(budget, 9)
        return
    if t is str:
        _spend(budget, 9 + (len(x) if x.isascii() else 4 * len(x)))  # at most 4 bytes a character
        return
    if t is bytes:
        _spend(budget, len(x) + 9)
        return
    if t in _CONTAINERS:
        if depth >= max_depth:
            raise UnsafeOutput(f"the value is nested deeper than {max_depth} levels")
        _spend(budget, 5 + len(x))
        if t is dict:
            for k, v in x.items():
                tk = type(k)
                if tk is tuple:
                    _walk(k, depth + 1, max_depth, budget, np)
                    if not _KEY_ATOMS.issuperset(map(type, k)):
                        raise UnsafeOutput("a dict key is a tuple of non-atoms")
                elif tk not in _KEY_ATOMS:
                    raise UnsafeOutput(f"a dict key is a {tk.__name__}, not plain data")
                else:
                    _walk(k, depth + 1, max_depth, budget, np)
                _walk(v, depth + 1, max_depth, budget, np)
        else:
            for v in x:
                _walk(v, depth + 1, max_depth, budget, np)
        return
    if np is not None:
        if t is np.ndarray:
            if x.dtype.hasobject or x.dtype.fields is not None:
                raise UnsafeOutput(f"a numpy array of dtype {x.dtype.str}: only plain numbers travel")
            _spend(budget, x.nbytes + 64)
            return
        if isinstance(x, np.generic) and t.__module__ == "numpy" and not isinstance(x, (np.void, np.object_)):
            _spend(budget, x.nbytes + 32)
            return
    raise UnsafeOutput(f"the value holds a {t.__module__}.{t.__qualname__}, not plain data "
                       f"(None, bool, int, float, str, bytes, tuple, list, dict, numpy arrays)")


class PlainUnpickler(pickle.Unpickler):
    """Decodes pickles of plain data; any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("builtins", "complex"):
            return complex
        raise UnsafeOutput(f"the data names {module}.{name}: no objects but plain data are decoded")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeOutput("persistent ids are not decoded")


def encode(value: Any) -> bytes:
    """Pickle bytes of a value (the sender has checked it with :func:`check_plain`)."""
    return pickle.dumps(value, PROTOCOL)


@contextlib.contextmanager
def _hostile_bytes() -> Iterator[None]:
    """Any failure while decoding a worker's bytes becomes an :class:`UnsafeOutput`."""
    try:
        yield
    except UnsafeOutput:
        raise
    except BaseException as exc:  # noqa: BLE001 - bytes from a worker are hostile until decoded
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise UnsafeOutput(f"undecodable data from the worker ({type(exc).__name__})") from None


def decode(data: bytes) -> Any:
    """Decode bytes from a worker; any failure at all is an :class:`UnsafeOutput`."""
    with _hostile_bytes():
        return PlainUnpickler(io.BytesIO(data)).load()


def decode_each(data: bytes, sizes: list[int]) -> list[Any]:
    """Decode consecutive pickles of the given sizes (one unpickler for all: one per value
    costs more than the value); any failure, or a pickle that does not end where its size
    says, is an :class:`UnsafeOutput`."""
    stream = io.BytesIO(data)
    unpickler = PlainUnpickler(stream)
    out = []
    end = 0
    with _hostile_bytes():
        for size in sizes:
            end += size
            out.append(unpickler.load())
            if stream.tell() != end:
                raise UnsafeOutput("a value does not end where its size says")
    if end != len(data):
        raise UnsafeOutput("bytes beyond the last value")
    return out
