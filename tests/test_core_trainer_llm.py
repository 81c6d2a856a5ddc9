"""The trainer through the real ``openai`` client against the fake HTTP server,
and the record/replay cache: survive errors, improve, replay with zero HTTP calls."""
from __future__ import annotations

import json
from pathlib import Path

from langprop_core.llm.base import SamplingParams
from langprop_core.llm.cache import ReplayCache
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.openai_client import OpenAIClient
from langprop_core.module import Module
from langprop_core.sandbox import SandboxConfig
from langprop_core.task import Task
from langprop_core.trainer import Trainer, TrainerConfig
from tests.fixtures.llm_server import reply, status
from tests.test_core_trainer import fence

WEAK = "def f(x):\n    return x\n"
BETTER = "def f(x):\n    return x + x if x < 6 else x\n"
PERFECT = "def f(x):\n    return 2 * x\n"


def responder(messages):
    """Setup prompts get the weak script; update prompts the next better one."""
    text = messages[-1]["content"]
    if "CODE:" not in text:
        return fence(WEAK)
    parent = text.split("CODE:")[1].split("CASE:")[0]
    return fence(PERFECT if "x + x" in parent else BETTER)


def _module(tmp_path: Path) -> Module:
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "setup.txt").write_text("%% user\nWrite {{ function_name }}(x) returning twice x.\n")
    (tdir / "update.txt").write_text(
        "%% user\nImprove it (score {{ score }}).\nCODE:\n{{ code }}\n"
        "{% for c in failures %}CASE:\n{{ c }}\n{% endfor %}")
    return Module("double", "f", tdir, max_keep=4)


TASK = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label))


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
    # timeout is not retried: tests/test_llm_client.py.)
    fake_llm_server.enqueue(status(429), status(500), reply("I cannot write code."))
    trainer = _trainer(_client(fake_llm_server), tmp_path / "run", epochs=3)
    result = trainer.fit(_module(tmp_path), TASK, range(10))
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
    recorded.fit(_module(tmp_path), TASK, range(10))
    n_http = len(fake_llm_server.requests)
    assert n_http > 0

    replayed = _trainer(ReplayCache(None, cache, "replay"), tmp_path / "b")
    replayed.fit(_module(tmp_path), TASK, range(10))
    assert len(fake_llm_server.requests) == n_http
    assert replayed.optimizer.client.hits > 0 and replayed.optimizer.client.misses == 0
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")
