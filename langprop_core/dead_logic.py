"""Dead logic: conditions that can never hold, or always hold, for any input.

An optimizer that edits numbers and operators (or an LLM that edits carelessly)
writes conditions such as ``5.12 < a < 0.5667``: never true, so the branch it
guards (here: stopping for an actor) is dead, and nothing in the objective
says so when the data rarely need that branch. :func:`dead_conditions` finds
them by interval reasoning on comparisons with numeric constants:

- every comparison of an expression with a constant (``a < 0.5667``, chained
  ``5.12 < a < 0.5667``, ``-1 >= abs(r)``) bounds that expression to an interval;
- the bounds of one expression are intersected across a chain and across the
  operands of an ``and``; an empty intersection is a condition that never holds;
- an expression has a known range where Python or the task says so:
  ``abs``, ``len``, ``math.hypot`` and ``math.sqrt`` are >= 0, ``math.sin``
  and ``math.cos`` within [-1, 1], ``math.atan2`` within [-pi, pi], ``x ** 2``
  >= 0; ``domains`` gives the range of an input read by key
  (``scene["ego_forward_speed"]`` or ``scene.get(...)``), also through a local
  name assigned from it once; a comparison that holds on the whole range is a
  condition that always holds (``abs(r) >= 0``), one that holds nowhere on it
  never does (``abs(r) < -1``);
- a comparison of two constants is decided outright.

Only the tests of ``if``, ``while``, conditional expressions, ``assert`` and
comprehension filters are conditions; a comparison stored in a variable is
not. The check is sound for what it reports (a reported condition is dead for
every input in the given ranges) and says nothing about conditions it cannot
bound.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["Interval", "DeadCondition", "dead_conditions"]

_INF = math.inf


@dataclass(frozen=True)
class Interval:
    """A set of reals ``lo .. hi``; ``lo_open``/``hi_open`` exclude the end (infinite ends are open)."""

    lo: float = -_INF
    hi: float = _INF
    lo_open: bool = True
    hi_open: bool = True

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def intersect(self, other: "Interval") -> "Interval":
        if self.lo > other.lo or (self.lo == other.lo and self.lo_open):
            lo, lo_open = self.lo, self.lo_open
        else:
            lo, lo_open = other.lo, other.lo_open
        if self.hi < other.hi or (self.hi == other.hi and self.hi_open):
            hi, hi_open = self.hi, self.hi_open
        else:
            hi, hi_open = other.hi, other.hi_open
        return Interval(lo, hi, lo_open, hi_open)

    def within(self, other: "Interval") -> bool:
        """Whether every value of this (non-empty) interval is in ``other``."""
        return self.intersect(other) == self

    @classmethod
    def closed(cls, lo: float = -_INF, hi: float = _INF) -> "Interval":
        return cls(lo, hi, lo == -_INF, hi == _INF)


@dataclass(frozen=True)
class DeadCondition:
    """A condition at ``line`` (its source ``text``) that holds ``never`` or ``always``."""

    line: int
    text: str
    holds: str  # "never" or "always"

    def __str__(self) -> str:
        return f"line {self.line}: `{self.text}` {'can never hold' if self.holds == 'never' else 'always holds'}"


_NONNEGATIVE = Interval.closed(0.0)
_KNOWN_CALLS = {
    "abs": _NONNEGATIVE, "len": _NONNEGATIVE, "math.hypot": _NONNEGATIVE, "math.sqrt": _NONNEGATIVE,
    "math.sin": Interval.closed(-1.0, 1.0), "math.cos": Interval.closed(-1.0, 1.0),
    "math.atan2": Interval.closed(-math.pi, math.pi), "np.hypot": _NONNEGATIVE,
    "np.linalg.norm": _NONNEGATIVE, "numpy.linalg.norm": _NONNEGATIVE,
}
# x OP c: the values of x for which it holds
_BOUND = {
    ast.Lt: lambda c: Interval(-_INF, c, True, True), ast.LtE: lambda c: Interval(-_INF, c, True, False),
    ast.Gt: lambda c: Interval(c, _INF, True, True), ast.GtE: lambda c: Interval(c, _INF, False, True),
    ast.Eq: lambda c: Interval(c, c, False, False),
}
# c OP x is x MIRROR c
_MIRROR = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq}
_DECIDE = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
           ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _constant(node: ast.expr) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _constant(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool) and math.isfinite(node.value):
        return float(node.value)
    return None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _input_key(node: ast.expr) -> str | None:
    """``x["key"]`` or ``x.get("key", ...)``: the key read."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        return node.slice.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


class _Ranges:
    """The known range of an expression inside one function (see the module docstring)."""

    def __init__(self, function: ast.AST, domains: Mapping[str, Interval]) -> None:
        self.domains = domains
        assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(function):
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets, value = [node.target], None  # an augmented name is not a plain copy
            elif isinstance(node, (ast.For, ast.comprehension)):
                targets, value = [node.target], None
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
            elif isinstance(node, ast.NamedExpr):
                targets, value = [node.target], node.value
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        direct = value if isinstance(target, ast.Name) else None
                        assigned.setdefault(name.id, []).append(direct)  # type: ignore[arg-type]
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for arg in ast.walk(function.args):
                if isinstance(arg, ast.arg):
                    assigned.setdefault(arg.arg, []).append(None)  # type: ignore[arg-type]
        # a name bound exactly once, from a plain value, has that value's range
        self.single = {name: values[0] for name, values in assigned.items() if len(values) == 1 and values[0]}

    def of(self, node: ast.expr, depth: int = 0) -> Interval | None:
        if depth > 8:
            return None
        if isinstance(node, ast.Name) and node.id in self.single:
            return self.of(self.single[node.id], depth + 1)
        key = _input_key(node)
        if key is not None and key in self.domains:
            return self.domains[key]
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            return _KNOWN_CALLS.get(name) if name else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _constant(node.right) == 2.0:
            return _NONNEGATIVE
        return None


def _key(node: ast.expr) -> str:
    return ast.dump(node, include_attributes=False)


def _bounds(node: ast.expr) -> tuple[dict[str, tuple[Interval, ast.expr]], bool | None]:
    """The intervals a comparison (or an ``and`` of them) puts on its non-constant operands, by expression,
    and the outcome when it compares constants only (None when it does not decide)."""
    found: dict[str, tuple[Interval, ast.expr]] = {}
    decided: bool | None = None
    parts = node.values if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) else [node]
    for part in parts:
        if not isinstance(part, ast.Compare):
            continue
        operands = [part.left, *part.comparators]
        for left, op, right in zip(operands, part.ops, operands[1:]):
            lc, rc = _constant(left), _constant(right)
            if lc is not None and rc is not None:
                if type(op) in _DECIDE:
                    outcome = _DECIDE[type(op)](lc, rc)
                    decided = outcome if decided is None else (decided and outcome)
                continue
            if rc is not None and type(op) in _BOUND:
                expr, interval = left, _BOUND[type(op)](rc)
            elif lc is not None and type(op) in _MIRROR:
                expr, interval = right, _BOUND[_MIRROR[type(op)]](lc)
            else:
                continue
            k = _key(expr)
            previous = found.get(k)
            found[k] = (interval if previous is None else previous[0].intersect(interval), expr)
    return found, decided


def _tests(tree: ast.AST) -> Iterable[tuple[ast.AST, ast.expr]]:
    """(enclosing function or module, condition) for every condition of ``tree``."""
    def walk(node: ast.AST, scope: ast.AST) -> Iterable[tuple[ast.AST, ast.expr]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else scope
            if isinstance(child, (ast.If, ast.While, ast.IfExp, ast.Assert)):
                yield inner, child.test
            elif isinstance(child, ast.comprehension):
                for cond in child.ifs:
                    yield inner, cond
            yield from walk(child, inner)
    yield from walk(tree, tree)


def _conditions(test: ast.expr) -> Iterable[ast.expr]:
    """The test and its sub-conditions: operands of ``and``/``or``/``not``, each judged on its own."""
    yield test
    if isinstance(test, ast.BoolOp):
        for value in test.values:
            yield from _conditions(value)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        yield from _conditions(test.operand)


def dead_conditions(source: str, domains: Mapping[str, Interval] | None = None) -> list[DeadCondition]:
    """Every condition of ``source`` that never or always holds (see the module docstring), in line order.

    ``domains``: the range of each input value read by key (``x["key"]``). A
    source that does not parse has none (syntax is checked elsewhere).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    domains = dict(domains or {})
    ranges: dict[int, _Ranges] = {}
    out: dict[tuple[int, str], DeadCondition] = {}
    for scope, test in _tests(tree):
        known = ranges.setdefault(id(scope), _Ranges(scope, domains))
        for cond in _conditions(test):
            holds = _judge(cond, known)
            if holds is not None:
                text = ast.unparse(cond)
                out.setdefault((cond.lineno, text), DeadCondition(cond.lineno, text, holds))
    return sorted(out.values(), key=lambda d: (d.line, d.text))


def _judge(cond: ast.expr, known: _Ranges) -> str | None:
    if not isinstance(cond, (ast.Compare, ast.BoolOp)) or (
            isinstance(cond, ast.BoolOp) and not isinstance(cond.op, ast.And)):
        return None
    bounds, decided = _bounds(cond)
    if decided is False:
        return "never"
    always = isinstance(cond, ast.Compare) and decided is not False
    for interval, expr in bounds.values():
        domain = known.of(expr) or Interval()
        allowed = interval.intersect(domain)
        if allowed.empty:
            return "never"
        if not domain.within(interval):
            always = False
    if isinstance(cond, ast.Compare):
        # a chain is "always" only when every link is bounded and holds on its whole range
        links = len(cond.ops)
        bounded = sum(1 for left, op, right in zip([cond.left, *cond.comparators], cond.ops, cond.comparators)
                      if (_constant(left) is None) != (_constant(right) is None) and type(op) in _BOUND)
        decided_links = sum(1 for left, right in zip([cond.left, *cond.comparators], cond.comparators)
                            if _constant(left) is not None and _constant(right) is not None)
        if always and bounded + decided_links == links and (bounds or decided):
            return "always"
    return None
