"""The ``mutation`` optimizer: new scripts without an LLM.

It rewrites a parent script's numeric constants and comparison operators, found
through Python's :mod:`ast`, and edits the source text in place at those
positions, so the parent's comments and layout survive. It is the baseline that
shows how much an LLM adds, and the default when no endpoint is configured.

Deterministic: the same (optimizer seed, request seed, parent source) always
gives the same replies.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import math
import random
import re
import threading
from dataclasses import dataclass
from typing import Sequence

from langprop_core.llm.base import Optimizer, Proposal, ProposalRequest

__all__ = ["MutationOptimizer", "Site", "find_sites", "mutate_source"]

log = logging.getLogger(__name__)

# Each comparison operator and its text; flips keep the direction and change
# strictness, swaps reverse the direction.
_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_STRICTNESS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
_DIRECTION = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_OP_PATTERN = re.compile(r"<=|>=|<|>")
_MAX_ATTEMPTS = 32


@dataclass(frozen=True)
class Site:
    """A place in the source that can be rewritten: a number or a comparison operator.

    ``start``/``end`` are character offsets into the (newline-normalized) source.
    """

    kind: str  # "number" or "compare"
    start: int
    end: int
    text: str
    line: int
    value: float | int | None = None


def _offsets(source: str) -> list[int]:
    """Character offset of the start of each line (ast positions are 1-based lines)."""
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    return starts


def _char_offset(source_lines: list[str], starts: list[int], lineno: int, col_bytes: int) -> int:
    # ast columns count UTF-8 bytes; convert to characters for non-ASCII lines.
    line = source_lines[lineno - 1]
    col = len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))
    return starts[lineno - 1] + col


def find_sites(source: str) -> list[Site]:
    """Numeric constants and ``< <= > >=`` operators of ``source`` (newline-normalized).

    Indices inside subscripts (``x[0]``) are left alone: changing them mostly
    produces an IndexError, not a different behaviour.
    """
    tree = ast.parse(source)
    lines = source.split("\n")
    starts = _offsets(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            skip.update(id(n) for n in ast.walk(node.slice))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))

    def pos(lineno: int, col: int) -> int:
        return _char_offset(lines, starts, lineno, col)

    sites: list[Site] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and id(node) not in skip
                and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
                and math.isfinite(node.value)):
            start, end = pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset)
            sites.append(Site("number", start, end, source[start:end], node.lineno, node.value))
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                if type(op) in _OP_TEXT:
                    # The operator lies between the end of its left operand and the
                    # start of its right one; use it only when it is unambiguous there.
                    lo = pos(left.end_lineno, left.end_col_offset)
                    hi = pos(right.lineno, right.col_offset)
                    between = source[lo:hi]
                    found = list(_OP_PATTERN.finditer(between))
                    if len(found) == 1 and found[0].group() == _OP_TEXT[type(op)]:
                        m = found[0]
                        sites.append(Site("compare", lo + m.start(), lo + m.end(), m.group(),
                                          right.lineno))
                left = right
    sites.sort(key=lambda s: s.start)
    return sites


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
    if rng.random() < 0.5:
        factor = math.exp(rng.uniform(-0.7, 0.7))  # scale between about 0.5x and 2x
    else:
        factor = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.15)  # a small nudge
    new = value * factor
    text = _format_number(new, value)
    if float(text) == value:
        text = _format_number(value * 1.1, value)
    return text


def _mutate_compare(op: str, rng: random.Random) -> str:
    return _STRICTNESS[op] if rng.random() < 0.7 else _DIRECTION[op]


def mutate_source(source: str, rng: random.Random, max_edits: int = 3) -> tuple[str, list[str]] | None:
    """One mutated copy of ``source`` and a note per edit, or None when it has no site.

    Between one and ``max_edits`` sites are rewritten (fewer edits are likelier).
    """
    source = source.replace("\r\n", "\n")
    sites = find_sites(source)
    if not sites:
        return None
    n_edits = 1
    while n_edits < min(max_edits, len(sites)) and rng.random() < 0.4:
        n_edits += 1
    chosen = sorted(rng.sample(sites, n_edits), key=lambda s: s.start)
    pieces, notes, cursor = [], [], 0
    for site in chosen:
        if site.kind == "number":
            new = _mutate_number(site.value, rng)
        else:
            new = _mutate_compare(site.text, rng)
        pieces.append(source[cursor:site.start])
        pieces.append(new)
        cursor = site.end
        notes.append(f"line {site.line}: {site.text} -> {new}")
    pieces.append(source[cursor:])
    return "".join(pieces), notes


def _same_program(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError):
        return a == b


def _fence(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


class MutationOptimizer(Optimizer):
    """Proposes rewrites of the parent's numbers and comparisons; no LLM.

    With no parent (the setup phase) it proposes ``seed_sources`` as they are,
    and mutated copies of them when more replies are asked for than there are
    seeds; with neither it proposes nothing.
    """

    name = "mutation"

    def __init__(self, seed: int = 0, seed_sources: Sequence[str] = (), max_edits: int = 3,
                 reason: str = "") -> None:
        if max_edits < 1:
            raise ValueError(f"max_edits must be >= 1, got {max_edits}")
        self.seed = seed
        self.seed_sources = [s.replace("\r\n", "\n") for s in seed_sources]
        self.max_edits = max_edits
        self.reason = reason
        # The trainer asks for the top-k rewrites from threads; CPython 3.11's ast
        # is not thread-safe ("AST constructor recursion depth mismatch"), and this
        # CPU-bound work gains nothing from threads anyway.
        self._lock = threading.Lock()

    def describe(self) -> str:
        text = f"mutation (no LLM: AST rewrites of numeric constants and comparisons, seed {self.seed})"
        return f"{text}: {self.reason}" if self.reason else text

    def _rng(self, request: ProposalRequest) -> random.Random:
        # sha256, not hash(): str hashes change between processes.
        key = f"{self.seed}\0{request.seed}\0{request.function_name}\0{request.parent_source or ''}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))

    def _sampling(self, request: ProposalRequest) -> dict:
        return {"optimizer": self.name, "seed": self.seed, "request_seed": request.seed,
                "max_edits": self.max_edits}

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        with self._lock:
            return self._propose(request)

    def _propose(self, request: ProposalRequest) -> list[Proposal]:
        rng = self._rng(request)
        sampling = self._sampling(request)
        replies: list[str] = []
        if request.parent_source is None:
            for source in self.seed_sources[: request.n]:
                replies.append(f"Seed script.\n\n{_fence(source)}\n")
            if self.seed_sources:
                taken = list(self.seed_sources[: request.n])
                for i in range(len(replies), request.n):
                    base = self.seed_sources[i % len(self.seed_sources)]
                    reply = self._mutant(base, taken, rng)
                    if reply is not None:
                        replies.append(reply)
        else:
            taken = [request.parent_source]
            for _ in range(request.n):
                reply = self._mutant(request.parent_source, taken, rng)
                if reply is not None:
                    replies.append(reply)
        if len(replies) < request.n:
            log.info("mutation: %d of %d replies (no further distinct mutation found)",
                     len(replies), request.n)
        return [Proposal(reply=r, optimizer=self.name, sampling=dict(sampling)) for r in replies]

    def _mutant(self, base: str, taken: list[str], rng: random.Random) -> str | None:
        """A reply with a mutation of ``base`` unlike every script in ``taken`` (appended to it)."""
        try:
            ast.parse(base)
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes (Python < 3.12)
            log.warning("mutation: cannot parse the script to mutate (%s)", exc)
            return None
        for _ in range(_MAX_ATTEMPTS):
            result = mutate_source(base, rng, self.max_edits)
            if result is None:
                return None
            source, notes = result
            try:
                ast.parse(source)
            except SyntaxError:  # e.g. `1if x else 2` edge cases of in-place text edits
                continue
            if any(_same_program(source, other) for other in taken):
                continue
            taken.append(source)
            return f"Mutation ({'; '.join(notes)}).\n\n{_fence(source)}\n"
        return None
