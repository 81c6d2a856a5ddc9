"""Source rewrites for the mutation optimizer: where a script can change, and how.

Every rewrite is found through Python's :mod:`ast` and applied to the source
*text* at the node's position, so comments and layout survive. The kinds:

- ``number``: a numeric constant is scaled (up to 2x), jumps (up to 10x) or
  is nudged (type and sign kept);
- ``compare``: a comparison operator changes. A single comparison may flip its
  strictness (``<`` -> ``<=``), its direction (``<`` -> ``>``) or become its
  complement (``<`` -> ``>=``); ``==``/``!=`` swap. Inside a chain
  (``0 < a < 2``) only the strictness may flip, so every chain keeps one
  direction and its meaning (an interval); no edit ever creates a chain;
- ``negate``: a condition (``if``/``while``/``x if c else y`` test, or an
  operand of ``and``/``or``) becomes ``not (...)``, or loses its ``not``;
- ``drop``: one operand of an ``and``/``or`` is removed;
- ``swap``: a name compared in a condition becomes another name of the same
  kind from the same function: one compared in the same roles (with numbers,
  against ``None``), such as one optional distance for another, and already
  bound where the comparison stands (never a name assigned further down);
- ``cross``: from another parent, a top-level function of the same name (a
  helper, with the helpers it calls that this script lacks) or the k-th
  ``if`` statement of the same function (a branch) replaces this script's.

Edits are applied one after another (each found on the result of the last);
:func:`mutate_source` returns a child that compiles and whose chained
comparisons are no more, and no more mixed, than its parents'.
"""
from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Site", "Edit", "EDIT_KINDS", "find_sites", "find_edits", "mutate_source", "chain_report"]

EDIT_KINDS = ("number", "compare", "negate", "drop", "swap", "cross")
# How often each kind is drawn among the edits a script offers (numbers are the
# commonest site, so they are not weighted up).
_KIND_WEIGHT = {"number": 1.0, "compare": 1.0, "negate": 0.5, "drop": 0.5, "swap": 0.5, "cross": 1.5}

_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_STRICTNESS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
_DIRECTION = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_COMPLEMENT = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_OP_PATTERN = re.compile(r"<=|>=|==|!=|<|>")
_LOW_PRECEDENCE = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)


@dataclass(frozen=True)
class Site:
    """A number or a comparison operator in the source (``start``/``end``: character offsets)."""

    kind: str  # "number" or "compare"
    start: int
    end: int
    text: str
    line: int
    value: float | int | None = None
    chained: bool = False  # a comparison operator inside a chain such as ``0 < a < 2``


@dataclass(frozen=True)
class Edit:
    """One possible rewrite: replace ``source[start:end]`` by one of ``choices``
    (numbers draw their new value instead)."""

    kind: str
    start: int
    end: int
    line: int
    text: str
    choices: tuple[str, ...] = ()
    value: float | int | None = None
    note: str = ""
    append: str = ""  # added at the end of the script (helpers a crossed-in part calls)


class _Positions:
    """ast (line, byte column) -> character offset into the source."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.split("\n")
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def at(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1]
        col = len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))
        return self.starts[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.at(node.lineno, node.col_offset), self.at(node.end_lineno, node.end_col_offset)

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def line_span(self, node: ast.stmt) -> tuple[int, int]:
        """From the start of the node's first line to the end of its last line."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return self.starts[first - 1], self.starts[node.end_lineno] - 1


def _skipped(tree: ast.AST) -> set[int]:
    # Subscript indices (``x[0]``): changing them mostly gives an IndexError, not
    # another behaviour. f-strings: their positions are unreliable before 3.12.
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            skip.update(id(n) for n in ast.walk(node.slice))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _is_number(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool) and math.isfinite(node.value))


def find_sites(source: str) -> list[Site]:
    """Numeric constants and ``< <= > >= == !=`` operators of ``source`` (newline-normalized)."""
    tree = ast.parse(source)
    pos = _Positions(source)
    skip = _skipped(tree)
    sites: list[Site] = []
    for node in ast.walk(tree):
        if _is_number(node) and id(node) not in skip:
            start, end = pos.span(node)
            sites.append(Site("number", start, end, source[start:end], node.lineno, node.value))
        elif isinstance(node, ast.Compare) and id(node) not in skip:
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                if type(op) in _OP_TEXT:
                    # The operator lies between its operands; use it only when that
                    # text holds exactly this one operator.
                    lo, hi = pos.span(left)[1], pos.span(right)[0]
                    found = list(_OP_PATTERN.finditer(source[lo:hi]))
                    if len(found) == 1 and found[0].group() == _OP_TEXT[type(op)]:
                        m = found[0]
                        sites.append(Site("compare", lo + m.start(), lo + m.end(), m.group(), right.lineno,
                                          chained=len(node.ops) > 1))
                left = right
    sites.sort(key=lambda s: s.start)
    return sites


def _compare_choices(op: str, chained: bool) -> tuple[str, ...]:
    if op in ("==", "!="):
        return () if chained else (_COMPLEMENT[op],)
    if chained:
        return (_STRICTNESS[op],)
    return (_STRICTNESS[op], _DIRECTION[op], _COMPLEMENT[op])


def _conditions(tree: ast.AST) -> list[ast.expr]:
    out: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            out.append(node.test)
        elif isinstance(node, ast.BoolOp):
            out.extend(node.values)
    return out


def _operand_text(pos: _Positions, node: ast.expr) -> str:
    text = pos.text(node)
    return f"({text})" if isinstance(node, _LOW_PRECEDENCE) else text


def _compared_names(func: ast.AST) -> dict[str, frozenset[str]]:
    """Each name compared in ``func`` and its roles there: "number" (compared with a number),
    "optional" (tested against ``None``). Names of the same roles are of the same kind."""
    roles: dict[str, set[str]] = {}
    for node in ast.walk(func):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = [o.id for o in operands if isinstance(o, ast.Name)]
        for name in names:
            roles.setdefault(name, set())
        if any(_is_number(o) or (isinstance(o, ast.UnaryOp) and _is_number(o.operand)) for o in operands):
            for name in names:
                roles[name].add("number")
        if (any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
                and any(isinstance(o, ast.Constant) and o.value is None for o in operands)):
            for name in names:
                roles[name].add("optional")
    return {name: frozenset(r) for name, r in roles.items() if r}


def _first_bound(func: ast.AST) -> dict[str, int]:
    """The line where each name of ``func`` is first bound (its parameters: the ``def`` line)."""
    lines: dict[str, int] = {}
    if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for arg in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs):
            lines[arg.arg] = func.lineno
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            lines[node.id] = min(lines.get(node.id, node.lineno), node.lineno)
    return lines


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _branches(pos: _Positions, func: ast.AST) -> list[ast.If]:
    # ``elif`` parts are nested Ifs whose text starts with "elif": exchanged with their ``if``.
    return [n for n in ast.walk(func) if isinstance(n, ast.If) and pos.text(n).startswith("if")]


def _reindent(text: str, from_indent: int, to_indent: str) -> str:
    lines = text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        head = line[:from_indent]
        out.append(to_indent + line[from_indent:] if not head.strip() else line)
    return "\n".join(out)


def _cross_edits(source: str, tree: ast.Module, pos: _Positions, other: str) -> list[Edit]:
    try:
        other_tree = ast.parse(other)
    except (SyntaxError, ValueError):
        return []
    other_pos = _Positions(other)
    mine, theirs = _functions(tree), _functions(other_tree)
    edits = []

    def helpers(part: ast.AST, name: str) -> str:
        # The donor's helpers this script lacks come with the part that calls them (else a NameError).
        used = {n.id for n in ast.walk(part) if isinstance(n, ast.Name)}
        extra = [other[slice(*other_pos.line_span(theirs[h]))] for h in sorted(used)
                 if h in theirs and h not in mine and h != name]
        return "".join(f"\n\n{text}\n" for text in extra)

    for name, func in mine.items():
        donor = theirs.get(name)
        if donor is None:
            continue
        if ast.dump(func) != ast.dump(donor):
            start, end = pos.line_span(func)
            edits.append(Edit("cross", start, end, func.lineno, source[start:end],
                              (other[slice(*other_pos.line_span(donor))],),
                              note=f"function {name} from another parent", append=helpers(donor, name)))
        for k, (a, b) in enumerate(zip(_branches(pos, func), _branches(other_pos, donor))):
            if ast.dump(a) == ast.dump(b):
                continue
            start, end = pos.at(a.lineno, a.col_offset), pos.line_span(a)[1]
            b_start, b_end = other_pos.at(b.lineno, b.col_offset), other_pos.line_span(b)[1]
            indent = pos.lines[a.lineno - 1][:pos.at(a.lineno, a.col_offset) - pos.starts[a.lineno - 1]]
            b_indent = other_pos.at(b.lineno, b.col_offset) - other_pos.starts[b.lineno - 1]
            text = _reindent(other[b_start:b_end], b_indent, indent)
            edits.append(Edit("cross", start, end, a.lineno, source[start:end], (text,),
                              note=f"if-branch {k + 1} of {name} from another parent", append=helpers(b, name)))
    return edits


def find_edits(source: str, others: Sequence[str] = (), kinds: Sequence[str] = EDIT_KINDS) -> list[Edit]:
    """Every rewrite of ``kinds`` that ``source`` offers (``others``: parents to cross with)."""
    tree = ast.parse(source)
    pos = _Positions(source)
    edits: list[Edit] = []
    if "number" in kinds or "compare" in kinds:
        for site in find_sites(source):
            if site.kind == "number" and "number" in kinds:
                edits.append(Edit("number", site.start, site.end, site.line, site.text, value=site.value))
            elif site.kind == "compare" and "compare" in kinds:
                choices = _compare_choices(site.text, site.chained)
                if choices:
                    edits.append(Edit("compare", site.start, site.end, site.line, site.text, choices))
    skip = _skipped(tree)
    if "negate" in kinds:
        for cond in _conditions(tree):
            if id(cond) in skip:
                continue
            start, end = pos.span(cond)
            if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not):
                choice = _operand_text(pos, cond.operand)
                choice = choice if choice.startswith("(") else f"({choice})"
            else:
                choice = f"not ({source[start:end]})"
            edits.append(Edit("negate", start, end, cond.lineno, source[start:end], (choice,)))
    if "drop" in kinds:
        for node in ast.walk(tree):
            if isinstance(node, ast.BoolOp) and id(node) not in skip:
                joiner = " and " if isinstance(node.op, ast.And) else " or "
                texts = [_operand_text(pos, v) for v in node.values]
                choices = tuple(joiner.join(texts[:i] + texts[i + 1:]) for i in range(len(texts)))
                start, end = pos.span(node)
                # Parenthesized: the remaining operands keep their grouping wherever the BoolOp stood.
                edits.append(Edit("drop", start, end, node.lineno, source[start:end],
                                  tuple(f"({c})" for c in choices)))
    if "swap" in kinds:
        for func in _functions(tree).values():
            roles = _compared_names(func)
            bound = _first_bound(func)
            for node in ast.walk(func):
                if not isinstance(node, ast.Compare) or id(node) in skip:
                    continue
                for operand in (node.left, *node.comparators):
                    if not isinstance(operand, ast.Name) or operand.id not in roles:
                        continue
                    # only names already bound where the comparison stands: a later one (a loop's
                    # variable swapped into a test before the loop) would raise UnboundLocalError
                    alike = sorted(n for n, r in roles.items() if r == roles[operand.id] and n != operand.id
                                   and bound.get(n, node.lineno) < node.lineno)
                    if alike:
                        start, end = pos.span(operand)
                        edits.append(Edit("swap", start, end, operand.lineno, operand.id, tuple(alike)))
    if "cross" in kinds:
        for other in others:
            edits.extend(_cross_edits(source, tree, pos, other))
    return edits


def _format_number(value: float, like: float | int) -> str:
    if isinstance(like, int):
        return str(int(value))
    text = f"{value:.4g}"
    # Keep it a float literal (``2`` would turn a float into an int).
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def _mutate_number(value: float | int, rng: random.Random) -> str:
    if isinstance(value, int):
        if value == 0 or rng.random() < 0.5:
            # A small step that keeps the sign (0 may become 1).
            step = max(1, round(abs(value) * rng.uniform(0.05, 0.25)))
            new = value + step if value >= 0 and (value <= 1 or rng.random() < 0.5) else value - step
            if value > 0:
                new = max(1, new)
            elif value < 0:
                new = min(-1, new)
        else:
            new = round(value * math.exp(rng.uniform(-0.7, 0.7)))
        if new == value:
            new = value + (1 if value >= 0 else -1)
        return _format_number(new, value)
    if value == 0.0:
        return _format_number(rng.choice([0.05, 0.1, 0.2, 0.5]), value)
    draw = rng.random()
    if draw < 0.3:
        factor = math.exp(rng.uniform(-0.7, 0.7))  # scale between about 0.5x and 2x
    elif draw < 0.7:
        # a jump of up to 10x either way, as often as a scaling: a threshold that is off by an order
        # of magnitude (a 2 m look-ahead that needs 10 m) sits on a plateau of the objective (every
        # value up to 7 m scores alike), which steps that must each pay off never cross
        factor = math.exp(rng.choice([-1, 1]) * rng.uniform(0.7, 2.3))
    else:
        factor = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.15)  # a small nudge
    text = _format_number(value * factor, value)
    if float(text) == value:
        text = _format_number(value * 1.1, value)
    return text


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _apply(source: str, edit: Edit, rng: random.Random) -> tuple[str, str]:
    if edit.kind == "number":
        new = _mutate_number(edit.value, rng)
    else:
        new = edit.choices[0] if len(edit.choices) == 1 else rng.choice(edit.choices)
    if edit.kind == "cross":
        note = f"line {edit.line}: {edit.note}"
    else:
        note = f"line {edit.line}: {_short(edit.text)} -> {_short(new)}"
    child = source[:edit.start] + new + source[edit.end:]
    if edit.append:
        child = child.rstrip("\n") + "\n" + edit.append
    return child, note


def chain_report(tree: ast.AST) -> tuple[int, int]:
    """(chained comparisons, chains whose operators point both ways such as ``a <= b >= c``)."""
    chains = mixed = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            chains += 1
            up = any(isinstance(op, (ast.Lt, ast.LtE)) for op in node.ops)
            down = any(isinstance(op, (ast.Gt, ast.GtE)) for op in node.ops)
            mixed += up and down
    return chains, mixed


def _valid(source: str, limit: tuple[int, int]) -> bool:
    try:
        tree = ast.parse(source)
        compile(tree, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return False
    chains, mixed = chain_report(tree)
    return chains <= limit[0] and mixed <= limit[1]


def mutate_source(source: str, rng: random.Random, max_edits: int = 3, others: Sequence[str] = (),
                  kinds: Sequence[str] = EDIT_KINDS) -> tuple[str, list[str]] | None:
    """One mutated copy of ``source`` and a note per edit, or None when it offers no edit.

    Between one and ``max_edits`` edits of ``kinds`` (fewer are likelier), each
    drawn by kind first, then site. The child compiles and has no more chained
    (or mixed-direction) comparisons than ``source`` and ``others`` together; an
    edit that would break that is skipped.
    """
    source = source.replace("\r\n", "\n")
    others = [o.replace("\r\n", "\n") for o in others]
    limit = tuple(map(sum, zip(*(chain_report(ast.parse(s)) for s in [source, *_parsable(others)]))))
    n_edits = 1
    while n_edits < max_edits and rng.random() < 0.4:
        n_edits += 1
    current, notes = source, []
    for _ in range(n_edits):
        edits = find_edits(current, others, kinds)
        if not edits:
            break
        by_kind: dict[str, list[Edit]] = {}
        for edit in edits:
            by_kind.setdefault(edit.kind, []).append(edit)
        offered = [k for k in EDIT_KINDS if k in by_kind]
        kind = rng.choices(offered, weights=[_KIND_WEIGHT[k] for k in offered])[0]
        candidate, note = _apply(current, rng.choice(by_kind[kind]), rng)
        if _valid(candidate, limit):
            current = candidate
            notes.append(note)
    if not notes:
        return None if not find_edits(source, others, kinds) else (source, [])
    return current, notes


def _parsable(sources: Sequence[str]) -> list[str]:
    out = []
    for s in sources:
        try:
            ast.parse(s)
        except (SyntaxError, ValueError):
            continue
        out.append(s)
    return out
