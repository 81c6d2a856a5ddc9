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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence

from langprop_core.files import atomic_write_text

__all__ = ["FileExchangeServer", "estimate_tokens", "main"]

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
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
    for message in body.get("messages", []):
        lines += [f"## {message.get('role', '?')}", "", str(message.get("content", "")), ""]
    return "\n".join(lines)


class FileExchangeServer:
    """Serves chat completions from reply files written into ``directory/replies``.

    ``timeout_s`` bounds one wait for a reply (None: wait until stopped); an
    unanswered request then gets HTTP 504, which the client may retry. A reply
    file counts once it is ``stable_s`` old.
    """

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0,
                 poll_s: float = 0.2, timeout_s: float | None = None, stable_s: float = STABLE_S) -> None:
        self.directory = Path(directory)
        self.requests_dir = self.directory / "requests"
        self.replies_dir = self.directory / "replies"
        self.host, self.port = host, port
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.stable_s = stable_s
        self._ids: dict[str, str] = {}  # content key -> id, so a resent request waits on the same file
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give the client (``.../v1``)."""
        if self._httpd is None:
            raise RuntimeError("the file exchange server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "FileExchangeServer":
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        self.replies_dir.mkdir(parents=True, exist_ok=True)
        self._index_existing()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                server._handle_post(self)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/v1/models":
                    server._send_json(self, 200, {"object": "list", "data": [
                        {"id": "exchange", "object": "model", "owned_by": "file-exchange"}]})
                else:
                    server._send_error(self, 404, f"no route GET {self.path}")

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("file exchange: " + format, *args)

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="file-exchange",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FileExchangeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def _reply_names(self, request_id: str, n: int) -> list[str]:
        return [f"{request_id}.md"] if n == 1 else [f"{request_id}.{k}.md" for k in range(1, n + 1)]

    def _wait_for(self, path: Path) -> str | None:
        """The text of ``path`` once it exists and has not changed for ``stable_s``; None on timeout or stop."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self._stopping.is_set():
            try:
                if time.time() - path.stat().st_mtime >= self.stable_s:
                    return path.read_text(encoding="utf-8")
            except FileNotFoundError:
                pass
            if deadline is not None and time.monotonic() > deadline:
                return None
            self._stopping.wait(self.poll_s)
        return None

    def _handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.rstrip("/") != CHAT_PATH:
            self._send_error(handler, 404, f"no route POST {handler.path}")
            return
        try:
            length = int(handler.headers.get("content-length") or 0)
            body = json.loads(handler.rfile.read(length) or b"{}")
            messages = body["messages"]
            n = int(body.get("n") or 1)
            if not isinstance(messages, list) or n < 1:
                raise ValueError("messages must be a list and n >= 1")
        except (ValueError, KeyError, TypeError) as exc:
            self._send_error(handler, 400, f"bad chat completion request: {exc}")
            return
        request_id, new = self._request_id(body)
        names = self._reply_names(request_id, n)
        if new:
            atomic_write_text(self.requests_dir / f"{request_id}.md", _render_request(request_id, body, names))
        log.info("file exchange: request %s waits for %s", request_id, ", ".join(names))
        replies = []
        for name in names:
            text = self._wait_for(self.replies_dir / name)
            if text is None:
                self._send_error(handler, 504, f"no reply in {self.replies_dir / name} yet")
                return
            replies.append(text)
        prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = sum(estimate_tokens(r) for r in replies)
        self._send_json(handler, 200, {
            "id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "exchange"),
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}} for i, text in enumerate(replies)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    # -- HTTP ------------------------------------------------------------------
    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(code)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); it will send the request again

    def _send_error(self, handler: BaseHTTPRequestHandler, code: int, message: str) -> None:
        self._send_json(handler, code, {"error": {"message": message, "type": "file_exchange_error",
                                                  "code": code}})


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m langprop_core.llm.file_exchange --dir DIR [--port P]``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="exchange folder (requests/ and replies/ in it)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = FileExchangeServer(args.dir, host=args.host, port=args.port).start()
    print(f"file exchange on {server.url}: requests in {server.requests_dir}, replies to {server.replies_dir}",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
