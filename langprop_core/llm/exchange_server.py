"""The file exchange behind an OpenAI-compatible endpoint on localhost.

For a program that speaks only the OpenAI protocol (another trainer, an
evaluation harness, the ``openai`` client with its retries and the replay
cache): :class:`ExchangeServer` serves ``POST /v1/chat/completions`` from an
exchange folder (:mod:`langprop_core.llm.exchange`: one request file per reply
wanted, answered by a reply file)::

    python -m langprop_core.llm.exchange_server --dir runs/exchange --port 8765 &
    LANGPROP_LLM_BASE_URL=http://127.0.0.1:8765/v1 LANGPROP_LLM_MODEL=exchange langprop demo

LangProp's own commands need no server: ``--optimizer files --llm-exchange DIR``
uses the folder directly, with no timeout.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from langprop_core.llm.base import LLMError
from langprop_core.llm.chat_server import Answer, ChatServer, completion_body, error_answer
from langprop_core.llm.exchange import STABLE_S, FileExchangeClient, payload_of

__all__ = ["ExchangeServer", "main"]

log = logging.getLogger(__name__)


class ExchangeServer(ChatServer):
    """Answers chat completions from the reply files of the exchange folder ``directory``.

    ``timeout_s`` bounds one wait for a reply (None: wait until stopped); an
    unanswered request then gets HTTP 504, and asking again waits on the same file.
    """

    model_id = "exchange"

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0,
                 poll_s: float = 0.2, timeout_s: float | None = None, stable_s: float = STABLE_S) -> None:
        super().__init__(host, port)
        self.client = FileExchangeClient(directory, wait=True, timeout_s=timeout_s, poll_s=poll_s,
                                         stable_s=stable_s)

    @property
    def directory(self) -> Path:
        return self.client.folder.directory

    def stop(self) -> None:
        self.client.cancel()  # handlers that wait answer nothing
        super().stop()

    def respond(self, body: dict[str, Any]) -> Answer | None:
        try:
            messages, params = payload_of(body)
        except (TypeError, ValueError) as exc:
            return error_answer(400, f"bad chat request: {exc}")
        if params.n < 1:
            return error_answer(400, f"n must be an integer >= 1, got {body.get('n')!r}")
        try:
            completion = self.client.complete(messages, params)
        except LLMError as exc:
            return None if self.stopping.is_set() else error_answer(504, str(exc))
        usage = completion.usage
        return Answer(200, completion_body(f"{usage.calls}", params.model, completion.replies, usage.prompt_tokens,
                                           usage.completion_tokens))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m langprop_core.llm.exchange_server --dir DIR [--port P]``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="the exchange folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = ExchangeServer(args.dir, host=args.host, port=args.port).start()
    print(f"file exchange on {server.base_url}: requests and replies in {server.directory}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
