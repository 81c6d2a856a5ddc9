"""The optimizer interface: how new scripts are produced.

An :class:`Optimizer` receives a :class:`ProposalRequest` (the rendered chat
prompt, and the parent script for rewrites) and answers with
:class:`Proposal` replies in LLM form: free text that should contain a fenced
Python block. Every optimizer, LLM or not, goes through the same reply parsing,
so a reply with no code is handled in one place.

An LLM-backed optimizer talks to an :class:`LLMClient`; clients stack (the
record/replay cache wraps the OpenAI client).
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

__all__ = [
    "ChatMessage", "SamplingParams", "Completion", "LLMClient", "LLMError", "ReplayMiss",
    "ProposalRequest", "Proposal", "Optimizer", "TokenUsage",
]

ROLES = ("system", "user", "assistant")


class LLMError(RuntimeError):
    """An LLM call failed for good (after retries); the message says why."""


class ReplayMiss(LLMError):
    """Offline replay of recorded replies has none for a request (the prompts changed since the recording)."""


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"chat role {self.role!r} is not one of {', '.join(ROLES)}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class SamplingParams:
    """What, besides the messages, decides an LLM's answer; recorded with every script."""

    model: str
    temperature: float = 0.7
    n: int = 1
    max_tokens: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_round(self, round_index: int) -> "SamplingParams":
        """The parameters of the ``round_index``-th request of a completion split into several.

        Later rounds take the next seeds: with the same seed, a seeded endpoint
        (vLLM, llama.cpp, OpenAI's best effort) answers each round with the same
        sample, and the split asks for ``n`` different replies.
        """
        if round_index == 0 or self.seed is None:
            return self
        return replace(self, seed=(self.seed + round_index) % 2**31)


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, other: "TokenUsage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls


@dataclass(frozen=True)
class Completion:
    replies: list[str]
    params: SamplingParams
    usage: TokenUsage = field(default_factory=TokenUsage)
    cached: bool = False


class LLMClient(abc.ABC):
    """A chat-completion endpoint. Raises :class:`LLMError` when it gives up."""

    @abc.abstractmethod
    def complete(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        ...

    def describe(self) -> str:
        """One line for logs: what this client talks to."""
        return type(self).__name__

    def cancel(self) -> None:
        """Stop calls that wait (the run was interrupted); they raise :class:`LLMError`. Default: nothing."""


@dataclass(frozen=True)
class ProposalRequest:
    """Ask for ``n`` new scripts.

    ``messages`` is the rendered setup or update prompt. ``parent_source`` is the
    script being rewritten (None in the setup phase). ``function_name`` is the
    function the script must define. ``seed`` makes non-LLM optimizers
    deterministic.
    """

    messages: tuple[ChatMessage, ...]
    n: int
    function_name: str
    parent_source: str | None = None
    seed: int = 0
    # the other parents of this round (what a non-LLM optimizer may cross the parent with)
    other_sources: tuple[str, ...] = ()
    # the inputs of the failure cases the prompt shows (what a reply was asked to fix)
    cases: tuple[tuple, ...] = ()


@dataclass(frozen=True)
class Proposal:
    """One reply, and what produced it (kept with the script it yields)."""

    reply: str
    optimizer: str
    sampling: dict[str, Any]


class Optimizer(abc.ABC):
    """Produces candidate scripts. Implementations: LLM-backed, AST mutation."""

    name: str = "optimizer"
    # Replies cost nothing (no LLM, no tokens): a trainer may ask for many more per parent,
    # since a blind search needs many tries to cross a plateau of its objective.
    free: bool = False

    @abc.abstractmethod
    def propose(self, request: ProposalRequest) -> list[Proposal]:
        """Replies for ``request``; may return fewer than asked (never raises for a bad reply)."""

    def usage(self) -> TokenUsage:
        """Tokens spent so far (zero for optimizers without an LLM)."""
        return TokenUsage()

    def cancel(self) -> None:
        """Stop proposals that wait on an answer (Ctrl-C); they raise. Default: nothing waits."""

    def describe(self) -> str:
        return self.name
