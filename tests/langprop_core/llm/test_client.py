"""The OpenAI client, replay cache, LLM optimizer and factory, through the real `openai`
package against the fake OpenAI-compatible server."""
from __future__ import annotations

import json

import pytest

from langprop_core.llm.base import ChatMessage, LLMError, ProposalRequest, SamplingParams
from langprop_core.llm.cache import ReplayCache, cache_key
from langprop_core.llm.factory import OptimizerConfig, make_optimizer
from langprop_core.llm.llm_optimizer import LLMOptimizer
from langprop_core.llm.mutation import MutationOptimizer
from langprop_core.llm.openai_client import OpenAIClient
from langprop_core.llm.reply import ReplyError, extract_script
from tests.fixtures.llm_server import reply, slow, status

MESSAGES = (ChatMessage("system", "You write Python."), ChatMessage("user", "Write policy(x) please."))
PARAMS = SamplingParams(model="fake-model", temperature=0.2, n=1)


def script(value: float) -> str:
    return f"Sure.\n```python\ndef policy(x):\n    return {value}\n```\n"


def make_client(server, **kw) -> OpenAIClient:
    # Tiny waits keep the retry tests fast; the timeout only matters for the slow test.
    kw.setdefault("timeout_s", 2.0)
    return OpenAIClient(base_url=server.base_url, api_key="test-key", max_retries=3,
                        min_wait_s=0.01, max_wait_s=0.05, **kw)


def test_scripted_replies_and_usage(fake_llm_server):
    fake_llm_server.enqueue(reply(script(1)), reply(script(2)))
    client = make_client(fake_llm_server)
    done = client.complete(MESSAGES, PARAMS)
    assert done.replies == [script(1)]
    assert done.cached is False
    # The fake server counts whitespace words.
    assert done.usage.prompt_tokens == sum(len(m.content.split()) for m in MESSAGES)
    assert done.usage.completion_tokens == len(script(1).split())
    body = fake_llm_server.requests[0]
    assert body["model"] == "fake-model"
    assert body["messages"] == [m.to_dict() for m in MESSAGES]
    assert body["n"] == 1 and body["temperature"] == 0.2
    client.complete(MESSAGES, PARAMS)
    total = client.usage()
    assert total.calls == 2 and total.prompt_tokens == 2 * done.usage.prompt_tokens


def test_n_is_passed_through(fake_llm_server):
    fake_llm_server.enqueue(reply(script(1), script(2), script(3)))
    done = make_client(fake_llm_server).complete(MESSAGES, SamplingParams(model="m", n=3))
    assert done.replies == [script(1), script(2), script(3)]
    assert len(fake_llm_server.requests) == 1
    assert fake_llm_server.requests[0]["n"] == 3


def test_n_split_over_requests_when_capped(fake_llm_server):
    fake_llm_server.enqueue(reply(script(1)), reply(script(2)), reply(script(3)))
    client = make_client(fake_llm_server, max_choices_per_request=2)
    done = client.complete(MESSAGES, SamplingParams(model="m", n=3, seed=7))
    assert done.replies == [script(1), script(2), script(3)]
    assert [r["n"] for r in fake_llm_server.requests] == [2, 1]
    # A seeded endpoint answers the same seed with the same sample: each round takes the next seed.
    assert [r["seed"] for r in fake_llm_server.requests] == [7, 8]
    assert done.usage.calls == 2
    assert done.params.seed == 7  # what the replies are recorded under


@pytest.mark.parametrize("code", [429, 500, 503])
def test_error_then_success(fake_llm_server, code):
    fake_llm_server.enqueue(status(code), status(code), reply(script(4)))
    done = make_client(fake_llm_server).complete(MESSAGES, PARAMS)
    assert done.replies == [script(4)]
    assert len(fake_llm_server.requests) == 3


def test_slow_reply_times_out_and_is_not_sent_again(fake_llm_server):
    # A request past its timeout is not re-sent (it would be paid again and take as long again).
    fake_llm_server.enqueue(slow(3.0, script(9)), reply(script(5)))
    with pytest.raises(LLMError, match="longer than its timeout of 0.3 s.*--llm-timeout"):
        make_client(fake_llm_server, timeout_s=0.3).complete(MESSAGES, PARAMS)
    assert len(fake_llm_server.requests) == 1


def test_gives_up_with_a_clear_error(fake_llm_server):
    fake_llm_server.enqueue(*[status(500, "overloaded")] * 4)
    with pytest.raises(LLMError) as err:
        make_client(fake_llm_server).complete(MESSAGES, PARAMS)
    text = str(err.value)
    assert fake_llm_server.base_url in text
    assert "4 attempts" in text and "overloaded" in text
    assert len(fake_llm_server.requests) == 4


def test_auth_error_is_not_retried(fake_llm_server):
    fake_llm_server.enqueue(status(401, "bad key"))
    with pytest.raises(LLMError, match="bad key"):
        make_client(fake_llm_server).complete(MESSAGES, PARAMS)
    assert len(fake_llm_server.requests) == 1


def test_connection_refused_gives_llm_error():
    client = OpenAIClient(base_url="http://127.0.0.1:9/v1", max_retries=1, min_wait_s=0.01,
                          max_wait_s=0.02, timeout_s=1.0)
    with pytest.raises(LLMError, match="127.0.0.1:9"):
        client.complete(MESSAGES, PARAMS)


def test_key_and_url_from_environment(monkeypatch, fake_llm_server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("LANGPROP_LLM_BASE_URL", fake_llm_server.base_url)
    client = OpenAIClient(max_retries=0)  # a local server: a dummy key is used
    assert client.endpoint == fake_llm_server.base_url
    fake_llm_server.enqueue(reply("hi"))
    assert client.complete(MESSAGES, PARAMS).replies == ["hi"]
    monkeypatch.delenv("LANGPROP_LLM_BASE_URL")
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        OpenAIClient()


def test_optimizer_returns_reply_without_code(fake_llm_server):
    fake_llm_server.enqueue(reply("I would rather not write code today."))
    opt = LLMOptimizer(make_client(fake_llm_server), PARAMS)
    proposals = opt.propose(ProposalRequest(messages=MESSAGES, n=1, function_name="policy"))
    assert len(proposals) == 1
    assert proposals[0].optimizer == "openai"
    assert proposals[0].sampling["model"] == "fake-model"
    with pytest.raises(ReplyError) as err:
        extract_script(proposals[0].reply, "policy")
    assert err.value.reason == "no_code"


def test_optimizer_asks_for_request_n_and_counts_tokens(fake_llm_server):
    fake_llm_server.enqueue(reply(script(1), script(2)))
    opt = LLMOptimizer(make_client(fake_llm_server), PARAMS)
    proposals = opt.propose(ProposalRequest(messages=MESSAGES, n=2, function_name="policy"))
    assert [extract_script(p.reply, "policy") for p in proposals] == [
        "def policy(x):\n    return 1\n", "def policy(x):\n    return 2\n"]
    assert proposals[0].sampling["n"] == 2
    assert fake_llm_server.requests[0]["n"] == 2
    assert opt.usage().calls == 1 and opt.usage().completion_tokens > 0


def test_responder_fills_an_empty_queue(fake_llm_server):
    fake_llm_server.responder = lambda messages: script(len(messages))
    done = make_client(fake_llm_server).complete(MESSAGES, SamplingParams(model="m", n=2))
    assert done.replies == [script(2), script(2)]


# -- replay cache ---------------------------------------------------------------

def run_cached(server, cache_dir, mode):
    cache = ReplayCache(make_client(server) if server is not None else None, cache_dir, mode)
    opt = LLMOptimizer(cache, PARAMS)
    replies = []
    for i in range(3):
        msgs = MESSAGES + (ChatMessage("user", f"attempt {i}"),)
        replies += [p.reply for p in opt.propose(ProposalRequest(msgs, n=2, function_name="policy"))]
    return cache, replies


def test_replay_makes_zero_requests_and_gives_identical_replies(fake_llm_server, tmp_path):
    fake_llm_server.responder = lambda messages: script(len(fake_llm_server.requests))
    first, recorded = run_cached(fake_llm_server, tmp_path / "cache", "auto")
    n_requests = len(fake_llm_server.requests)
    assert n_requests == 3 and first.misses == 3 and first.hits == 0
    again, replayed = run_cached(fake_llm_server, tmp_path / "cache", "auto")
    assert replayed == recorded
    assert again.hits == 3 and again.misses == 0
    offline, offline_replies = run_cached(None, tmp_path / "cache", "replay")
    assert offline_replies == recorded
    assert len(fake_llm_server.requests) == n_requests  # zero HTTP calls after recording
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 3
    entry = json.loads(entries[0].read_text())
    assert entry["model"] == "fake-model" and len(entry["replies"]) == 2
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_replay_miss_errors_naming_the_key(tmp_path):
    cache = ReplayCache(None, tmp_path, "replay")
    with pytest.raises(LLMError) as err:
        cache.complete(MESSAGES, PARAMS)
    text = str(err.value)
    assert cache_key(MESSAGES, PARAMS) in text
    assert "fake-model" in text and "Write policy(x)" in text
    assert cache.misses == 1


def test_cache_key_depends_on_model_messages_and_sampling():
    base = cache_key(MESSAGES, PARAMS)
    assert base == cache_key(list(MESSAGES), PARAMS)
    assert base != cache_key(MESSAGES, SamplingParams(model="other", temperature=0.2))
    assert base != cache_key(MESSAGES, SamplingParams(model="fake-model", temperature=0.3))
    assert base != cache_key(MESSAGES[:1], PARAMS)


def test_record_mode_refreshes_old_entries_once(fake_llm_server, tmp_path):
    fake_llm_server.enqueue(reply("old"), reply("new"))
    ReplayCache(make_client(fake_llm_server), tmp_path, "auto").complete(MESSAGES, PARAMS)
    recorder = ReplayCache(make_client(fake_llm_server), tmp_path, "record")
    assert recorder.complete(MESSAGES, PARAMS).replies == ["new"]
    assert recorder.complete(MESSAGES, PARAMS).replies == ["new"]  # consistent within the run
    assert len(fake_llm_server.requests) == 2
    assert ReplayCache(None, tmp_path, "replay").complete(MESSAGES, PARAMS).replies == ["new"]


def test_cache_needs_a_client_unless_replaying(tmp_path):
    with pytest.raises(ValueError, match="replay"):
        ReplayCache(None, tmp_path, "auto")
    with pytest.raises(ValueError, match="cache mode"):
        ReplayCache(None, tmp_path, "sometimes")


# -- factory -------------------------------------------------------------------

def clear_env(monkeypatch):
    for name in ("LANGPROP_OPTIMIZER", "LANGPROP_LLM_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
                 "LANGPROP_LLM_MODEL", "LANGPROP_LLM_TEMPERATURE", "LANGPROP_LLM_N",
                 "LANGPROP_LLM_CACHE_DIR", "LANGPROP_LLM_CACHE_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_factory_defaults_to_mutation_and_says_why(monkeypatch):
    clear_env(monkeypatch)
    opt = make_optimizer(OptimizerConfig.from_env(), seed_sources=["def policy(x):\n    return 1\n"])
    assert isinstance(opt, MutationOptimizer)
    assert "mutation" in opt.describe()
    assert "LANGPROP_LLM_BASE_URL" in opt.describe() and "OPENAI_API_KEY" in opt.describe()
    assert opt.seed_sources == ["def policy(x):\n    return 1\n"]


def test_factory_picks_openai_from_environment(monkeypatch, fake_llm_server):
    clear_env(monkeypatch)
    monkeypatch.setenv("LANGPROP_LLM_BASE_URL", fake_llm_server.base_url)
    monkeypatch.setenv("LANGPROP_LLM_MODEL", "env-model")
    opt = make_optimizer(OptimizerConfig.from_env(temperature=0.1, model=None))
    assert isinstance(opt, LLMOptimizer)
    assert "openai" in opt.describe() and fake_llm_server.base_url in opt.describe()
    fake_llm_server.enqueue(reply(script(1)))
    opt.propose(ProposalRequest(MESSAGES, n=1, function_name="policy"))
    assert fake_llm_server.requests[0]["model"] == "env-model"
    assert fake_llm_server.requests[0]["temperature"] == 0.1


def test_factory_explicit_kinds_and_errors(monkeypatch, tmp_path):
    clear_env(monkeypatch)
    with pytest.raises(ValueError, match="LANGPROP_LLM_BASE_URL"):
        make_optimizer(OptimizerConfig(kind="openai"))
    with pytest.raises(ValueError, match="LANGPROP_LLM_MODEL"):
        make_optimizer(OptimizerConfig(kind="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ValueError, match="kind"):
        OptimizerConfig(kind="gpt")
    with pytest.raises(TypeError, match="colour"):
        OptimizerConfig.from_env(colour="red")
    forced = make_optimizer(OptimizerConfig(kind="mutation", base_url="http://x/v1", model="m"))
    assert isinstance(forced, MutationOptimizer) and "kind=mutation" in forced.describe()
    offline = make_optimizer(OptimizerConfig(model="m", cache_dir=tmp_path, cache_mode="replay"))
    assert isinstance(offline, LLMOptimizer) and "replaying" in offline.describe()


def test_concurrent_identical_calls_ask_once(fake_llm_server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    fake_llm_server.responder = lambda messages: f"reply {len(fake_llm_server.requests)}"
    cache = ReplayCache(make_client(fake_llm_server), tmp_path, "auto")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cache.complete(MESSAGES, PARAMS).replies, range(4)))
    assert len(fake_llm_server.requests) == 1
    assert all(r == results[0] for r in results)
    assert cache.hits == 3 and cache.misses == 1
