"""The LLM-backed optimizer: one chat completion per proposal request."""
from __future__ import annotations

import dataclasses
import threading

from langprop_core.llm.base import LLMClient, Optimizer, Proposal, ProposalRequest, SamplingParams, TokenUsage

__all__ = ["LLMOptimizer"]


class LLMOptimizer(Optimizer):
    """Asks ``client`` for ``request.n`` replies to the request's messages.

    ``params`` fixes the model and sampling; its ``n`` is replaced by the
    request's, and its ``seed`` by the request's. Replies are returned as they are (reply parsing happens in one
    place, downstream), so a reply without code is still a proposal. An
    :class:`~langprop_core.llm.base.LLMError` (the client gave up after its
    retries, or a replay-cache miss) propagates: a silent gap would make a run
    differ from its recording.
    """

    name = "openai"

    def __init__(self, client: LLMClient, params: SamplingParams, reason: str = "", name: str = "openai") -> None:
        self.name = name  # recorded with every script it writes
        self.client = client
        self.params = params
        self.reason = reason
        self._usage = TokenUsage()
        self._cached_calls = 0
        self._lock = threading.Lock()  # the trainer proposes for the top-k concurrently

    def describe(self) -> str:
        text = (f"{self.name} (model {self.params.model}, temperature {self.params.temperature}, "
                f"via {self.client.describe()})")
        return f"{text}: {self.reason}" if self.reason else text

    def cancel(self) -> None:
        self.client.cancel()

    def usage(self) -> TokenUsage:
        with self._lock:
            return dataclasses.replace(self._usage)  # a snapshot: the trainer keeps it

    @property
    def cached_calls(self) -> int:
        """Completions served from a replay cache (no tokens spent)."""
        with self._lock:
            return self._cached_calls

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.n < 1:
            return []
        # The request's seed goes to the endpoint (OpenAI, vLLM, llama.cpp and Ollama take one); the
        # client drops it for an endpoint that refuses it.
        params = dataclasses.replace(self.params, n=request.n, seed=request.seed)
        completion = self.client.complete(request.messages, params)
        with self._lock:
            self._usage.add(completion.usage)
            self._cached_calls += int(completion.cached)
        sampling = completion.params.to_dict()
        return [Proposal(reply=text, optimizer=self.name, sampling=dict(sampling))
                for text in completion.replies[: request.n]]
