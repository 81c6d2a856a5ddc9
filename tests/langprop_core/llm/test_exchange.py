"""The file exchange: a folder as the LLM, directly and behind the OpenAI protocol."""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from langprop_core.llm.base import ChatMessage, LLMError, ProposalRequest, ReplayMiss, SamplingParams
from langprop_core.llm.exchange import FileExchangeClient, estimate_tokens
from langprop_core.llm.exchange_server import ExchangeServer
from langprop_core.llm.factory import OptimizerConfig, make_optimizer
from langprop_core.llm.fallback import FallbackOnMiss
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.openai_client import OpenAIClient

MESSAGES = (ChatMessage("system", "You write Python."), ChatMessage("user", "Write policy(x) please."))
REPLY = "Here it is.\n```python\ndef policy(x):\n    return 2 * x\n```\n"
PARAMS = SamplingParams(model="exchange", temperature=0.0, n=1, seed=3)


def answer_when_asked(directory: Path, text: str, count: int = 1, deadline_s: float = 20.0,
                      expect: str = "Write policy(x) please") -> threading.Thread:
    """A stand-in for the model: reads each request file (that must hold ``expect``), writes its reply file."""

    def run() -> None:
        answered: set[Path] = set()
        end = time.monotonic() + deadline_s
        while len(answered) < count and time.monotonic() < end:
            for request in sorted(directory.glob("*.request.md")):
                if request not in answered:
                    body = request.read_text()
                    assert expect in body
                    reply = request.with_name(request.name.replace(".request.md", ".reply.md"))
                    assert f"`{reply.name}`" in body  # the readable request names its reply file
                    reply.write_text(text.replace("{n}", request.name[:4]))
                    answered.add(request)
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def client(directory: Path, timeout_s: float | None = 20.0) -> FileExchangeClient:
    # a time limit only so that a broken stand-in fails the test instead of hanging it
    return FileExchangeClient(directory, poll_s=0.02, stable_s=0.05, timeout_s=timeout_s)


def test_a_request_is_written_waited_for_and_answered_by_its_reply_file(tmp_path, caplog):
    writer = answer_when_asked(tmp_path, REPLY)
    with caplog.at_level(logging.WARNING, logger="langprop_core.llm.exchange"):
        done = client(tmp_path).complete(MESSAGES, PARAMS)
    writer.join()
    assert done.replies == [REPLY]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001.reply.md", "0001.request.json", "0001.request.md"]
    entry = json.loads((tmp_path / "0001.request.json").read_text())
    assert entry["messages"][1] == {"role": "user", "content": "Write policy(x) please."}
    assert entry["sampling"]["seed"] == 3
    # one line says which file it waits for
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waits) == 1 and str(tmp_path / "0001.reply.md") in waits[0]
    assert done.usage.calls == 1
    assert done.usage.completion_tokens == estimate_tokens(REPLY)
    assert done.usage.prompt_tokens == sum(estimate_tokens(m.content) for m in MESSAGES)


def test_a_rerun_finds_its_requests_and_numbers_new_ones_after_them(tmp_path):
    (tmp_path / "0001.reply.md").parent.mkdir(exist_ok=True)
    writer = answer_when_asked(tmp_path, "reply {n}", count=2)
    first = client(tmp_path)
    assert first.complete(MESSAGES, PARAMS).replies == ["reply 0001"]
    # a new process (a rerun after Ctrl-C) asks the same question: the same file answers, nothing is written
    rerun = client(tmp_path)
    assert rerun.complete(MESSAGES, PARAMS).replies == ["reply 0001"]
    assert len(list(tmp_path.glob("*.request.json"))) == 1
    other = (*MESSAGES[:1], ChatMessage("user", "Write policy(x) please, again."))
    assert rerun.complete(other, PARAMS).replies == ["reply 0002"]
    writer.join()


def test_several_replies_are_several_requests_with_their_own_seeds(tmp_path):
    writer = answer_when_asked(tmp_path, "reply {n}", count=2)
    done = client(tmp_path).complete(MESSAGES, SamplingParams(model="exchange", n=2, seed=7))
    writer.join()
    assert done.replies == ["reply 0001", "reply 0002"]
    seeds = [json.loads(p.read_text())["sampling"]["seed"] for p in sorted(tmp_path.glob("*.request.json"))]
    assert seeds == [7, 8]


def test_replay_answers_from_the_folder_and_a_miss_writes_nothing(tmp_path):
    writer = answer_when_asked(tmp_path, REPLY)
    client(tmp_path).complete(MESSAGES, PARAMS)
    writer.join()
    replay = FileExchangeClient(tmp_path, wait=False)
    assert replay.complete(MESSAGES, PARAMS).replies == [REPLY]
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ReplayMiss, match="holds no reply"):
        replay.complete(MESSAGES, SamplingParams(model="exchange", temperature=0.0, n=1, seed=4))
    assert sorted(tmp_path.iterdir()) == before


def test_cancel_ends_a_wait(tmp_path):
    waiting = client(tmp_path, timeout_s=None)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            waiting.complete(MESSAGES, PARAMS)
        except LLMError as exc:
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # no timeout by default
    waiting.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive() and "interrupted" in str(errors[0])


def test_the_server_answers_the_openai_protocol_from_the_same_folder(tmp_path):
    with ExchangeServer(tmp_path, poll_s=0.02, stable_s=0.05) as server:
        writer = answer_when_asked(tmp_path, REPLY)
        openai_client = OpenAIClient(base_url=server.base_url, api_key="x", timeout_s=30, max_retries=0)
        optimizer = LLMOptimizer(openai_client, SamplingParams(model="exchange", temperature=0.0, n=1))
        proposals = optimizer.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy", seed=3))
        writer.join()
    assert [p.reply for p in proposals] == [REPLY]
    assert optimizer.usage().completion_tokens == estimate_tokens(REPLY)
    # the folder is the same one the files optimizer uses: it replays what the server was answered
    replay = make_optimizer(OptimizerConfig(kind="files", exchange_dir=tmp_path, cache_mode="replay",
                                            temperature=0.0))
    again = replay.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy", seed=3))
    assert [p.reply for p in again] == [REPLY]


def test_a_replay_that_misses_goes_on_with_the_mutation_baseline(tmp_path, caplog):
    writer = answer_when_asked(tmp_path, REPLY)
    client(tmp_path).complete(MESSAGES, PARAMS)
    writer.join()
    optimizer = make_optimizer(OptimizerConfig(kind="files", exchange_dir=tmp_path, cache_mode="replay",
                                               temperature=0.0, on_miss="mutation"),
                               seed_sources=["def policy(x):\n    return x + 1\n"])
    assert isinstance(optimizer, FallbackOnMiss)
    hit = optimizer.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy", seed=3))
    assert [p.reply for p in hit] == [REPLY] and optimizer.missed_at is None
    parent = "def policy(x):\n    if x > 2:\n        return x + 1\n    return 3 * x\n"
    with caplog.at_level(logging.WARNING, logger="langprop_core.llm.fallback"):
        missed = optimizer.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy", seed=9,
                                                   parent_source=parent))
    assert optimizer.missed_at == 1
    assert [p.optimizer for p in missed] == ["mutation"]
    assert "going on with" in caplog.text and "missed after 1" in optimizer.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001.reply.md", "0001.request.json", "0001.request.md"]


def test_the_files_optimizer_needs_a_folder():
    with pytest.raises(ValueError, match="--llm-exchange"):
        OptimizerConfig(kind="files")


def _langprop(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-c", "from langprop_driving.cli import main; main()", *args]


THERMOSTAT = ("A thermostat.\n```python\ndef choose_action(temperature_c, rate_c_per_min):\n"
              "    if temperature_c < 19:\n        return 'heat'\n    if temperature_c > 23:\n"
              "        return 'cool'\n    return 'off'\n```\n")


def test_ctrl_c_stops_a_waiting_run_and_the_same_command_goes_on(tmp_path):
    # the trainer waits for a reply with no time limit; Ctrl-C must end it at once (the proposal threads
    # stop waiting), and the same command, with the model answering, picks up where it stopped
    import os
    import signal
    import subprocess

    exchange, run_dir = tmp_path / "exchange", tmp_path / "run"
    command = _langprop("example", "--run-dir", str(run_dir), "--epochs", "1", "--batch-size", "16",
                        "--llm-exchange", str(exchange), "--max-llm-calls", "2")
    def as_from_a_terminal() -> None:
        # the run gets Ctrl-C as a terminal gives it, whatever the test process inherited or blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=as_from_a_terminal)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any("waiting for" in line for line in lines):  # the run now waits on the reply file
        assert first.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "no request waited for in 60 s"
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    try:
        # the wait ends within a poll; closing the sandbox's processes after it takes longer on a busy machine
        first.wait(timeout=90)
    except subprocess.TimeoutExpired:
        first.kill()
        pytest.fail(f"Ctrl-C did not end a run that waits for a reply: {''.join(lines)}")
    reader.join(timeout=10)
    out = "".join(lines)
    assert first.returncode != 0
    assert "waiting for" in out and str(exchange / "0001.reply.md") in out
    asked = (exchange / "0001.request.json").read_text()
    writer = answer_when_asked(exchange, THERMOSTAT, count=2, deadline_s=120, expect="choose_action")
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    writer.join()
    # the rerun asked its first question again and found it in the same file (no duplicate), then went on
    assert (exchange / "0001.request.json").read_text() == asked
    keys = [json.loads(p.read_text())["key"] for p in sorted(exchange.glob("*.request.json"))]
    assert len(keys) == len(set(keys)) == 2, second.stdout + second.stderr
    assert second.returncode in (0, 3), second.stdout + second.stderr  # 3: stopped at its LLM budget
    assert list(run_dir.rglob("metrics.jsonl")), "the rerun trained"
