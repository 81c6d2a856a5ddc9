"""A policy: one script that defines the module's function, with its history.

The script source is the parameter being trained. A :class:`Policy` keeps the
source together with where it came from (parent, generation, prompt, reply,
optimizer and sampling parameters) and how it has scored, so a checkpoint can
tell the full lineage of every script.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Policy", "normalized_source", "source_hash", "policy_id_for"]


def normalized_source(src: str) -> str:
    """The source with comments, blank lines and formatting removed.

    Two scripts that differ only in layout or comments normalize to the same
    text. Source that does not parse falls back to its stripped, non-empty lines.
    """
    try:
        return ast.unparse(ast.parse(src))
    except (SyntaxError, ValueError):
        return "\n".join(line.rstrip() for line in src.strip().splitlines() if line.strip())


def source_hash(src: str) -> str:
    """sha256 hex digest of :func:`normalized_source`."""
    return hashlib.sha256(normalized_source(src).encode("utf-8")).hexdigest()


def policy_id_for(src: str) -> str:
    """A short, deterministic id for a script (identical scripts get the same id)."""
    return "p" + source_hash(src)[:15]


@dataclass
class Policy:
    """One candidate script and its record.

    ``scores`` holds the mean score of every training batch the script was
    evaluated on; ``priority`` is the decayed running average that ranks it.
    """

    id: str
    source: str
    function_name: str
    parent_id: str | None = None
    generation: int = 0
    prompt: list[dict] | None = None
    reply: str | None = None
    optimizer: str = ""
    sampling: dict = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    priority: float | None = None
    n_calls: int = 0
    n_exceptions: int = 0
    # Sum of decayed batch weights behind ``priority`` (see Module.update_priority).
    priority_weight: float = 0.0
    # Mean wall time of one call over every call scored (slow is a cost: it goes to the prompts).
    mean_call_s: float | None = None
    n_timed_calls: int = 0

    @classmethod
    def from_source(cls, source: str, function_name: str, **kwargs: Any) -> "Policy":
        """A policy whose id is derived from the normalized source."""
        return cls(id=policy_id_for(source), source=source, function_name=function_name, **kwargs)

    def record_call_times(self, total_s: float, n: int) -> None:
        """Fold ``n`` more calls taking ``total_s`` seconds together into :attr:`mean_call_s`."""
        if n <= 0:
            return
        before = (self.mean_call_s or 0.0) * self.n_timed_calls
        self.n_timed_calls += n
        self.mean_call_s = (before + total_s) / self.n_timed_calls

    def to_dict(self, include_source: bool = True) -> dict[str, Any]:
        """Every field as JSON-ready data (a checkpoint index keeps the source in its own file)."""
        data = asdict(self)
        if not include_source:
            data.pop("source")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "Policy":
        """Build from :meth:`to_dict` output; unknown keys are ignored (older/newer indexes)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if source is not None:
            kwargs["source"] = source
        if "source" not in kwargs:
            raise ValueError(f"policy {data.get('id')!r}: no source given")
        return cls(**kwargs)
