"""LLM spend through the real openai client and the fake HTTP server: usage, budgets, resume, the cache."""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest

from langprop_core.llm.base import SamplingParams
from langprop_core.llm.cache import ReplayCache
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.openai_client import OpenAIClient
from langprop_core.llm.usage import LLMBudget, ModelPrice, UsageCallback, load_prices, parse_prices
from langprop_core.metrics import read_metrics
from langprop_core.sandbox import SandboxConfig
from langprop_core.trainer import SetupError, Trainer, TrainerConfig
from tests.fixtures.llm_server import reply
from tests.helpers.llm_training import TASK, WEAK, llm_doubling_module
from tests.helpers.scripted_training import fence

DATA = list(range(20))  # 4 batches of 5 per epoch; one LLM call per batch but the run's last, one for setup
PRICE = ModelPrice(input_per_million=2.0, output_per_million=8.0)


def never_perfect():
    """Setup prompts get the weak script; every update a new, still imperfect one."""
    counter = itertools.count(1)

    def respond(messages):
        if "CODE:" not in messages[-1]["content"]:
            return fence(WEAK)
        return fence(f"def f(x):\n    return x + {next(counter)}\n")
    return respond


def fit(server, run_dir: Path, budget: LLMBudget, resume: bool = False, cache: Path | None = None,
        cache_mode: str = "auto"):
    client = OpenAIClient(base_url=server.base_url, api_key="test", timeout_s=5, max_retries=0) \
        if server is not None else None
    if cache is not None:
        client = ReplayCache(client, cache, cache_mode)
    optimizer = LLMOptimizer(client, SamplingParams(model="fake-model", temperature=0.5))
    usage = UsageCallback(budget, {"fake-model": PRICE})
    config = TrainerConfig(epochs=2, batch_size=5, n_responses=1, top_k=1, progress=False, shuffle=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    trainer = Trainer(optimizer, config, run_dir=run_dir, callbacks=[usage])
    result = trainer.fit(llm_doubling_module(run_dir.parent), TASK, DATA, resume=resume)
    return result, usage


def reported(server) -> tuple[int, int]:
    return (sum(u["prompt_tokens"] for u in server.reported_usage),
            sum(u["completion_tokens"] for u in server.reported_usage))


def test_call_budget_stops_at_a_batch_boundary_and_resume_goes_on(tmp_path, fake_llm_server):
    fake_llm_server.responder = never_perfect()
    run_dir = tmp_path / "run"
    result, usage = fit(fake_llm_server, run_dir, LLMBudget(max_calls=3))
    # setup (1 call) + batch 1 (1) + batch 2 (1) = 3: the budget is reached at the end of batch 2
    assert result.stopped is not None and "LLM call budget reached: 3 calls" in result.stopped
    train = [r for r in result.history if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert len(fake_llm_server.chat_requests) == 3 == usage.usage.calls
    # the numbers are the server's
    prompt, completion = reported(fake_llm_server)
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (prompt, completion)
    assert usage.usage.cost == pytest.approx(PRICE.cost(prompt, completion))
    assert train[-1]["llm"]["calls"] == 3 and train[-1]["llm"]["prompt_tokens"] == prompt
    assert read_metrics(run_dir / "metrics.jsonl")[-1]["llm"]["completion_tokens"] == completion
    # every reply gave a new script: 3 admitted children, and what each cost
    assert train[-1]["llm"]["children"] == 3
    assert train[-1]["llm"]["completion_tokens_per_child"] == round(completion / 3, 1)
    assert train[-1]["llm"]["cost_per_child"] == pytest.approx(PRICE.cost(prompt, completion) / 3, abs=1e-6)
    assert "3 admitted children" in usage.usage.describe()

    # the same budget again: nothing more is spent
    result, usage = fit(fake_llm_server, run_dir, LLMBudget(max_calls=3), resume=True)
    assert result.stopped is not None and len(fake_llm_server.chat_requests) == 3

    # a larger budget goes on from the checkpoint, counting what the first run spent
    result, usage = fit(fake_llm_server, run_dir, LLMBudget(max_calls=5), resume=True)
    assert [r["step"] for r in result.history if r["kind"] == "train"] == [1, 2, 3, 4]
    assert usage.usage.calls == 5 == len(fake_llm_server.chat_requests)

    result, usage = fit(fake_llm_server, run_dir, LLMBudget(), resume=True)
    assert result.stopped is None
    assert [r["step"] for r in result.history if r["kind"] == "train"] == list(range(1, 9))
    # 1 setup call + 7 updates (the last batch of the run proposes nothing)
    assert usage.usage.calls == 8 == len(fake_llm_server.chat_requests)
    assert usage.usage.children == 8  # counted across the resumes, as the calls
    prompt, completion = reported(fake_llm_server)
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (prompt, completion)
    assert usage.usage.cost == pytest.approx(PRICE.cost(prompt, completion))


def test_token_and_cost_budgets(tmp_path, fake_llm_server):
    fake_llm_server.responder = never_perfect()
    result, usage = fit(fake_llm_server, tmp_path / "tokens", LLMBudget(max_tokens=1))
    assert "LLM token budget reached" in result.stopped
    assert not [r for r in result.history if r["kind"] == "train"]  # the setup phase alone passed it
    result, usage = fit(fake_llm_server, tmp_path / "cost", LLMBudget(max_cost=1e-9))
    assert "LLM cost budget reached" in result.stopped


def test_replayed_calls_cost_nothing_and_are_counted_apart(tmp_path, fake_llm_server):
    fake_llm_server.responder = never_perfect()
    _, recorded = fit(fake_llm_server, tmp_path / "a", LLMBudget(), cache=tmp_path / "cache")
    assert recorded.usage.calls == 8 and recorded.usage.cached_calls == 0
    result, replayed = fit(None, tmp_path / "b", LLMBudget(max_calls=1), cache=tmp_path / "cache",
                           cache_mode="replay")
    assert result.stopped is None  # a call budget does not count replayed replies
    assert replayed.usage.to_dict() == {"calls": 0, "cached_calls": 8, "prompt_tokens": 0,
                                        "completion_tokens": 0, "cost": 0.0, "children": 8,
                                        "prompt_tokens_per_child": 0.0, "completion_tokens_per_child": 0.0,
                                        "cost_per_child": 0.0}
    assert len(fake_llm_server.chat_requests) == 8


def test_seed_of_the_request_reaches_the_endpoint(tmp_path, fake_llm_server):
    fake_llm_server.responder = never_perfect()
    fit(fake_llm_server, tmp_path / "run", LLMBudget(max_calls=2))
    seeds = [body.get("seed") for body in fake_llm_server.chat_requests]
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == len(seeds)


def test_rejected_replies_are_warnings_and_counted_by_reason(tmp_path, fake_llm_server, caplog):
    fake_llm_server.enqueue(reply("no code here"), reply(fence(WEAK)))
    fake_llm_server.responder = never_perfect()
    with caplog.at_level(logging.WARNING, logger="langprop_core.trainer"):
        result, usage = fit(fake_llm_server, tmp_path / "run", LLMBudget(max_calls=3))
    assert any("reply rejected (no_code)" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert result.history[-1]["llm"]["rejected"] == {"no_code": 1}


def test_setup_without_a_usable_script_names_the_reasons(tmp_path, fake_llm_server):
    fake_llm_server.responder = lambda messages: "I cannot write code today."
    with pytest.raises(SetupError, match=r"no usable script after 3 setup attempts.*'no_code': 3"):
        fit(fake_llm_server, tmp_path / "run", LLMBudget())


def test_price_table_errors_name_the_model_and_file(tmp_path):
    assert parse_prices({"m": {"input": 1, "output": 2}}) == {"m": ModelPrice(1.0, 2.0)}
    with pytest.raises(ValueError, match="model 'm': expected"):
        parse_prices({"m": {"input": 1}})
    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"prices.json, line 1: invalid JSON"):
        load_prices(bad)
    with pytest.raises(ValueError, match="must be > 0"):
        LLMBudget(max_calls=0)


def test_cost_budget_needs_the_models_price(tmp_path, fake_llm_server):
    optimizer = LLMOptimizer(OpenAIClient(base_url=fake_llm_server.base_url, api_key="t"),
                             SamplingParams(model="other-model"))
    trainer = Trainer(optimizer, TrainerConfig(progress=False, sandbox=SandboxConfig(mode="inprocess")),
                      run_dir=tmp_path / "run",
                      callbacks=[UsageCallback(LLMBudget(max_cost=1.0), {"fake-model": PRICE})])
    fake_llm_server.responder = never_perfect()
    with pytest.raises(ValueError, match="needs the price of model 'other-model'"):
        trainer.fit(llm_doubling_module(tmp_path), TASK, DATA)
    assert json.loads(json.dumps(PRICE.__dict__))  # prices are plain numbers


def test_an_endpoint_that_refuses_seeds_gets_none_from_then_on(tmp_path, fake_llm_server):
    from tests.fixtures.llm_server import status

    fake_llm_server.responder = never_perfect()
    fake_llm_server.enqueue(status(400, "Unrecognized request argument supplied: seed"))
    result, usage = fit(fake_llm_server, tmp_path / "run", LLMBudget(max_calls=3))
    bodies = fake_llm_server.chat_requests
    assert "seed" in bodies[0] and all("seed" not in body for body in bodies[1:])
    assert usage.usage.calls == 3 and len(bodies) == 4  # the refused request is not a call the endpoint answered


def test_usage_of_several_runs_adds_up():
    from langprop_core.llm.usage import LLMUsage

    runs = [LLMUsage(2, 1, 10, 20, 0.5).to_dict(), LLMUsage(3, 0, 5, 5, 0.25).to_dict()]
    assert LLMUsage.total(runs) == LLMUsage(5, 1, 15, 25, 0.75)
    assert LLMUsage.total([*runs, LLMUsage(1).to_dict()]).cost is None  # one run without prices
