"""The trainer through the real ``openai`` client against the fake HTTP server,
and the record/replay cache: survive errors, improve, replay with zero HTTP calls."""
from __future__ import annotations

import json
from pathlib import Path

from langprop_core.llm.base import SamplingParams
from langprop_core.llm.cache import ReplayCache
from langprop_core.llm.edits import EDIT_INSTRUCTIONS
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.openai_client import OpenAIClient
from langprop_core.llm.usage import UsageCallback
from langprop_core.module import Module
from langprop_core.sandbox import SandboxConfig
from langprop_core.trainer import Trainer, TrainerConfig
from tests.fixtures.llm_server import reply, status
from tests.helpers.llm_training import TASK, WEAK, llm_doubling_module
from tests.helpers.scripted_training import fence

BETTER = "def f(x):\n    return x + x if x < 6 else x\n"
PERFECT = "def f(x):\n    return 2 * x\n"


def responder(messages):
    """Setup prompts get the weak script; update prompts the next better one."""
    text = messages[-1]["content"]
    if "CODE:" not in text:
        return fence(WEAK)
    parent = text.split("CODE:")[1].split("CASE:")[0]
    return fence(PERFECT if "x + x" in parent else BETTER)


def _trainer(client, run_dir: Path, epochs: int = 2) -> Trainer:
    optimizer = LLMOptimizer(client, SamplingParams(model="fake-model", temperature=0.5))
    config = TrainerConfig(epochs=epochs, batch_size=5, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"), shuffle=False)
    return Trainer(optimizer, config, run_dir=run_dir)


def _client(server, **kw) -> OpenAIClient:
    return OpenAIClient(base_url=server.base_url, api_key="test", timeout_s=0.5, max_retries=4,
                        min_wait_s=0.01, max_wait_s=0.05, **kw)


def test_trainer_survives_http_errors_and_improves(tmp_path, fake_llm_server):
    fake_llm_server.responder = responder
    # Setup: a 429 and a 500 (retried), then a reply with no code. (A reply slower than the client's
    # timeout is not retried: tests/langprop_core/llm/test_client.py.)
    fake_llm_server.enqueue(status(429), status(500), reply("I cannot write code."))
    trainer = _trainer(_client(fake_llm_server), tmp_path / "run", epochs=3)
    result = trainer.fit(llm_doubling_module(tmp_path), TASK, range(10))
    assert trainer.rejected["no_code"] == 1
    assert result.best_policy.source == PERFECT
    assert result.best_policy.generation == 2  # weak -> better -> perfect
    assert result.best_policy.sampling["model"] == "fake-model"
    scores = [r["best_priority"] for r in result.history if r["kind"] == "train"]
    assert scores[0] < scores[-1]
    assert trainer.optimizer.usage().calls >= 3


def _snapshot(run_dir: Path) -> dict:
    ck = run_dir / "checkpoints" / "double"
    index = json.loads((ck / "index.json").read_text())
    for policy in index["policies"]:  # wall-clock call times differ between runs
        policy.pop("mean_call_s")
    return {"index": index, "scripts": {p.name: p.read_text() for p in sorted((ck / "scripts").iterdir())}}


def test_replay_makes_no_http_calls_and_gives_the_same_checkpoint(tmp_path, fake_llm_server):
    fake_llm_server.responder = responder
    cache = tmp_path / "cache"
    recorded = _trainer(ReplayCache(_client(fake_llm_server), cache, "auto"), tmp_path / "a")
    recorded.fit(llm_doubling_module(tmp_path), TASK, range(10))
    n_http = len(fake_llm_server.requests)
    assert n_http > 0

    replayed = _trainer(ReplayCache(None, cache, "replay"), tmp_path / "b")
    replayed.fit(llm_doubling_module(tmp_path), TASK, range(10))
    assert len(fake_llm_server.requests) == n_http
    assert replayed.optimizer.client.hits > 0 and replayed.optimizer.client.misses == 0
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


# -- diff edits ---------------------------------------------------------------------------------------

EDIT_TO_PERFECT = ("Double it.\n<<<<<<< SEARCH\n    return x\n=======\n    return 2 * x\n>>>>>>> REPLACE\n")
EDIT_THAT_MISSES = ("Double it.\n<<<<<<< SEARCH\n    return x + 1\n=======\n    return 2 * x\n>>>>>>> REPLACE\n")


def _edits_trainer(client, run_dir: Path, **config) -> Trainer:
    optimizer = LLMOptimizer(client, SamplingParams(model="fake-model", temperature=0.5))
    config = TrainerConfig(**{**dict(epochs=1, batch_size=5, n_responses=1, top_k=1, progress=False,
                                     sandbox=SandboxConfig(mode="inprocess"), shuffle=False), **config})
    return Trainer(optimizer, config, run_dir=run_dir)


def _seeded(tmp_path: Path, *sources: str) -> Module:
    module = llm_doubling_module(tmp_path)
    module.seed_sources = list(sources)
    return module


def test_an_edit_reply_becomes_the_edited_child(tmp_path, fake_llm_server):
    fake_llm_server.enqueue(reply(EDIT_TO_PERFECT))
    trainer = _edits_trainer(_client(fake_llm_server), tmp_path / "run", reply_format="edits")
    result = trainer.fit(_seeded(tmp_path, WEAK), TASK, range(10))
    assert result.best_policy.source == PERFECT and result.best_policy.reply == EDIT_TO_PERFECT
    # the template shows no format variable: the instructions were appended to its user message
    (request,) = fake_llm_server.chat_requests
    assert request["messages"][-1]["content"].endswith(EDIT_INSTRUCTIONS)
    assert not trainer.rejected


def test_edits_that_do_not_apply_get_one_follow_up_for_the_complete_script(tmp_path, fake_llm_server):
    fake_llm_server.enqueue(reply(EDIT_THAT_MISSES), reply(fence(PERFECT)))
    usage = UsageCallback()
    trainer = _edits_trainer(_client(fake_llm_server), tmp_path / "run", reply_format="edits")
    trainer.callbacks.append(usage)
    result = trainer.fit(_seeded(tmp_path, WEAK), TASK, range(10))
    first, follow_up = fake_llm_server.chat_requests  # exactly one follow-up
    assert follow_up["messages"][:-2] == first["messages"]
    assert follow_up["messages"][-2] == {"role": "assistant", "content": EDIT_THAT_MISSES}
    line = follow_up["messages"][-1]["content"]
    assert "\n" not in line and "edit block 1: SEARCH matches no lines" in line and "complete" in line
    assert result.best_policy.source == PERFECT
    assert result.best_policy.prompt == follow_up["messages"]  # the child records what it answered
    assert trainer.rejected == {"edit_failed": 1}
    # both calls are the cost of the one admitted child
    spent = trainer.optimizer.usage()
    record = [r for r in result.history if r["kind"] == "train"][-1]["llm"]
    assert record["children"] == 1 and record["rejected"] == {"edit_failed": 1}
    assert record["completion_tokens_per_child"] == spent.completion_tokens > 0
    assert record["prompt_tokens_per_child"] == spent.prompt_tokens


def test_a_follow_up_without_a_script_is_counted_and_not_asked_again(tmp_path, fake_llm_server):
    fake_llm_server.enqueue(reply(EDIT_THAT_MISSES), reply("Sorry, I cannot."))
    trainer = _edits_trainer(_client(fake_llm_server), tmp_path / "run", reply_format="edits")
    result = trainer.fit(_seeded(tmp_path, WEAK), TASK, range(10))
    assert len(fake_llm_server.chat_requests) == 2
    assert trainer.rejected == {"edit_failed": 1, "fallback_failed": 1}
    assert result.best_policy.source == WEAK


def test_auto_asks_long_parents_for_edits_and_short_ones_for_the_script(tmp_path, fake_llm_server):
    short = "def f(x):\n    return x - 1\n"
    long = "def f(x):\n" + "".join(f"    y{i} = {i}\n" for i in range(6)) + "    return x\n"
    fake_llm_server.responder = lambda messages: "no code"
    trainer = _edits_trainer(_client(fake_llm_server), tmp_path / "run", top_k=2, edit_min_lines=5)
    assert trainer.config.reply_format == "auto"
    trainer.fit(_seeded(tmp_path, short, long), TASK, range(10))
    prompts = {("y0 = 0" in r["messages"][-1]["content"]): r["messages"][-1]["content"]
               for r in fake_llm_server.chat_requests}
    assert EDIT_INSTRUCTIONS in prompts[True] and "SEARCH" not in prompts[False]


def test_setup_prompts_ask_for_the_complete_script(tmp_path, fake_llm_server):
    fake_llm_server.responder = lambda messages: fence(WEAK)
    trainer = _edits_trainer(_client(fake_llm_server), tmp_path / "run", reply_format="edits")
    trainer.fit(llm_doubling_module(tmp_path), TASK, range(5))
    (setup,) = fake_llm_server.chat_requests
    assert "SEARCH" not in setup["messages"][-1]["content"]


def test_a_run_with_edits_and_a_follow_up_replays_exactly(tmp_path, fake_llm_server):
    fake_llm_server.enqueue(reply(EDIT_THAT_MISSES), reply(fence(BETTER)), reply(EDIT_TO_PERFECT.replace(
        "    return x\n", "    return x + x if x < 6 else x\n")))
    fake_llm_server.responder = lambda messages: "no code"
    cache = tmp_path / "cache"
    recorded = _edits_trainer(ReplayCache(_client(fake_llm_server), cache, "auto"), tmp_path / "a",
                              reply_format="edits", epochs=2)
    recorded.fit(_seeded(tmp_path, WEAK), TASK, range(10))
    n_http = len(fake_llm_server.chat_requests)
    replayed = _edits_trainer(ReplayCache(None, cache, "replay"), tmp_path / "b", reply_format="edits", epochs=2)
    replayed.fit(_seeded(tmp_path, WEAK), TASK, range(10))
    assert replayed.optimizer.client.misses == 0 and replayed.optimizer.client.hits == n_http
    assert replayed.rejected == recorded.rejected and recorded.rejected["edit_failed"] == 1
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")
    assert replayed.optimizer.client.hits >= 3
