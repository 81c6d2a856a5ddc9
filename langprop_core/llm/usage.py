"""LLM spend: usage totals, prices, budgets, and the trainer callback that keeps them.

:class:`UsageCallback` reads the optimizer's counters at every batch boundary,
adds what earlier runs of the same checkpoint spent (its state is saved in the
checkpoint, so a resumed run keeps counting), writes the totals into the
batch's history record (and so into ``metrics.jsonl``), and asks the trainer to
stop when a :class:`LLMBudget` is reached. Replies replayed from the cache cost
nothing: they are counted as ``cached_calls``, apart from ``calls`` (HTTP
requests the endpoint answered). ``children`` are the scripts the replies added
to the population; the tokens and cost per admitted child are what a new script
costs (replies that were rejected, and follow-ups for edits that did not apply,
included).

Prices are per model, in currency units per million input (prompt) and output
(completion) tokens; there are none by default, and a cost budget needs the
price of the model in use.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from langprop_core.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.module import Module
    from langprop_core.trainer import Trainer

__all__ = ["ModelPrice", "LLMBudget", "LLMUsage", "UsageCallback", "parse_prices", "load_prices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs, per million tokens."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise ValueError(f"prices must be >= 0, got {self.input_per_million}, {self.output_per_million}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


def parse_prices(data: Any, source: str = "price table") -> dict[str, ModelPrice]:
    """``{"model": {"input": X, "output": Y}, ...}`` (per million tokens) -> prices; errors name the model."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected an object of model -> {{\"input\": ..., \"output\": ...}}, "
                         f"got {type(data).__name__}")
    prices = {}
    for model, entry in data.items():
        if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
            raise ValueError(f"{source}: model {model!r}: expected {{\"input\": <per million input tokens>, "
                             f"\"output\": <per million output tokens>}}, got {entry!r}")
        try:
            prices[str(model)] = ModelPrice(float(entry["input"]), float(entry["output"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: model {model!r}: {exc}") from None
    return prices


def load_prices(path: Path | str) -> dict[str, ModelPrice]:
    """The price table in the JSON file ``path``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the price table: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}") from None
    return parse_prices(data, str(path))


@dataclass(frozen=True)
class LLMBudget:
    """Limits of one training run (None: no limit). ``max_tokens`` counts input and output tokens."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"LLM budget {name} must be > 0, got {value}")

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.max_calls, self.max_tokens, self.max_cost))


@dataclass
class LLMUsage:
    """Totals of a run: HTTP calls, replies replayed from the cache, tokens, estimated cost, admitted
    children (scripts the optimizer's replies added to the population)."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    children: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def per_child(self) -> dict[str, float | None]:
        """Tokens in and out, and cost (None when unknown), per admitted child; all None without children."""
        n = self.children
        return {"prompt_tokens_per_child": round(self.prompt_tokens / n, 1) if n else None,
                "completion_tokens_per_child": round(self.completion_tokens / n, 1) if n else None,
                "cost_per_child": round(self.cost / n, 6) if n and self.cost is not None else None}

    def to_dict(self) -> dict[str, Any]:
        """The totals and (derived, ignored by :meth:`from_dict`) the per-child figures."""
        return {**dataclasses.asdict(self), **self.per_child()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LLMUsage":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    @classmethod
    def total(cls, usages: "list[Mapping[str, Any]]") -> "LLMUsage":
        """The sum of several runs' usage dicts (cost known only when every run's is)."""
        runs = [cls.from_dict(u) for u in usages]
        costs = [u.cost for u in runs]
        return cls(calls=sum(u.calls for u in runs), cached_calls=sum(u.cached_calls for u in runs),
                   prompt_tokens=sum(u.prompt_tokens for u in runs),
                   completion_tokens=sum(u.completion_tokens for u in runs),
                   cost=round(sum(costs), 6) if costs and None not in costs else None,
                   children=sum(u.children for u in runs))

    def per_gain(self, gain: float, unit: str = "point") -> str:
        """What one ``unit`` of ``gain`` (e.g. a driving-score point) cost: tokens, calls and cost, in words;
        says so when nothing was gained."""
        if not gain > 0:
            return f"no {unit} gained ({gain:+.1f})"
        text = (f"{self.tokens / gain:,.0f} tokens ({self.prompt_tokens / gain:,.0f} in, "
                f"{self.completion_tokens / gain:,.0f} out) and {self.calls / gain:.2f} calls per {unit} gained "
                f"({gain:+.1f})")
        return text + (f", cost {self.cost / gain:.4f} per {unit}" if self.cost is not None else "")

    def describe(self) -> str:
        """One line for a run's summary."""
        text = (f"{self.calls} LLM calls ({self.cached_calls} replayed from the cache), "
                f"{self.prompt_tokens} tokens in, {self.completion_tokens} out")
        text += f", estimated cost {self.cost:.4f}" if self.cost is not None else ""
        if self.children:
            each = self.per_child()
            text += (f"; {self.children} admitted children, {each['prompt_tokens_per_child']:.0f} tokens in and "
                     f"{each['completion_tokens_per_child']:.0f} out per child")
            text += f", cost {each['cost_per_child']:.4f} per child" if each["cost_per_child"] is not None else ""
        return text


def _optimizer_counts(optimizer: Any) -> tuple[int, int, int, int]:
    usage = optimizer.usage()
    return (usage.calls, int(getattr(optimizer, "cached_calls", 0)), usage.prompt_tokens, usage.completion_tokens)


class UsageCallback(Callback):
    """Keeps the run's LLM usage, writes it into every batch record, enforces ``budget``.

    Give each run (each ``Trainer.fit``) a fresh optimizer: its counters are
    read as this run's spending.

    The totals appear as ``record["llm"]`` (calls, cached_calls, prompt_tokens,
    completion_tokens, cost, children and the per-child figures of
    :meth:`LLMUsage.per_child`, and ``rejected``: the trainer's rejected replies
    by reason so far, with ``edit_failed`` (edits that did not apply, each
    answered by one follow-up request) and ``fallback_failed`` (follow-ups that
    gave no script either)). The trainer is asked to stop (:meth:`Trainer.request_stop`)
    at the batch boundary where a limit is reached or passed, and at the start
    of a resumed run that is already over it.
    """

    state_key = "llm_usage"

    def __init__(self, budget: LLMBudget | None = None, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self.budget = budget or LLMBudget()
        self.prices = dict(prices or {})
        self._before = LLMUsage()  # spent by earlier runs of this checkpoint
        self.usage = LLMUsage()

    # -- state (saved in the checkpoint by the trainer) ------------------------
    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.usage)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._before = LLMUsage.from_dict(state)
        self.usage = dataclasses.replace(self._before)

    # -- hooks -------------------------------------------------------------------
    def on_fit_start(self, trainer: "Trainer", module: "Module") -> None:
        model = self._model(trainer)
        if self.budget.max_cost is not None and self._price(model) is None:
            raise ValueError(f"an LLM cost budget ({self.budget.max_cost}) needs the price of model {model!r}; "
                             f"the price table has {sorted(self.prices) or 'no models'}")
        self._update(trainer)
        self._check(trainer)

    def on_batch_record(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        self._update(trainer)
        record["llm"] = dict(self.usage.to_dict(), rejected=dict(sorted(trainer.rejected.items())))

    def on_batch_end(self, trainer: "Trainer", module: "Module", record: dict[str, Any]) -> None:
        self._check(trainer)

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def _model(trainer: "Trainer") -> str | None:
        params = getattr(trainer.optimizer, "params", None)
        return getattr(params, "model", None)

    def _price(self, model: str | None) -> ModelPrice | None:
        return self.prices.get(model) if model is not None else None

    def _update(self, trainer: "Trainer") -> None:
        # The optimizer counts from its creation: one optimizer per run (as make_optimizer is used).
        calls, cached, prompt, completion = _optimizer_counts(trainer.optimizer)
        usage = LLMUsage(calls=self._before.calls + calls, cached_calls=self._before.cached_calls + cached,
                         prompt_tokens=self._before.prompt_tokens + prompt,
                         completion_tokens=self._before.completion_tokens + completion,
                         children=self._before.children + trainer.children_admitted)
        price = self._price(self._model(trainer))
        if price is not None:
            usage.cost = round((self._before.cost or 0.0) + price.cost(prompt, completion), 6)
        self.usage = usage

    def over_budget(self) -> str | None:
        """Why the run is at its budget, or None."""
        budget, usage = self.budget, self.usage
        if budget.max_calls is not None and usage.calls >= budget.max_calls:
            return f"LLM call budget reached: {usage.calls} calls >= --max-llm-calls {budget.max_calls}"
        if budget.max_tokens is not None and usage.tokens >= budget.max_tokens:
            return f"LLM token budget reached: {usage.tokens} tokens >= --max-llm-tokens {budget.max_tokens}"
        if budget.max_cost is not None and usage.cost is not None and usage.cost >= budget.max_cost:
            return f"LLM cost budget reached: estimated {usage.cost:.4f} >= --max-llm-cost {budget.max_cost}"
        return None

    def _check(self, trainer: "Trainer") -> None:
        reason = self.over_budget()
        if reason is not None:
            log.warning("%s (%s); stopping at this batch boundary", reason, self.usage.describe())
            trainer.request_stop(reason)
