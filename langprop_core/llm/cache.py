"""A record/replay cache in front of an :class:`LLMClient`.

Every call is keyed by sha256 of (model, messages, sampling parameters) and
stored as one JSON file, ``<cache_dir>/<key[:2]>/<key>.json``, written
atomically (temporary file, then rename), so a killed run never leaves a
half-written entry. A key always gives the same replies: with the cache, a run
can be repeated offline, exactly, and a resumed run sees the replies the killed
one saw.

Modes:

- ``auto``: a hit is replayed, a miss goes to the inner client and is stored;
- ``record``: entries from earlier runs are refreshed from the inner client
  (each key once per cache object; later calls in the same run replay it, so the
  run stays consistent with what it recorded);
- ``replay``: never calls the inner client (it may be None); a miss raises
  :class:`LLMError` naming the key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

from langprop_common.files import atomic_write_text
from langprop_core.llm.base import (ChatMessage, Completion, LLMClient, LLMError, ReplayMiss, SamplingParams,
                                    TokenUsage)

__all__ = ["ReplayCache", "cache_key", "CACHE_MODES"]

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "record", "replay")
_FORMAT_VERSION = 1


def _key_payload(messages: Sequence[ChatMessage], params: SamplingParams) -> dict[str, Any]:
    return {"model": params.model, "messages": [m.to_dict() for m in messages],
            "sampling": params.to_dict()}


def cache_key(messages: Sequence[ChatMessage], params: SamplingParams) -> str:
    """sha256 hex of the canonical JSON of (model, messages, sampling parameters)."""
    text = json.dumps(_key_payload(messages, params), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReplayCache(LLMClient):
    """Record/replay wrapper of an :class:`LLMClient`; ``.hits`` and ``.misses`` count calls."""

    def __init__(self, inner: LLMClient | None, cache_dir: Path | str, mode: str = "auto") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode {mode!r} is not one of {', '.join(CACHE_MODES)}")
        if inner is None and mode != "replay":
            raise ValueError(f"cache mode {mode!r} needs an LLM client to record from "
                             "(only mode 'replay' works without one)")
        self.inner = inner
        self.cache_dir = Path(cache_dir)
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self._recorded: set[str] = set()  # keys written by this object (record mode replays them)
        self._lock = threading.Lock()
        # One lock per key: concurrent identical calls ask the LLM once and share the entry.
        self._key_locks: dict[str, threading.Lock] = {}

    def describe(self) -> str:
        inner = self.inner.describe() if self.inner is not None else "no LLM (offline)"
        return f"replay cache ({self.mode}, {self.cache_dir}) in front of {inner}"

    def cancel(self) -> None:
        if self.inner is not None:
            self.inner.cancel()

    def path_for(self, key: str) -> Path:
        """The file of the entry ``key`` (present or not)."""
        return self.cache_dir / key[:2] / f"{key}.json"

    def _load(self, key: str) -> Completion | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            replies = entry["replies"]
            params = SamplingParams(**entry["sampling"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if self.mode == "replay":
                raise LLMError(f"replay cache entry {path} is unreadable: {exc}") from exc
            log.warning("replay cache entry %s is unreadable (%s); asking the LLM again", path, exc)
            return None
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise LLMError(f"replay cache entry {path}: 'replies' must be a list of strings")
        return Completion(replies=list(replies), params=params, usage=TokenUsage(), cached=True)

    def _store(self, key: str, messages: Sequence[ChatMessage], completion: Completion) -> None:
        entry = {"version": _FORMAT_VERSION, "key": key,
                 **_key_payload(messages, completion.params),
                 "replies": list(completion.replies),
                 "usage": dataclasses.asdict(completion.usage)}
        atomic_write_text(self.path_for(key), json.dumps(entry, indent=1, ensure_ascii=False))

    def complete(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        key = cache_key(messages, params)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            return self._complete(key, messages, params)

    def _complete(self, key: str, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        refresh = self.mode == "record" and key not in self._recorded
        cached = None if refresh else self._load(key)
        if cached is not None:
            with self._lock:
                self.hits += 1
            return cached
        with self._lock:
            self.misses += 1
        if self.mode == "replay":
            last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
            snippet = " ".join(last_user.split())[:80]
            raise ReplayMiss(
                f"replay cache miss: no entry {key} under {self.cache_dir} for model {params.model!r} "
                f"(sampling {params.to_dict()}; last user message starts {snippet!r}); "
                "record it first with cache mode 'auto' or 'record' and an LLM endpoint")
        assert self.inner is not None
        completion = self.inner.complete(messages, params)
        self._store(key, messages, completion)
        with self._lock:
            self._recorded.add(key)
        return completion
