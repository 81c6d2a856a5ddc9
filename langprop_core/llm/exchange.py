"""A folder as the LLM: each request is written as files, each reply is read from a file.

Whoever can read and write files can drive training: a researcher pasting
prompts into a chat window, a script in front of a model with no HTTP API, or
another program. Request number ``N`` (in the order asked) is

- ``NNNN.request.json``: the messages and sampling parameters, with their key;
- ``NNNN.request.md``: the same, readable, ready to paste into a chat window;
- ``NNNN.reply.md``: written by whoever answers, the assistant's text as it is.

The key is the record/replay cache's (:func:`~langprop_core.llm.cache.cache_key`
of the messages and sampling parameters), and a request already in the folder
keeps its number. So a run that was interrupted (Ctrl-C) and run again asks
the same questions and finds the replies already written, and a folder whose
requests all have replies replays its run exactly, offline (``wait=False``
turns a missing reply into :class:`~langprop_core.llm.base.ReplayMiss` instead of a wait). A
completion that asks for ``n`` replies is ``n`` requests, each with the next
seed (:meth:`SamplingParams.for_round`).

There is no tokenizer behind a folder: token counts are estimates, one token
per four characters.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from langprop_common.files import atomic_write_text
from langprop_core.llm.base import (ChatMessage, Completion, LLMClient, LLMError, ReplayMiss, SamplingParams,
                                    TokenUsage)
from langprop_core.llm.cache import cache_key

__all__ = ["ExchangeFolder", "ExchangeRequest", "FileExchangeClient", "estimate_tokens",
           "CHARS_PER_TOKEN"]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
_FORMAT_VERSION = 1
_REQUEST_JSON = re.compile(r"^(\d{4,})\.request\.json$")
# A reply file counts once it has not changed for this long, so a writer that
# writes in several pieces is not cut short (an atomic rename needs no wait).
STABLE_S = 1.0


def estimate_tokens(text: str) -> int:
    """An estimate of ``text``'s tokens: one per four characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ExchangeRequest:
    """One request in the folder: its number, key and files."""

    number: int
    key: str
    request_json: Path
    request_md: Path
    reply: Path

    @property
    def name(self) -> str:
        return f"{self.number:04d}"


def _render(request: ExchangeRequest, messages: Sequence[ChatMessage], params: SamplingParams) -> str:
    """The request as a person reads it: what to do, then each message under its role."""
    lines = [f"# Request {request.name}", "",
             f"Answer the conversation below as the assistant would, and save the assistant's next message, "
             f"as plain text, to `{request.reply.name}` in this folder (write it under another name and rename "
             f"it, or write it at once). Sampling: {json.dumps(params.to_dict(), sort_keys=True)}.", ""]
    for message in messages:
        lines += [f"## {message.role}", "", message.content, ""]
    return "\n".join(lines)


class ExchangeFolder:
    """The numbered request and reply files of one exchange folder (created when missing)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._numbers: dict[str, int] | None = None  # key -> number, read from the folder once

    def _index(self) -> dict[str, int]:
        if self._numbers is None:
            numbers: dict[str, int] = {}
            for path in sorted(self.directory.glob("*.request.json")) if self.directory.is_dir() else ():
                match = _REQUEST_JSON.match(path.name)
                try:
                    key = json.loads(path.read_text(encoding="utf-8"))["key"]
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise LLMError(f"exchange request {path} is unreadable ({exc}); remove it or fix it") from None
                if match:
                    numbers.setdefault(str(key), int(match.group(1)))
            self._numbers = numbers
        return self._numbers

    def _files(self, number: int, key: str) -> ExchangeRequest:
        stem = self.directory / f"{number:04d}"
        return ExchangeRequest(number, key, stem.with_name(f"{stem.name}.request.json"),
                               stem.with_name(f"{stem.name}.request.md"), stem.with_name(f"{stem.name}.reply.md"))

    def find(self, messages: Sequence[ChatMessage], params: SamplingParams) -> ExchangeRequest | None:
        """The request already in the folder for ``messages`` and ``params``, or None."""
        key = cache_key(messages, params)
        with self._lock:
            number = self._index().get(key)
        return None if number is None else self._files(number, key)

    def ask(self, messages: Sequence[ChatMessage], params: SamplingParams) -> ExchangeRequest:
        """The request for ``messages`` and ``params``, written with the next number unless already there."""
        key = cache_key(messages, params)
        with self._lock:
            numbers = self._index()
            if key in numbers:
                return self._files(numbers[key], key)
            number = max(numbers.values(), default=0) + 1
            numbers[key] = number
            request = self._files(number, key)
            self.directory.mkdir(parents=True, exist_ok=True)
            entry = {"version": _FORMAT_VERSION, "key": key, "model": params.model,
                     "messages": [m.to_dict() for m in messages], "sampling": params.to_dict(),
                     "asked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            atomic_write_text(request.request_md, _render(request, messages, params))
            # The JSON last: a request counts as asked once it is there.
            atomic_write_text(request.request_json, json.dumps(entry, indent=1, ensure_ascii=False))
        return request

    @staticmethod
    def reply_of(request: ExchangeRequest, stable_s: float = STABLE_S) -> str | None:
        """The reply's text once its file exists and has not changed for ``stable_s``; None before."""
        try:
            if time.time() - request.reply.stat().st_mtime < stable_s:
                return None
            return request.reply.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def requests(self) -> list[ExchangeRequest]:
        """Every request in the folder, by number."""
        with self._lock:
            return [self._files(number, key) for key, number in sorted(self._index().items(), key=lambda kv: kv[1])]


class FileExchangeClient(LLMClient):
    """An :class:`LLMClient` whose answers are the reply files of an :class:`ExchangeFolder`.

    With ``wait`` (the default) a request without a reply is written and waited
    for, with no time limit unless ``timeout_s`` is given, saying once on one
    line which file it waits for; :meth:`cancel` (the trainer's Ctrl-C) ends the
    wait. Without ``wait`` the folder is a replay cache: a request it does not
    hold raises :class:`~langprop_core.llm.base.ReplayMiss` and nothing is written, and what it replays
    costs nothing (no tokens; counted as replayed, not as calls).
    """

    def __init__(self, directory: Path | str, wait: bool = True, timeout_s: float | None = None,
                 poll_s: float = 0.5, stable_s: float = STABLE_S) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")
        self.folder = ExchangeFolder(directory)
        self.wait = wait
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.stable_s = stable_s
        self._cancelled = threading.Event()

    def describe(self) -> str:
        how = "answered by whoever writes its reply files" if self.wait else "replayed, offline"
        return f"file exchange {self.folder.directory} ({how})"

    def cancel(self) -> None:
        self._cancelled.set()

    def complete(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        replies = []
        for round_index in range(params.n):
            one = params.for_round(round_index)
            if one.seed is None and round_index:  # unseeded rounds would all be the same request
                one = dataclasses.replace(one, seed=round_index)
            replies.append(self._answer(messages, dataclasses.replace(one, n=1)))
        if not self.wait:  # a replay spends nothing now: counted apart, as the record/replay cache's hits are
            return Completion(replies=replies, params=params, usage=TokenUsage(), cached=True)
        prompt_tokens = sum(estimate_tokens(m.content) for m in messages)
        usage = TokenUsage(prompt_tokens=prompt_tokens * len(replies),
                           completion_tokens=sum(estimate_tokens(text) for text in replies), calls=len(replies))
        return Completion(replies=replies, params=params, usage=usage, cached=False)

    def _answer(self, messages: Sequence[ChatMessage], params: SamplingParams) -> str:
        if not self.wait:
            request = self.folder.find(messages, params)
            text = None if request is None else self.folder.reply_of(request, stable_s=0.0)
            if text is None:
                key = cache_key(messages, params)
                last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
                raise ReplayMiss(
                    f"the exchange folder {self.folder.directory} holds no reply to this request (key {key[:12]}, "
                    f"last user message starts {' '.join(last_user.split())[:80]!r}): the prompts differ from "
                    "the recorded run's")
            return text
        request = self.folder.ask(messages, params)
        text = self.folder.reply_of(request, self.stable_s)
        if text is not None:
            return text
        log.warning("LLM request %s: waiting for %s", request.request_md, request.reply)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while text is None:
            if self._cancelled.wait(self.poll_s):
                raise LLMError(f"stopped waiting for {request.reply} (interrupted); run again to go on")
            if deadline is not None and time.monotonic() > deadline:
                raise LLMError(f"no reply in {request.reply} after {self.timeout_s:g} s; write it and run again")
            text = self.folder.reply_of(request, self.stable_s)
        return text


def payload_of(body: dict[str, Any]) -> tuple[list[ChatMessage], SamplingParams]:
    """The messages and sampling parameters of an OpenAI chat-completions request body."""
    messages = [ChatMessage(str(m.get("role")), str(m.get("content", ""))) for m in body["messages"]]
    params = SamplingParams(model=str(body["model"]), temperature=float(body.get("temperature", 1.0)),
                            n=int(body.get("n") or 1), max_tokens=body.get("max_tokens"), seed=body.get("seed"))
    return messages, params
