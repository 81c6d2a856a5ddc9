"""The file exchange endpoint, through the real `openai` client and the LLM optimizer."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from langprop_core.llm.base import ChatMessage, LLMError, ProposalRequest, SamplingParams
from langprop_core.llm.file_exchange import FileExchangeServer, estimate_tokens
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.openai_client import OpenAIClient

MESSAGES = (ChatMessage("system", "You write Python."), ChatMessage("user", "Write policy(x) please."))
REPLY = "Here it is.\n```python\ndef policy(x):\n    return 2 * x\n```\n"


def answer_when_asked(directory: Path, text: str, count: int = 1, deadline_s: float = 20.0) -> threading.Thread:
    """A stand-in for the model: reads each request file, writes its reply file."""

    def run() -> None:
        answered: set[str] = set()
        end = time.monotonic() + deadline_s
        while len(answered) < count and time.monotonic() < end:
            for request in sorted((directory / "requests").glob("*.md")):
                if request.stem not in answered:
                    assert "Write policy(x) please." in request.read_text()
                    (directory / "replies" / f"{request.stem}.md").write_text(text)
                    answered.add(request.stem)
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_reply_file_answers_the_chat_request(tmp_path):
    with FileExchangeServer(tmp_path, poll_s=0.02, stable_s=0.1) as server:
        writer = answer_when_asked(tmp_path, REPLY)
        client = OpenAIClient(base_url=server.base_url, api_key="x", timeout_s=30, max_retries=0)
        optimizer = LLMOptimizer(client, SamplingParams(model="exchange", temperature=0.0, n=1))
        proposals = optimizer.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy"))
        writer.join()
    assert [p.reply for p in proposals] == [REPLY]
    request = json.loads(next((tmp_path / "requests").glob("*.json")).read_text())
    assert request["body"]["messages"][1]["content"] == "Write policy(x) please."
    usage = optimizer.usage()
    assert usage.calls == 1
    assert usage.completion_tokens == estimate_tokens(REPLY)
    assert usage.prompt_tokens == sum(estimate_tokens(m.content) for m in MESSAGES)


def test_a_resent_request_waits_on_the_same_file(tmp_path):
    # A run whose call timed out (it gives up: a timeout is not retried) is run again and sends the
    # same request: it waits on the same file, and the folder holds one request.
    with FileExchangeServer(tmp_path, poll_s=0.02, stable_s=0.1) as server:
        client = OpenAIClient(base_url=server.base_url, api_key="x", timeout_s=0.5, max_retries=0)
        with pytest.raises(LLMError):
            client.complete(MESSAGES, SamplingParams(model="exchange", n=1, seed=3))
        request = next((tmp_path / "requests").glob("*.md"))
        (tmp_path / "replies" / f"{request.stem}.md").write_text(REPLY)
        done = client.complete(MESSAGES, SamplingParams(model="exchange", n=1, seed=3))
    assert done.replies == [REPLY]
    assert len(list((tmp_path / "requests").glob("*.md"))) == 1


def test_several_choices_are_several_files_and_a_restart_keeps_ids(tmp_path):
    with FileExchangeServer(tmp_path, poll_s=0.02, stable_s=0.1) as server:
        client = OpenAIClient(base_url=server.base_url, api_key="x", timeout_s=30, max_retries=0)

        def answer_two() -> None:
            while not list((tmp_path / "requests").glob("*.md")):
                time.sleep(0.02)
            stem = next((tmp_path / "requests").glob("*.md")).stem
            assert "replies/" + stem + ".2.md" in (tmp_path / "requests" / f"{stem}.md").read_text()
            for k in (1, 2):
                (tmp_path / "replies" / f"{stem}.{k}.md").write_text(f"reply {k}")

        threading.Thread(target=answer_two, daemon=True).start()
        done = client.complete(MESSAGES, SamplingParams(model="exchange", n=2))
    assert done.replies == ["reply 1", "reply 2"]
    # A restarted server answers the same request from the same files, without a new request.
    with FileExchangeServer(tmp_path, poll_s=0.02, stable_s=0.1) as server:
        client = OpenAIClient(base_url=server.base_url, api_key="x", timeout_s=30, max_retries=0)
        again = client.complete(MESSAGES, SamplingParams(model="exchange", n=2))
    assert again.replies == ["reply 1", "reply 2"]
    assert len(list((tmp_path / "requests").glob("*.json"))) == 1
