"""Fast per-call deep copies of script inputs.

Every script call gets its own copy of its arguments, so a script that mutates
its inputs cannot change what the next call sees. ``copy.deepcopy`` and
serializer round trips rebuild every object; most of a typical input is
immutable (numbers, strings, tuples of them) and can be shared, as
``copy.deepcopy`` itself shares atoms. A :class:`CopyPlanner` looks at an input
once, describes its structure as a *plan* (which containers must be rebuilt),
and compiles the plan into a small Python function made of ``dict.copy``,
``list.copy`` and comprehensions, cached by plan: the per-call copy is then a
handful of C-level copies instead of a walk over every value.

Supported: exact ``dict`` (str or int keys), ``list``, ``tuple``, ``set``,
``frozenset``, atoms (None, bool, int, float, complex, str, bytes), and numpy
arrays without object dtype and numpy scalars when numpy is already imported.
Anything else (subclasses, objects, shared or cyclic references, whose
identity a plain copy would not keep) gets no plan: ``copier_for`` returns
None and the caller falls back to a serializer round trip.
"""
from __future__ import annotations

import sys
from itertools import chain
from typing import Any, Callable

__all__ = ["CopyPlanner"]

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, type(Ellipsis)})
_SHARE = "="  # the value is immutable all the way down: the copy may share it
_FLAT_DICT = ("d", ())
_FLAT_LIST = ("l",)
_RECORDS = ("L", _FLAT_DICT)
_DICT_ONLY = frozenset({dict})
_all_atoms = _ATOMS.issuperset
_chain = chain.from_iterable
_dict_values = dict.values
_MAX_TUPLE_UNROLL = 8
_MAX_CACHED = 256


class _Unsupported(Exception):
    pass


def _numpy() -> Any:
    # Only when the caller already uses numpy: never import it for a plan.
    return sys.modules.get("numpy")


def _plan(x: Any, seen: set[int], np: Any) -> Any:
    # Hot: run on every input of every batch, so atoms are tested inline
    # instead of by a recursive call.
    t = type(x)
    if t in _ATOMS:
        return _SHARE
    if t is dict:
        if id(x) in seen:
            raise _Unsupported
        seen.add(id(x))
        if _all_atoms(map(type, x.values())):  # the common leaf: one pass in C
            return _FLAT_DICT
        sub = []
        for k, v in x.items():
            tv = type(v)
            if tv in _ATOMS or (tv is tuple and _all_atoms(map(type, v))):
                continue
            if tv is dict and _all_atoms(map(type, v.values())):  # a flat record, inline
                if id(v) in seen:
                    raise _Unsupported
                seen.add(id(v))
                p = _FLAT_DICT
            else:
                p = _plan(v, seen, np)
            if p is not _SHARE:
                if type(k) is not str and type(k) is not int:
                    raise _Unsupported
                sub.append((k, p))
        return ("d", tuple(sub))
    if t is list:
        if id(x) in seen:
            raise _Unsupported
        seen.add(id(x))
        if _all_atoms(map(type, x)):
            return _FLAT_LIST
        if _DICT_ONLY.issuperset(map(type, x)):
            # A list of records (dicts of atoms): checked without a call per item.
            ids = set(map(id, x))
            if len(ids) != len(x) or not ids.isdisjoint(seen):
                raise _Unsupported
            if _all_atoms(map(type, _chain(map(_dict_values, x)))):
                seen.update(ids)
                return _RECORDS
        first: Any = None
        mixed = False
        for v in x:
            p = _SHARE if type(v) in _ATOMS else _plan(v, seen, np)
            if first is None:
                first = p
            elif p is not first and p != first:
                mixed = True
        if first is None or (first is _SHARE and not mixed):
            return _FLAT_LIST
        return ("G",) if mixed else ("L", first)
    if t is tuple:
        if _all_atoms(map(type, x)):
            return _SHARE
        plans = tuple([_SHARE if type(v) in _ATOMS else _plan(v, seen, np) for v in x])
        for p in plans:
            if p is not _SHARE:
                return ("t", plans) if len(plans) <= _MAX_TUPLE_UNROLL else ("G",)
        return _SHARE
    if t is set or t is frozenset:
        if id(x) in seen:
            raise _Unsupported
        seen.add(id(x))
        for v in x:
            if type(v) not in _ATOMS and _plan(v, seen, np) is not _SHARE:
                raise _Unsupported
        return _SHARE if t is frozenset else ("s",)
    if np is not None:
        if t is np.ndarray and not x.dtype.hasobject:
            if id(x) in seen:
                raise _Unsupported
            seen.add(id(x))
            return ("a",)
        if isinstance(x, np.generic) and not isinstance(x, (np.void, np.object_)):
            return _SHARE
    raise _Unsupported


def _generic_copy(x: Any) -> Any:
    """Copy a value whose plan was checked (no aliasing, supported types only)."""
    t = type(x)
    if t is dict:
        return {k: _generic_copy(v) for k, v in x.items()}
    if t is list:
        return [_generic_copy(v) for v in x]
    if t is tuple:
        return tuple([_generic_copy(v) for v in x])
    if t is set:
        return x.copy()
    if t in _ATOMS or t is frozenset:
        return x
    np = _numpy()
    if np is not None and t is np.ndarray:
        return x.copy("K")
    return x  # numpy scalars


class _CodeGen:
    def __init__(self) -> None:
        self.helpers: list[str] = []
        self.counter = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def expr(self, plan: Any, src: str, lines: list[str]) -> str:
        """An expression copying ``src`` per ``plan``; statements it needs go to ``lines``."""
        if plan is _SHARE:
            return src
        kind = plan[0]
        if kind in ("l", "s") or (kind == "d" and not plan[1]):
            return f"{src}.copy()"
        if kind == "a":
            return f"{src}.copy('K')"
        if kind == "G":
            return f"_generic_copy({src})"
        if kind == "t":
            parts = [self.expr(p, f"{src}[{i}]", lines) for i, p in enumerate(plan[1])]
            return "(" + "".join(p + ", " for p in parts) + ")"
        if kind == "d":
            var = self.name("d")
            body: list[str] = []
            for key, p in plan[1]:
                item = self.expr(p, f"{src}[{key!r}]", body)
                body.append(f"{var}[{key!r}] = {item}")
            lines.append(f"{var} = {src}.copy()")
            lines.extend(body)
            return var
        if kind == "L":
            item = plan[1]
            # map() over the unbound copy method: no Python frame per item.
            if item is not _SHARE and item[0] == "d" and not item[1]:
                return f"[*map(_dict_copy, {src})]"
            if item is not _SHARE and item[0] == "l":
                return f"[*map(_list_copy, {src})]"
            helper = self.name("_item")
            inner: list[str] = []
            result = self.expr(item, "x", inner)
            self.helpers.append("\n".join([f"def {helper}(x):"] + [f"    {ln}" for ln in inner]
                                          + [f"    return {result}"]))
            return f"[{helper}(x) for x in {src}]"
        raise AssertionError(f"unknown plan {plan!r}")  # pragma: no cover

    def compile(self, plan: Any) -> Callable[[Any], Any]:
        lines: list[str] = []
        result = self.expr(plan, "a", lines)
        main = "\n".join(["def copy(a):"] + [f"    {ln}" for ln in lines] + [f"    return {result}"])
        source = "\n\n".join(self.helpers + [main]) + "\n"
        namespace: dict[str, Any] = {"_generic_copy": _generic_copy, "_dict_copy": dict.copy,
                                     "_list_copy": list.copy}
        exec(compile(source, "<langprop copier>", "exec"), namespace)  # noqa: S102 - our own code
        return namespace["copy"]


def _identity(x: Any) -> Any:
    return x


class CopyPlanner:
    """Builds (and caches, by structure) a fast deep-copy function for a value."""

    def __init__(self) -> None:
        self._compiled: dict[Any, Callable[[Any], Any]] = {}

    def copier_for(self, value: Any) -> Callable[[Any], Any] | None:
        """A function returning a deep copy of ``value`` (and of any value with
        the same structure), or None when ``value`` needs a general copy."""
        try:
            plan = _plan(value, set(), _numpy())
        except (_Unsupported, RecursionError):
            return None
        if plan is _SHARE:
            return _identity
        fn = self._compiled.get(plan)
        if fn is None:
            if len(self._compiled) >= _MAX_CACHED:
                self._compiled.clear()
            fn = self._compiled[plan] = _CodeGen().compile(plan)
        return fn
