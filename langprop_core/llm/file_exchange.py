"""An OpenAI-compatible endpoint whose replies are written as files.

Measuring what a capable model does with our prompts needs a model; where no
endpoint is reachable, a person or another program can play it through a
folder. :class:`FileExchangeServer` serves ``POST /v1/chat/completions`` on
localhost: each request becomes ``requests/<id>.md`` (the messages, readable)
and ``requests/<id>.json`` (the body as sent), and the answer is whatever text
appears in ``replies/<id>.md`` (``<id>.<k>.md`` for the k-th of several
choices). Training runs unchanged against it, through the real ``openai``
client, its retries and the record/replay cache::

    python -m langprop_core.llm.file_exchange --dir runs/exchange --port 8765 &
    LANGPROP_LLM_BASE_URL=http://127.0.0.1:8765/v1 LANGPROP_LLM_MODEL=exchange langprop demo

The id is derived from the request's content, so a run that is resumed after
a call timed out sends the same request again and waits on the same reply
file instead of asking twice (set ``LANGPROP_LLM_TIMEOUT`` to what a reply
takes). Token counts in the answers' ``usage`` are estimates (one token per
four characters), since there is no tokenizer behind the folder; the ids are
numbered in arrival order so the folder reads as a transcript.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from langprop_common.files import atomic_write_text
from langprop_core.llm.chat_server import Answer, ChatServer, completion_body, error_answer

__all__ = ["FileExchangeServer", "estimate_tokens", "main"]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
# A reply file is taken once it has not changed for this long (a writer that
# writes in several pieces is not cut short).
STABLE_S = 1.0


def estimate_tokens(text: str) -> int:
    """An estimate of ``text``'s tokens: one per four characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _render_request(request_id: str, body: dict[str, Any], reply_names: Sequence[str]) -> str:
    """The request as a person (or a model's stand-in) reads it: instructions, then each message."""
    wanted = " and ".join(f"`replies/{name}`" for name in reply_names)
    lines = [f"# Request {request_id}", "",
             f"Model `{body.get('model')}`, temperature {body.get('temperature')}, "
             f"{len(reply_names)} reply wanted. Answer the conversation below as the assistant would: "
             f"write the assistant's next message, as plain text, to {wanted}.", ""]
    for message in body["messages"]:
        lines += [f"## {message.get('role', '?')}", "", str(message.get("content", "")), ""]
    return "\n".join(lines)


class FileExchangeServer(ChatServer):
    """Serves chat completions from reply files written into ``directory/replies``.

    ``timeout_s`` bounds one wait for a reply (None: wait until stopped); an
    unanswered request then gets HTTP 504. A reply file counts once it is
    ``stable_s`` old.
    """

    model_id = "exchange"

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0,
                 poll_s: float = 0.2, timeout_s: float | None = None, stable_s: float = STABLE_S) -> None:
        super().__init__(host, port)
        self.directory = Path(directory)
        self.requests_dir = self.directory / "requests"
        self.replies_dir = self.directory / "replies"
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.stable_s = stable_s
        self._ids: dict[str, str] = {}  # content key -> id, so a resent request waits on the same file
        self._lock = threading.Lock()

    def start(self) -> "FileExchangeServer":
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        self.replies_dir.mkdir(parents=True, exist_ok=True)
        self._index_existing()
        super().start()
        return self

    # -- requests --------------------------------------------------------------
    def _index_existing(self) -> None:
        # A restarted server keeps the numbering and the ids of what it already asked.
        for path in sorted(self.requests_dir.glob("*.json")):
            try:
                key = json.loads(path.read_text(encoding="utf-8"))["key"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            self._ids.setdefault(key, path.stem)

    def _request_id(self, body: dict[str, Any]) -> tuple[str, bool]:
        """The id of ``body`` and whether it is new."""
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self._lock:
            if key in self._ids:
                return self._ids[key], False
            request_id = f"{len(self._ids) + 1:04d}_{key[:8]}"
            self._ids[key] = request_id
        atomic_write_text(self.requests_dir / f"{request_id}.json",
                          json.dumps({"key": key, "body": body}, indent=1, ensure_ascii=False))
        return request_id, True

    def _wait_for(self, path: Path) -> str | None:
        """The text of ``path`` once it exists and has not changed for ``stable_s``; None on timeout or stop."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self.stopping.is_set():
            try:
                if time.time() - path.stat().st_mtime >= self.stable_s:
                    return path.read_text(encoding="utf-8")
            except FileNotFoundError:
                pass
            if deadline is not None and time.monotonic() > deadline:
                return None
            self.stopping.wait(self.poll_s)
        return None

    def respond(self, body: dict[str, Any]) -> Answer | None:
        try:
            n = int(body.get("n") or 1)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            return error_answer(400, f"n must be an integer >= 1, got {body.get('n')!r}")
        request_id, new = self._request_id(body)
        names = [f"{request_id}.md"] if n == 1 else [f"{request_id}.{k}.md" for k in range(1, n + 1)]
        if new:
            atomic_write_text(self.requests_dir / f"{request_id}.md", _render_request(request_id, body, names))
        log.info("file exchange: request %s waits for %s", request_id, ", ".join(names))
        replies = []
        for name in names:
            text = self._wait_for(self.replies_dir / name)
            if text is None:
                return None if self.stopping.is_set() else error_answer(
                    504, f"no reply in {self.replies_dir / name} yet")
            replies.append(text)
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in body["messages"])
        return Answer(200, completion_body(request_id, body["model"], replies, prompt_tokens,
                                           sum(estimate_tokens(r) for r in replies)))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m langprop_core.llm.file_exchange --dir DIR [--port P]``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="exchange folder (requests/ and replies/ in it)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = FileExchangeServer(args.dir, host=args.host, port=args.port).start()
    print(f"file exchange on {server.base_url}: requests in {server.requests_dir}, replies to "
          f"{server.replies_dir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
