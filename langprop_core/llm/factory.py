"""Choosing the optimizer from one option (and the environment).

``kind="auto"`` picks ``files`` when an exchange folder is given, ``openai``
when an endpoint is configured (a base URL or an OpenAI key) or a replay-only
cache is given, and ``mutation`` otherwise.
The chosen optimizer's ``describe()`` says which one it is and why, so runs
print it plainly.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from langprop_core.llm.base import LLMClient, Optimizer, SamplingParams
from langprop_core.llm.cache import CACHE_MODES, ReplayCache
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.mutation import MutationOptimizer

__all__ = ["OptimizerConfig", "make_optimizer", "OPTIMIZER_KINDS", "DEFAULT_OPENAI_MODEL", "DEFAULT_TIMEOUT_S",
           "resolve_base_url", "resolve_api_key"]

OPTIMIZER_KINDS = ("auto", "openai", "files", "mutation")
ON_MISS = ("error", "mutation")
# Used only against OpenAI itself; other servers need the model named.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
NO_ENDPOINT_HINT = ("no LLM endpoint configured: set LANGPROP_LLM_BASE_URL or OPENAI_API_KEY, or answer "
                    "through files with --llm-exchange DIR")
#: the model name of a file exchange's requests when none is given (it is part of their keys)
EXCHANGE_MODEL = "exchange"
#: seconds one LLM request may take: reasoning models, and local models on a CPU, take minutes for a
#: 400-line script, and a request that timed out is not sent again (it would be paid again)
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class OptimizerConfig:
    """How new scripts are produced.

    ``n`` is the most choices asked for in one HTTP request (the OpenAI ``n``
    parameter); a trainer asking for more replies gets them from further
    requests (set 1 for servers that ignore ``n``). ``cache_dir`` puts the
    record/replay cache in front of the endpoint. ``timeout_s`` bounds one
    HTTP request (:data:`DEFAULT_TIMEOUT_S`); ``max_retries`` are for errors a
    retry can fix (rate limits, dropped connections, 5xx), not for timeouts.

    ``exchange_dir`` is the folder of the ``files`` optimizer
    (:mod:`langprop_core.llm.exchange`): it waits for reply files with no time
    limit, or, with ``cache_mode="replay"``, replays the folder offline. With
    ``on_miss="mutation"`` a replay that misses (the prompts changed since the
    recording) says so once and goes on with the mutation baseline.
    """

    kind: str = "auto"
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    temperature: float = 0.7
    n: int = 1
    cache_dir: Path | None = None
    cache_mode: str = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = 5
    max_tokens: int | None = None
    seed: int = 0  # the mutation optimizer's seed
    exchange_dir: Path | None = None
    on_miss: str = "error"

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZER_KINDS:
            raise ValueError(f"optimizer kind {self.kind!r} is not one of {', '.join(OPTIMIZER_KINDS)}")
        if self.cache_mode not in CACHE_MODES:
            raise ValueError(f"cache mode {self.cache_mode!r} is not one of {', '.join(CACHE_MODES)}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if not self.timeout_s > 0:
            raise ValueError(f"the LLM timeout must be > 0 seconds, got {self.timeout_s}")
        if self.on_miss not in ON_MISS:
            raise ValueError(f"on_miss {self.on_miss!r} is not one of {', '.join(ON_MISS)}")
        if self.kind == "files" and self.exchange_dir is None:
            raise ValueError("optimizer 'files' needs an exchange folder (--llm-exchange DIR or LANGPROP_LLM_EXCHANGE)")
        for name in ("cache_dir", "exchange_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @classmethod
    def from_env(cls, **overrides: Any) -> "OptimizerConfig":
        """A config from the environment; ``overrides`` that are not None win.

        Variables: LANGPROP_OPTIMIZER (kind), LANGPROP_LLM_BASE_URL (or
        OPENAI_BASE_URL), OPENAI_API_KEY, LANGPROP_LLM_MODEL,
        LANGPROP_LLM_TEMPERATURE, LANGPROP_LLM_N, LANGPROP_LLM_CACHE_DIR,
        LANGPROP_LLM_CACHE_MODE, LANGPROP_LLM_TIMEOUT (seconds), LANGPROP_LLM_EXCHANGE (folder).
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown optimizer option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
        env = os.environ
        values: dict[str, Any] = {
            "kind": env.get("LANGPROP_OPTIMIZER") or None,
            "base_url": resolve_base_url(),
            "api_key": resolve_api_key(),
            "model": env.get("LANGPROP_LLM_MODEL") or None,
            "temperature": _env_number("LANGPROP_LLM_TEMPERATURE", float),
            "n": _env_number("LANGPROP_LLM_N", int),
            "cache_dir": Path(env["LANGPROP_LLM_CACHE_DIR"]) if env.get("LANGPROP_LLM_CACHE_DIR") else None,
            "cache_mode": env.get("LANGPROP_LLM_CACHE_MODE") or None,
            "timeout_s": _env_number("LANGPROP_LLM_TIMEOUT", float),
            "exchange_dir": Path(env["LANGPROP_LLM_EXCHANGE"]) if env.get("LANGPROP_LLM_EXCHANGE") else None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})

    @property
    def has_endpoint(self) -> bool:
        return bool(self.base_url or self.api_key)


def resolve_base_url(base_url: str | None = None) -> str | None:
    """``base_url``, else ``$LANGPROP_LLM_BASE_URL``, else ``$OPENAI_BASE_URL``, else None (OpenAI)."""
    return base_url or os.environ.get("LANGPROP_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or None


def resolve_api_key(api_key: str | None = None) -> str | None:
    """``api_key``, else ``$OPENAI_API_KEY``, else None."""
    return api_key or os.environ.get("OPENAI_API_KEY") or None


def _env_number(name: str, kind: type) -> Any:
    text = os.environ.get(name)
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not a valid {kind.__name__}") from None


def _model_for(config: OptimizerConfig) -> str:
    if config.model:
        return config.model
    if config.base_url is None:
        return DEFAULT_OPENAI_MODEL
    raise ValueError(f"no model named for the LLM endpoint {config.base_url}: "
                     "set LANGPROP_LLM_MODEL (or the model option)")


def _llm_optimizer(config: OptimizerConfig, reason: str) -> LLMOptimizer:
    model = _model_for(config)
    client: LLMClient | None = None
    if config.has_endpoint:
        from langprop_core.llm.openai_client import OpenAIClient  # imports openai only when used

        client = OpenAIClient(base_url=config.base_url, api_key=config.api_key, timeout_s=config.timeout_s,
                              max_retries=config.max_retries, max_choices_per_request=config.n)
    if config.cache_dir is not None:
        client = ReplayCache(client, config.cache_dir, config.cache_mode)
    if client is None:
        raise ValueError(f"optimizer 'openai' chosen but {NO_ENDPOINT_HINT} (or give a cache directory "
                         "with cache mode 'replay' to replay a recorded run offline)")
    params = SamplingParams(model=model, temperature=config.temperature, n=config.n,
                            max_tokens=config.max_tokens)
    return LLMOptimizer(client, params, reason=reason)


def _files_optimizer(config: OptimizerConfig, reason: str) -> LLMOptimizer:
    from langprop_core.llm.exchange import FileExchangeClient

    replay = config.cache_mode == "replay"
    client: LLMClient = FileExchangeClient(config.exchange_dir, wait=not replay)  # type: ignore[arg-type]
    if config.cache_dir is not None:
        client = ReplayCache(client, config.cache_dir, "replay" if replay else config.cache_mode)
    params = SamplingParams(model=config.model or EXCHANGE_MODEL, temperature=config.temperature, n=config.n,
                            max_tokens=config.max_tokens)
    return LLMOptimizer(client, params, reason=reason, name="files")


def make_optimizer(config: OptimizerConfig, seed_sources: Sequence[str] = ()) -> Optimizer:
    """The optimizer ``config`` asks for; ``seed_sources`` feed the mutation optimizer's setup phase."""
    optimizer = _make_optimizer(config, seed_sources)
    if config.on_miss == "mutation" and not isinstance(optimizer, MutationOptimizer):
        from langprop_core.llm.fallback import FallbackOnMiss

        return FallbackOnMiss(optimizer, MutationOptimizer(seed=config.seed, seed_sources=seed_sources,
                                                           reason="where the recorded replies miss"))
    return optimizer


def _make_optimizer(config: OptimizerConfig, seed_sources: Sequence[str]) -> Optimizer:
    replay_only = config.cache_dir is not None and config.cache_mode == "replay"
    if config.kind == "mutation":
        return MutationOptimizer(seed=config.seed, seed_sources=seed_sources,
                                 reason="chosen by the optimizer option (kind=mutation)")
    if config.kind == "openai":
        return _llm_optimizer(config, "chosen by the optimizer option (kind=openai)")
    if config.kind == "files" or config.exchange_dir is not None:
        how = "replayed offline" if config.cache_mode == "replay" else "answered through files"
        return _files_optimizer(config, f"{how} in {config.exchange_dir}")
    if config.has_endpoint:
        where = config.base_url or "OpenAI (OPENAI_API_KEY set)"
        return _llm_optimizer(config, f"an LLM endpoint is configured: {where}")
    if replay_only:
        return _llm_optimizer(config, f"replaying recorded LLM replies from {config.cache_dir}, offline")
    return MutationOptimizer(seed=config.seed, seed_sources=seed_sources, reason=NO_ENDPOINT_HINT)
