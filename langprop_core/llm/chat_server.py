"""A minimal OpenAI-compatible chat-completions server on localhost.

What answers is up to a subclass (:meth:`ChatServer.respond`): the file
exchange answers from reply files, the tests' fake server from a script of
actions. This module owns the protocol both speak: ``POST /v1/chat/completions``
with a JSON body that names a ``model`` and a ``messages`` list,
``GET /v1/models``, OpenAI-style error bodies, and a daemon thread per server.
"""
from __future__ import annotations

import abc
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping, Sequence

__all__ = ["ChatServer", "Answer", "CHAT_PATH", "completion_body", "error_answer"]

CHAT_PATH = "/v1/chat/completions"
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    429: "rate_limit_exceeded", 500: "server_error", 502: "server_error", 503: "server_error",
}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status code, JSON body and extra headers."""

    code: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def error_answer(code: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    """An OpenAI-style error body with HTTP ``code``."""
    error_type = _ERROR_TYPES.get(code, "server_error" if code >= 500 else "invalid_request_error")
    return Answer(code, {"error": {"message": message, "type": error_type, "param": None, "code": error_type}},
                  dict(headers or {}))


def completion_body(request_id: str, model: str, texts: Sequence[str], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` body with ``texts`` as its choices."""
    return {
        "id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": None} for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": None,
    }


class ChatServer(abc.ABC):
    """Serves chat completions on ``host`` (a free port by default) from a daemon thread."""

    #: the one model ``GET /v1/models`` lists
    model_id = "chat-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.requested_port = host, port
        #: set when the server stops: a :meth:`respond` that waits should wait on it
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def respond(self, body: dict[str, Any]) -> Answer | None:
        """The answer to a chat request whose body has a ``model`` and a ``messages`` list.

        Runs in the request's own thread; None sends nothing (the server is stopping).
        """

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "ChatServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                server._post(self)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/v1/models":
                    server._send(self, Answer(200, {"object": "list", "data": [
                        {"id": server.model_id, "object": "model", "owned_by": type(server).__name__}]}))
                else:
                    server._send(self, error_answer(404, f"no route GET {self.path}"))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a server for tools and tests: its callers log what matters

        self.stopping.clear()
        self._httpd = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers that wait
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The base URL to give an OpenAI client (``.../v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    # -- protocol ------------------------------------------------------------
    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        if handler.path.rstrip("/") != CHAT_PATH:
            self._send(handler, error_answer(404, f"no route POST {handler.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send(handler, error_answer(400, f"request body is not JSON: {exc}"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            self._send(handler, error_answer(400, "request needs 'model' and a 'messages' list"))
            return
        answer = self.respond(body)
        if answer is not None:
            self._send(handler, answer)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        data = json.dumps(answer.body).encode("utf-8")
        try:
            handler.send_response(answer.code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in answer.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer
