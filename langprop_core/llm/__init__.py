"""How LangProp produces new scripts: LLM clients, a record/replay cache, optimizers, reply parsing.

The OpenAI client (and the ``openai`` package) is imported only when used, so
loading a checkpoint for inference needs no LLM stack.
"""
from __future__ import annotations

from typing import Any

from langprop_core.llm.base import (ChatMessage, Completion, LLMClient, LLMError, Optimizer, Proposal,
                                    ProposalRequest, SamplingParams, TokenUsage)
from langprop_core.llm.cache import ReplayCache, cache_key
from langprop_core.llm.factory import OptimizerConfig, make_optimizer
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.mutation import MutationOptimizer
from langprop_core.llm.reply import ReplyError, extract_script

__all__ = [
    "ChatMessage", "Completion", "LLMClient", "LLMError", "Optimizer", "Proposal", "ProposalRequest",
    "SamplingParams", "TokenUsage", "ReplayCache", "cache_key", "OptimizerConfig", "make_optimizer",
    "LLMOptimizer", "MutationOptimizer", "ReplyError", "extract_script", "OpenAIClient",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIClient":
        from langprop_core.llm.openai_client import OpenAIClient

        return OpenAIClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
