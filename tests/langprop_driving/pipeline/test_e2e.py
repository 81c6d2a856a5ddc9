"""The pipeline end to end in the embedded world: collect, DAgger with an LLM server, failing scripts.

A small generated town (3x3 grid) with light traffic; routes "1" and "2" are
ones where a script that always moves runs red lights and hits cars, and a
cautious script does better.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from driving.dataset import SceneDataset
from langprop_core.checkpoint import load_checkpoint
from langprop_core.llm.factory import OptimizerConfig
from langprop_driving.pipeline.collect import collect
from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorkDir, WorldConfig
from langprop_driving.pipeline.dagger import dagger
from langprop_driving.pipeline.demo import DemoConfig, prepare_town_and_routes
from langprop_driving.pipeline.evaluate import evaluate_agent
from langprop_driving.pipeline.rollouts import route_records_of
from tests.helpers.driving_scripts import SCRIPTS

pytestmark = pytest.mark.slow

ROUTES = ["1", "2"]


def improving_responder(messages: list[dict]) -> str:
    shown = [int(q) for q in re.findall(r"# quality (\d)", messages[-1]["content"])]
    quality = min(3, max(shown, default=1) + 1)
    return f"This version handles more cases.\n\n```python\n{SCRIPTS[quality]}```\n"


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = WorkDir(tmp_path_factory.mktemp("town"))
    towns_dir, routes, _, _ = prepare_town_and_routes(work, DemoConfig(work_dir=work.root))
    return towns_dir, routes


def world_for(towns_dir: Path, **changes) -> WorldConfig:
    settings = {"traffic": "light", "seed": 0, "workers": 2, **changes}
    return WorldConfig(town=DemoConfig().town, towns_dir=towns_dir, **settings)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dagger_with_an_llm_picks_better_scripts_and_appends(town, tmp_path: Path, fake_llm_server):
    towns_dir, routes = town
    world = world_for(towns_dir)
    work = WorkDir(tmp_path / "work")
    collected = collect(work, world, routes, ROUTES, progress=False)
    assert [r.route_id for r in collected] == ROUTES and all(r.record is not None for r in collected)
    dataset = SceneDataset(work.data)
    expert_chunks = {c["file"]: digest(work.data / c["file"]) for c in dataset.chunks()}
    n_expert = len(dataset)
    assert n_expert > 100 and all(r.label is not None for r in dataset)

    fake_llm_server.responder = improving_responder
    seed = tmp_path / "seed.py"
    seed.write_text(SCRIPTS[1])
    optimizer = OptimizerConfig(kind="openai", base_url=fake_llm_server.base_url, api_key="test", model="fake")
    train = TrainConfig(epochs=1, batch_size=32, n_responses=1, top_k=1, record_stride=10, max_records=300,
                        progress=False, sandbox_mode="inprocess")
    outcome = dagger(work, world, routes, ROUTES, None, optimizer, train, DaggerConfig(iterations=2), seed,
                     progress=False)

    first, second = outcome.iterations
    assert first.driven_checkpoint == str(seed)
    # the LLM was asked, and the scripts that drove got better on the road
    assert fake_llm_server.chat_requests
    assert second.driving_score > first.driving_score
    best = load_checkpoint(Path(outcome.final_checkpoint)).best
    assert "# quality 3" in best.source or "# quality 2" in best.source

    # relabelled rollouts were appended; the expert data is untouched
    assert {c["file"]: digest(work.data / c["file"]) for c in dataset.chunks()
            if c["file"] in expert_chunks} == expert_chunks
    runs = dataset.runs()
    assert runs[:2] == ["collect-1", "collect-2"]
    assert {"dagger-1-1", "dagger-1-2", "dagger-2-1", "dagger-2-2"} <= set(runs)
    rollout_records = list(dataset.filter(run_ids=["dagger-1-1", "dagger-1-2"]))
    assert len(dataset) == n_expert + first.n_new_records + second.n_new_records
    assert all(r.label is not None and r.meta["controller"] == "policy" for r in rollout_records)
    # the always-moving script had infractions: the ticks before them are marked
    assert any(r.meta["infraction_within_s"] is not None for r in rollout_records)
    # ... counting down to the runner's timed events, in the scenes' clock: the tick at an
    # infraction is 0 s from it, the others the plain difference to the next event
    route_records = {str(r["meta"]["route_config_id"]): r for r in first.route_records}
    assert any(r["meta"]["infraction_events"] for r in route_records.values())
    for route_id in ROUTES:
        events = route_records[route_id]["meta"]["infraction_events"]
        ticks = list(dataset.filter(run_ids=[f"dagger-1-{route_id}"]))
        assert ticks
        for tick in ticks:
            t = tick.meta["time_s"]
            upcoming = [e for e in events if e["time_s"] >= t - 1e-6]
            nearest = min(upcoming, key=lambda e: e["time_s"]) if upcoming else None
            assert tick.meta["infraction_within_s"] == (round(nearest["time_s"] - t, 3) if nearest else None)
            assert tick.meta["infraction_kind"] == (nearest["kind"] if nearest else None)
        for event in events:
            if event["kind"] not in ("route_dev", "vehicle_blocked", "route_timeout"):  # these end the run
                assert any(tick.meta["infraction_within_s"] == 0.0 and tick.meta["infraction_kind"] == event["kind"]
                           for tick in ticks), event
    # the policy ran within the closed-loop time limit, and its timeouts are counted in the results
    for record in route_records.values():
        assert record["meta"]["policy_timeout_s"] >= 10.0 and record["meta"]["policy_timeouts"] == 0

    # resuming a finished DAgger changes nothing and asks the LLM nothing
    n_requests, n_records = len(fake_llm_server.chat_requests), len(dataset)
    again = dagger(work, world, routes, ROUTES, None, optimizer, train, DaggerConfig(iterations=2), seed,
                   progress=False)
    assert [it.driving_score for it in again.iterations] == [it.driving_score for it in outcome.iterations]
    assert len(fake_llm_server.chat_requests) == n_requests and len(dataset) == n_records


def test_a_script_that_always_raises_brakes_to_the_end_of_the_route(town, tmp_path: Path):
    towns_dir, routes = town
    script = tmp_path / "raises.py"
    script.write_text("def predict_speed_and_steering(scene):\n    raise RuntimeError('broken script')\n")
    world = world_for(towns_dir, blocked_time_s=15.0, traffic="none")
    results = evaluate_agent(script, world, routes, tmp_path / "results.json", route_ids=["0"], progress=False)
    (record,) = route_records_of(results)
    # the route ran to its (blocked) end instead of crashing, with the brake held all along
    assert record["status"] == "Failed - Agent got blocked"
    assert record["scores"]["score_route"] < 2.0
    assert record["meta"]["agent_exceptions"] > 100


def test_a_route_whose_agent_cannot_start_fails_alone_and_runs_again(town, tmp_path: Path):
    from langprop_driving.pipeline.rollouts import record_rollouts

    towns_dir, routes = town
    agent = tmp_path / "broken_agent.py"
    agent.write_text("def get_entry_point():\n    return 'Broken'\n\n\nclass Broken:\n"
                     "    def __init__(self, path_to_conf_file):\n        raise RuntimeError('no GPU here')\n")
    work = WorkDir(tmp_path / "work")
    dataset = SceneDataset(work.data)
    world = world_for(towns_dir, traffic="none")
    (result,) = record_rollouts(work, "x", world, routes, ["0"], str(agent), dataset, relabel=False,
                                progress=False)
    assert result.record is None and "couldn't be set up" in result.error and "no GPU here" in result.error
    assert len(dataset) == 0
    # the failed run is not taken for a finished one: the next call drives the route again
    results_path = work.rollouts("x") / "results" / "0.json"
    before = results_path.stat().st_mtime_ns
    (again,) = record_rollouts(work, "x", world, routes, ["0"], str(agent), dataset, relabel=False,
                               progress=False)
    assert again.record is None and results_path.stat().st_mtime_ns != before
