"""Kill and resume through the real ``openai`` client and the replay cache.

The thermostat example trains in subprocesses against the fake HTTP server,
whose replies are a pure function of the prompt (every distinct prompt gets its
own valid script). Run A is uninterrupted; run B is SIGKILLed mid-epoch and
resumed from its checkpoint with the same cache; run C replays A's cache
offline. All three end in the same checkpoint, and C makes no HTTP request.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from langprop_core.metrics import read_metrics
from tests.fixtures.llm_server import FakeLLMServer
from tests.helpers.scripted_training import checkpoint_snapshot

STEPS = 12  # 2 epochs of 96 items in batches of 16
KILL_AFTER = 4  # epoch 0 has 6 batches: killing after step 4 is mid-epoch

_TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from langprop_core.callbacks import Callback
    from langprop_core.examples.thermostat.train import train_example
    from langprop_core.llm.factory import OptimizerConfig
    from langprop_core.sandbox import SandboxConfig

    class Announce(Callback):
        def on_batch_end(self, trainer, module, record):
            print("step", record["step"], flush=True)
            time.sleep(0.05)  # the parent kills it while it sleeps or in the next batch

    run_dir, mode, cache_dir, cache_mode, base_url = sys.argv[1:6]
    config = OptimizerConfig(kind="openai", base_url=base_url or None, api_key="test" if base_url else None,
                             model="fake-model", temperature=0.0, n=2, cache_dir=Path(cache_dir),
                             cache_mode=cache_mode, timeout_s=10.0, max_retries=2)
    result, trainer = train_example(Path(run_dir), epochs=2, batch_size=16, n_train=96, n_val=32,
                                    resume=mode == "resume", optimizer_config=config,
                                    sandbox=SandboxConfig(workers=2), progress=False,
                                    callbacks=(Announce(),))
    cache = trainer.optimizer.client
    print("cache", cache.hits, cache.misses, flush=True)
    print("done", flush=True)
""")


def _responder(messages: list[dict]) -> str:
    """A valid ``choose_action`` whose constants are drawn from a hash of the prompt."""
    digest = hashlib.sha256(repr(messages).encode("utf-8")).digest()
    lookahead = 0.5 + digest[0] % 16 / 8          # 0.5 .. 2.375
    low = 17.0 + digest[1] % 32 / 10              # 17.0 .. 20.1
    high = low + 1.0 + digest[2] % 40 / 10        # 1 .. 4.9 above low
    return ("The rule below looks ahead further.\n```python\n"
            "def choose_action(temperature_c, rate_c_per_min):\n"
            f"    ahead = temperature_c + {lookahead!r} * rate_c_per_min\n"
            f"    if ahead < {low!r}:\n"
            "        return \"heat\"\n"
            f"    if ahead > {high!r}:\n"
            "        return \"cool\"\n"
            "    return \"off\"\n```\n")


def _cache_keys(cache_dir: Path) -> set[str]:
    return {p.name for p in cache_dir.rglob("*.json")}


def _cache_counts(stdout: str) -> tuple[int, int]:
    """(hits, misses) of the run's replay cache, as its script printed them."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("cache "))
    hits, misses = map(int, line.split()[1:3])
    return hits, misses


def _train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


@pytest.mark.slow
def test_killed_llm_run_resumes_to_the_same_checkpoint_and_replays_offline(tmp_path, fake_llm_server):
    server: FakeLLMServer = fake_llm_server
    server.responder = _responder
    script = tmp_path / "train.py"
    script.write_text(_TRAIN_SCRIPT)
    # No endpoint, key or cache from the caller's environment leaks into the runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGPROP_", "OPENAI_"))}
    env["PYTHONUNBUFFERED"] = "1"

    def argv(name: str, mode: str, cache_mode: str = "auto", online: bool = True) -> list[str]:
        base_url = server.base_url if online else ""
        return [sys.executable, str(script), str(tmp_path / name), mode, str(tmp_path / f"cache_{name}"),
                cache_mode, base_url]

    def run(*args, **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(argv(*args, **kw), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    # A: uninterrupted, recording its cache; one HTTP request per distinct prompt.
    full = run("a", "fresh")
    assert full.stdout.count("step") == STEPS
    n_http_a = len(server.chat_requests)
    keys_a = _cache_keys(tmp_path / "cache_a")
    assert n_http_a == len(keys_a) > 1
    # Both choices of one request are the same script: the second is rejected as a duplicate,
    # and the update requests did produce new scripts.
    snap_a = checkpoint_snapshot(tmp_path / "a")
    assert len(snap_a["index"]["policies"]) > 1
    assert any(p["generation"] > 0 for p in snap_a["index"]["policies"])

    # B: killed mid-epoch, then resumed with the same cache.
    proc = subprocess.Popen(argv("b", "fresh"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == f"step {KILL_AFTER}":
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _train_steps(tmp_path / "b")
    assert KILL_AFTER <= len(killed_at) < STEPS  # a slow machine may let it run a little further
    resumed = run("b", "resume")
    assert f"step {KILL_AFTER}\n" not in resumed.stdout and f"step {STEPS}\n" in resumed.stdout
    assert checkpoint_snapshot(tmp_path / "b") == snap_a
    assert _train_steps(tmp_path / "b") == list(range(1, STEPS + 1))
    # The two halves of B asked exactly what A asked, each prompt recorded once.
    assert _cache_keys(tmp_path / "cache_b") == keys_a

    # C: replay A's cache offline (no base URL, no client): zero HTTP requests, same checkpoint.
    n_http = len(server.chat_requests)
    os.symlink(tmp_path / "cache_a", tmp_path / "cache_c")
    replayed = run("c", "fresh", cache_mode="replay", online=False)
    assert len(server.chat_requests) == n_http
    hits_a, misses_a = _cache_counts(full.stdout)
    assert misses_a == len(keys_a)
    assert _cache_counts(replayed.stdout) == (hits_a + misses_a, 0)
    assert checkpoint_snapshot(tmp_path / "c") == snap_a
    assert _cache_keys(tmp_path / "cache_a") == keys_a  # replay wrote nothing
