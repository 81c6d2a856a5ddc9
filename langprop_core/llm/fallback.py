"""Replay a recorded LLM run, and go on without it where the recording has no answer."""
from __future__ import annotations

import logging
import threading
from typing import Any

from langprop_core.llm.base import Optimizer, Proposal, ProposalRequest, ReplayMiss, TokenUsage

__all__ = ["FallbackOnMiss"]

log = logging.getLogger(__name__)


class FallbackOnMiss(Optimizer):
    """Proposes with ``primary`` (a replay of recorded replies) until it misses, then with ``fallback``.

    A miss means the prompts are no longer the recorded run's (the code, the data
    or the settings changed): it is said once, on one line, and from then on every
    proposal comes from ``fallback``: a run is the recorded run up to the first
    miss (and the proposals asked beside it), the baseline after. ``missed_at`` is the number of primary proposals before the
    miss (None while there is none).
    """

    def __init__(self, primary: Optimizer, fallback: Optimizer) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.missed_at: int | None = None
        self._proposals = 0
        self._lock = threading.Lock()

    @property
    def params(self) -> Any:
        """The primary's sampling parameters (what prices and records name)."""
        return getattr(self.primary, "params", None)

    @property
    def cached_calls(self) -> int:
        return int(getattr(self.primary, "cached_calls", 0))

    def describe(self) -> str:
        text = f"{self.primary.describe()}; where it has no reply: {self.fallback.describe()}"
        if self.missed_at is not None:
            text += f" (missed after {self.missed_at} replayed proposals)"
        return text

    def usage(self) -> TokenUsage:
        return self.primary.usage()

    def cancel(self) -> None:
        self.primary.cancel()
        self.fallback.cancel()

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        with self._lock:
            missed = self.missed_at is not None
        if not missed:
            try:
                proposals = self.primary.propose(request)
            except ReplayMiss as exc:
                with self._lock:
                    first = self.missed_at is None
                    if first:
                        self.missed_at = self._proposals
                if first:
                    log.warning("the recorded LLM run has no reply here (%s); going on with %s", exc,
                                self.fallback.describe())
            else:
                with self._lock:
                    self._proposals += 1
                return proposals
        return self.fallback.propose(request)
