"""The ``mutation`` optimizer: new scripts without an LLM.

It rewrites a parent script through the edits of :mod:`langprop_core.llm.rewrites`
(numbers, comparison operators, negated or dropped conditions, swapped compared
names, and branches or helpers crossed in from another parent), applied to the
source text at the AST's positions, so the parent's comments and layout
survive. Every child compiles and is new. It is the baseline that shows how
much an LLM adds, and the default when no endpoint is configured.

Deterministic: the same (optimizer seed, request seed, parent source) always
gives the same replies.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import random
import threading
from typing import Sequence

from langprop_core.llm.base import Optimizer, Proposal, ProposalRequest
from langprop_core.llm.rewrites import EDIT_KINDS, Site, find_sites, mutate_source

__all__ = ["MutationOptimizer", "Site", "find_sites", "mutate_source"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 32


def _same_program(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError):
        return a == b


def _fence(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


class MutationOptimizer(Optimizer):
    """Proposes rewrites of the parent (see :mod:`langprop_core.llm.rewrites`); no LLM.

    The request's ``other_sources`` (the other parents of this round) are what
    the parent may be crossed with. With no parent (the setup phase) it
    proposes ``seed_sources`` as they are, and mutated (and crossed) copies of
    them when more replies are asked for than there are seeds; with neither it
    proposes nothing. ``kinds`` limits the edits (default: all of them).
    """

    name = "mutation"
    free = True

    def __init__(self, seed: int = 0, seed_sources: Sequence[str] = (), max_edits: int = 3,
                 reason: str = "", kinds: Sequence[str] = EDIT_KINDS) -> None:
        if max_edits < 1:
            raise ValueError(f"max_edits must be >= 1, got {max_edits}")
        unknown = sorted(set(kinds) - set(EDIT_KINDS))
        if unknown or not kinds:
            raise ValueError(f"mutation kinds must be some of {', '.join(EDIT_KINDS)}; got {list(kinds)}")
        self.kinds = tuple(k for k in EDIT_KINDS if k in kinds)
        self.seed = seed
        self.seed_sources = [s.replace("\r\n", "\n") for s in seed_sources]
        self.max_edits = max_edits
        self.reason = reason
        # The trainer asks for the top-k rewrites from threads; CPython 3.11's ast
        # is not thread-safe ("AST constructor recursion depth mismatch"), and this
        # CPU-bound work gains nothing from threads anyway.
        self._lock = threading.Lock()

    def describe(self) -> str:
        text = f"mutation (no LLM: AST rewrites ({', '.join(self.kinds)}), seed {self.seed})"
        return f"{text}: {self.reason}" if self.reason else text

    def _rng(self, request: ProposalRequest) -> random.Random:
        # sha256, not hash(): str hashes change between processes.
        key = "\0".join([str(self.seed), str(request.seed), request.function_name,
                         request.parent_source or "", *request.other_sources, *self.kinds])
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))

    def _sampling(self, request: ProposalRequest) -> dict:
        return {"optimizer": self.name, "seed": self.seed, "request_seed": request.seed,
                "max_edits": self.max_edits, "kinds": list(self.kinds)}

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
                    reply = self._mutant(base, taken, rng, [s for s in self.seed_sources if s != base])
                    if reply is not None:
                        replies.append(reply)
        else:
            # A child that equals another parent is no news either.
            taken = [request.parent_source, *request.other_sources]
            for _ in range(request.n):
                reply = self._mutant(request.parent_source, taken, rng, request.other_sources)
                if reply is not None:
                    replies.append(reply)
        if len(replies) < request.n:
            log.info("mutation: %d of %d replies (no further distinct mutation found)",
                     len(replies), request.n)
        return [Proposal(reply=r, optimizer=self.name, sampling=dict(sampling)) for r in replies]

    def _mutant(self, base: str, taken: list[str], rng: random.Random,
                others: Sequence[str] = ()) -> str | None:
        """A reply with a mutation of ``base`` (maybe crossed with ``others``) unlike every script in
        ``taken`` (appended to it)."""
        try:
            ast.parse(base)
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes (Python < 3.12)
            log.warning("mutation: cannot parse the script to mutate (%s)", exc)
            return None
        for _ in range(_MAX_ATTEMPTS):
            result = mutate_source(base, rng, self.max_edits, others, self.kinds)
            if result is None:
                return None
            source, notes = result
            if not notes or any(_same_program(source, other) for other in taken):
                continue
            taken.append(source)
            return f"Mutation ({'; '.join(notes)}).\n\n{_fence(source)}\n"
        return None
