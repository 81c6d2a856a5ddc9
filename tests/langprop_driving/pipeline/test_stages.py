"""Pipeline pieces that need no simulator: infraction timing, record selection, jobs, markers, agents."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from driving.dataset import SceneDataset, SceneRecord
from langprop_driving.pipeline.config import DaggerConfig, WorkDir
from langprop_driving.pipeline.evaluate import resolve_agent
from langprop_driving.pipeline.parallel import RayOptions, ensure_ray
from langprop_driving.pipeline.rollouts import InfractionEvent, infraction_events, mark_infractions
from langprop_driving.pipeline.train import scene_kind, select_records
from tests.helpers.driving_records import drive, label


def route_record(**infractions: list[str]) -> dict:
    return {"route_id": "RouteScenario_7", "infractions": infractions, "scores": {"score_composed": 50.0},
            "meta": {}}


def test_infraction_times_from_message_locations():
    records = drive(20)  # x = 0, 2.5, 5, ...
    events = infraction_events(route_record(
        collisions_vehicle=["Agent collided against object with type=vehicle.car and id=3 at (x=25.1, y=0.2, z=0.0)"],
        outside_route_lanes=["Agent went outside its route lanes for about 3 meters (1% of the completed route)"],
    ), records)
    assert events == [InfractionEvent("collisions_vehicle", 5.0)]  # x=25 at tick 10, t=5.0


def test_route_ending_infraction_happens_at_the_end_and_a_stopped_car_is_matched_on_arrival():
    records = drive(30, stop_after=10)  # stands at x=25 from t=5.0 to t=14.5
    events = infraction_events(route_record(
        red_light=["Agent ran a red light 12 at (x=25.0, y=0.0, z=0.0)"],
        vehicle_blocked=["Agent got blocked at (x=25.0, y=0.0, z=0.0)"]), records)
    assert InfractionEvent("red_light", 5.0) in events
    assert InfractionEvent("vehicle_blocked", 14.5) in events


def test_runner_event_times_are_preferred():
    record = route_record(red_light=["Agent ran a red light 1 at (x=0.0, y=0.0, z=0.0)"])
    record["meta"]["infraction_events"] = [{"kind": "red_light", "time_s": 3.0, "x": 0, "y": 0},
                                           {"kind": "outside_route_lanes", "time_s": 1.0, "x": 0, "y": 0}]
    assert infraction_events(record, drive(10)) == [InfractionEvent("red_light", 3.0)]


def test_imported_rollout_is_marked_from_the_runner_events_not_the_message_places(tmp_path: Path):
    from langprop_driving.pipeline.rollouts import import_recording

    # the message's place (x=25, reached at t=5.0) and the runner's time (t=2.0) disagree on purpose:
    # the event time, in the recording's clock, wins
    record = route_record(collisions_vehicle=[
        "Agent collided against object with type=vehicle.car and id=3 at (x=25.1, y=0.2, z=0.0)"])
    record["meta"]["infraction_events"] = [{"kind": "collisions_vehicle", "time_s": 2.0, "x": 25.1, "y": 0.2}]
    dataset = SceneDataset(tmp_path / "data")
    assert import_recording(drive(20), record, "dagger-1-7", "dagger-1", dataset, relabel=False) == 20
    records = sorted(dataset, key=lambda r: r.meta["time_s"])
    before = [r for r in records if r.meta["time_s"] <= 2.0]
    assert [r.meta["infraction_within_s"] for r in before] == [2.0, 1.5, 1.0, 0.5, 0.0]
    assert all(r.meta["infraction_kind"] == "collisions_vehicle" for r in before)
    assert all(r.meta["infraction_within_s"] is None for r in records if r.meta["time_s"] > 2.0)
    # an empty event list from the runner means no infraction, whatever the messages say
    record["meta"]["infraction_events"] = []
    assert infraction_events(record, drive(20)) == []


def test_rollouts_give_the_policy_a_closed_loop_time_limit():
    from langprop_driving.pipeline.rollouts import rollout_agent_settings
    from team_code.config import DEFAULT_TIMEOUT_S, AgentConfig

    assert AgentConfig().timeout_s == DEFAULT_TIMEOUT_S >= 5.0
    # a training limit handed to a rollout is raised; the other settings are kept
    settings = rollout_agent_settings({"checkpoint": "c", "timeout_s": 1.0, "sandbox": True})
    assert settings == {"checkpoint": "c", "timeout_s": DEFAULT_TIMEOUT_S, "sandbox": True}
    assert rollout_agent_settings({})["timeout_s"] == DEFAULT_TIMEOUT_S
    assert rollout_agent_settings({"timeout_s": 60.0})["timeout_s"] == 60.0
    assert rollout_agent_settings({"timeout_s": 0.2}, min_timeout_s=None) == {"timeout_s": 0.2}


def test_mark_infractions_counts_down_to_the_next_event():
    records = drive(10)
    marked = mark_infractions(records, [InfractionEvent("red_light", 2.0), InfractionEvent("collisions_vehicle", 4.0)])
    assert marked == 9  # the tick at t=4.5 has nothing ahead
    within = [r.meta["infraction_within_s"] for r in records]
    kinds = [r.meta["infraction_kind"] for r in records]
    assert within[:6] == [2.0, 1.5, 1.0, 0.5, 0.0, 1.5]
    assert kinds[4] == "red_light" and kinds[5] == "collisions_vehicle"
    assert within[9] is None and kinds[9] is None


def test_select_records_thins_but_keeps_every_window_record():
    records = drive(40)
    mark_infractions(records, [InfractionEvent("collisions_vehicle", 19.5)])  # last tick at 19.5
    chosen = select_records(records, stride=10, horizon_s=2.0)
    window = [r for r in records if r.meta["infraction_within_s"] <= 2.0]
    assert len(window) == 5
    assert all(any(r is w for r in chosen) for w in window)
    assert len(chosen) == 5 + 4  # ticks 0, 10, 20, 30 (none of them in the window)
    capped = select_records(records, stride=1, max_records=8, horizon_s=2.0, seed=3)
    assert len(capped) == 8 and all(any(r is w for r in capped) for w in window)
    unlabelled = [SceneRecord(r.scene, None, r.meta) for r in records]
    assert select_records(unlabelled) == []


def test_select_records_shares_the_room_between_kinds_of_scene():
    """A rare kind (stopping behind a car, 10 of 100 ticks) keeps half the thinned data, not a tenth."""
    records = drive(100)
    for r in records[40:50]:
        r.label = label("STOP", reason="lead_vehicle")
    plain = [scene_kind(r) for r in select_records(records, stride=10)]
    assert len(plain) == 10 and plain.count(("STOP", "lead_vehicle", False)) == 1
    chosen = select_records(records, stride=10, balance_kinds=True)
    kinds = [scene_kind(r) for r in chosen]
    assert len(chosen) == 10
    assert kinds.count(("STOP", "lead_vehicle", False)) == 5 and kinds.count(("MOVE", "free_road", False)) == 5
    # A kind smaller than its share keeps all of it, and the others take what it leaves.
    chosen = select_records(records, stride=4, balance_kinds=True)
    kinds = [scene_kind(r) for r in chosen]
    assert len(chosen) == 25 and kinds.count(("STOP", "lead_vehicle", False)) == 10
    # A red light in view is another kind: the queue at a light teaches nothing about cars.
    for r in records[40:45]:
        r.scene["distance_to_red_light"] = 12.0
    assert scene_kind(records[40]) == ("STOP", "lead_vehicle", True)
    assert {scene_kind(r) for r in select_records(records, stride=10, balance_kinds=True)} == {
        ("STOP", "lead_vehicle", True), ("STOP", "lead_vehicle", False), ("MOVE", "free_road", False)}


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise RuntimeError(f"route {x} broke")


def _slow(x: int) -> int:
    time.sleep(0.2)
    return x


def test_ray_backend_without_ray_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(RuntimeError, match="pip install"):
        ensure_ray(RayOptions(), workers=1)


def test_workdir_markers(tmp_path: Path):
    work = WorkDir(tmp_path / "w")
    assert work.done("collect") is None
    work.mark_done("collect", {"n": 3})
    assert work.done("collect") == {"n": 3}
    work.marker("train-x").write_text("{broken")
    assert work.done("train-x") is None  # unreadable marker: redo the stage


def test_dagger_beta_decays():
    config = DaggerConfig(iterations=3, beta=0.8, beta_decay=0.5)
    assert [config.beta_at(i) for i in (1, 2, 3)] == [0.8, 0.4, 0.2]
    with pytest.raises(ValueError, match="beta"):
        DaggerConfig(beta=1.5)


def test_resolve_agent(tmp_path: Path):
    assert resolve_agent("expert").agent.endswith("expert_agent.py")
    assert resolve_agent("builtin:follow").agent == "builtin:follow"
    script = tmp_path / "mine.py"
    script.write_text("def predict_speed_and_steering(scene):\n    return 'STOP', 0.0\n")
    spec = resolve_agent(script)
    assert spec.agent.endswith("langprop_agent.py") and spec.agent_config == str(script.resolve())
    agent_file = tmp_path / "agent.py"
    agent_file.write_text("def get_entry_point():\n    return 'A'\n")
    assert resolve_agent(agent_file).agent == str(agent_file.resolve())
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")
    with pytest.raises(ValueError, match="defines neither"):
        resolve_agent(other)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_agent(tmp_path / "missing.py")
    # labels for the results' meta
    assert resolve_agent("expert").label == "expert" and spec.label == f"script:{script.resolve()}"
    assert resolve_agent(agent_file).label == "agent"
    # an agent file that also defines the policy function is still an agent
    both = tmp_path / "both.py"
    both.write_text("def get_entry_point():\n    return 'A'\n\n\ndef predict_speed_and_steering(scene):\n"
                    "    return 'STOP', 0.0\n")
    assert resolve_agent(both).agent == str(both.resolve())


def test_appending_rollouts_never_rewrites_earlier_chunks(tmp_path: Path):
    dataset = SceneDataset(tmp_path / "data")
    first = dataset.append(drive(5), "collect-0")
    before = first.read_bytes()
    index_before = json.loads(dataset.index_path.read_text())["chunks"]
    dataset.append(drive(7), "dagger-1-0")
    assert first.read_bytes() == before
    assert json.loads(dataset.index_path.read_text())["chunks"][:1] == index_before
    assert len(dataset) == 12 and dataset.runs() == ["collect-0", "dagger-1-0"]


def test_import_rollout_marks_relabels_and_appends_once(tmp_path: Path):
    from click.testing import CliRunner

    from langprop_driving.cli.pipeline_cmd import import_rollout_cmd
    from sumo_world.scoring.records import Infraction, RouteOutcome
    from sumo_world.scoring.results import ResultsFile

    record_dir = tmp_path / "recorded"
    ticks = drive(20)
    for r in ticks:
        r.label = None  # the LangProp agent records no label for its own ticks
    SceneDataset(record_dir).append(ticks, "7_run")
    results = ResultsFile(tmp_path / "results.json")
    results.set_total_routes(1)
    message = "Agent collided against object with type=vehicle.car and id=3 at (x=25.1, y=0.2, z=0.0)"
    results.add(RouteOutcome(route_id="7", town="T", status="Completed", route_completion_percent=100.0,
                             route_length_m=50.0, duration_game_s=10.0, duration_system_s=1.0,
                             infractions=[Infraction("collisions_vehicle", 5.0, 25.1, 0.2, message, 3)]), 0)
    results.finalize()

    runner = CliRunner()
    args = [str(record_dir), "--results", str(tmp_path / "results.json"), "--work-dir", str(tmp_path / "work"),
            "--stage", "carla-1"]
    out = runner.invoke(import_rollout_cmd, args)
    assert out.exit_code == 0, out.output
    assert "carla-1-7_run: 20 ticks" in out.output
    dataset = SceneDataset(tmp_path / "work" / "data")
    records = list(dataset)
    assert len(records) == 20 and all(r.label is not None for r in records)
    assert records[8].meta["infraction_within_s"] == 1.0  # t=4.0, the collision at x=25 (t=5.0)
    assert records[8].meta["infraction_kind"] == "collisions_vehicle"
    assert records[15].meta["infraction_within_s"] is None
    again = runner.invoke(import_rollout_cmd, args)
    assert again.exit_code == 0 and "imported 0 run(s)" in again.output
    assert len(dataset) == 20


def test_train_command_trains_from_a_dataset_and_resumes(tmp_path: Path):
    from click.testing import CliRunner

    from langprop_driving.cli.pipeline_cmd import train_cmd

    dataset = SceneDataset(tmp_path / "work" / "data")
    for route in ("1", "2"):
        ticks = drive(30, stop_after=20)
        for i, r in enumerate(ticks):
            r.meta["route_id"] = route
            # the expert stops once the car stands (a red light in these scenes)
            if i >= 20:
                r.scene["distance_to_red_light"] = 2.0
                r.label = label("STOP", 0.0, "red_light")
        dataset.append(ticks, f"collect-{route}")
    args = ["--work-dir", str(tmp_path / "work"), "--route-id", "1", "--val-route-id", "2", "--optimizer",
            "mutation", "--epochs", "2", "--batch-size", "16", "--record-stride", "1", "--sandbox", "inprocess",
            "--seed", "3"]
    out = CliRunner().invoke(train_cmd, args)
    assert out.exit_code == 0, out.output
    assert "optimizer: mutation" in out.output
    assert "seed 3)" in out.output  # --seed reaches the optimizer's draws
    checkpoint = tmp_path / "work" / "train" / "offline" / "checkpoints" / "predict_speed_and_steering"
    assert f"checkpoint: {checkpoint}" in out.output
    assert (checkpoint / "index.json").is_file()
    assert "validation" in out.output
    marker = json.loads((tmp_path / "work" / "stages" / "train-offline.json").read_text())
    assert marker["n_val"] == 30 and marker["policy_calls"] > 0
    # the finished run is not trained again
    again = CliRunner().invoke(train_cmd, args)
    assert again.exit_code == 0 and f"checkpoint: {checkpoint}" in again.output
    assert json.loads((tmp_path / "work" / "stages" / "train-offline.json").read_text()) == marker


def test_policy_timeouts_of_a_rollout_are_reported(caplog):
    from langprop_driving.pipeline.rollouts import warn_policy_timeouts

    record = route_record()
    assert warn_policy_timeouts(record, "route 7") == 0 and not caplog.records
    record["meta"].update(policy_timeouts=2, policy_timeout_s=10.0, policy_abandoned_at_tick=40)
    with caplog.at_level("WARNING"):
        assert warn_policy_timeouts(record, "route 7") == 2
    assert "route 7: the policy timed out 2 time(s) (limit 10.0 s) and was abandoned at tick 40" in caplog.text


def test_dagger_mixes_expert_data_and_rollouts_by_the_share_asked():
    from driving.dataset import SceneRecord
    from langprop_driving.pipeline.train import mix_records

    expert = [SceneRecord({"i": i}, None, {"stage": "collect"}) for i in range(30)]
    rollouts = [SceneRecord({"i": 100 + i}, None, {"stage": "dagger-1"}) for i in range(10)]
    records = expert + rollouts
    assert mix_records(records, None) == records  # as aggregated
    half = mix_records(records, 0.5, seed=1)
    assert len(half) == 40
    assert sum(r.meta["stage"] == "collect" for r in half) == 20
    assert {r.scene["i"] for r in half if r.meta["stage"] != "collect"} == set(range(100, 110))  # all, repeated
    only_rollouts = mix_records(records, 0.0)
    assert all(r.meta["stage"] == "dagger-1" for r in only_rollouts) and len(only_rollouts) == 40
    assert mix_records(expert, 0.5) == expert  # one side only: nothing to mix
    with pytest.raises(ValueError, match="expert_share"):
        DaggerConfig(expert_share=1.2)


def test_the_free_mutation_optimizer_searches_wider_than_an_llm_unless_told():
    from langprop_core.llm.factory import OptimizerConfig, make_optimizer
    from langprop_driving.pipeline.config import SEARCH_SIZE, TrainConfig

    mutation = make_optimizer(OptimizerConfig(kind="mutation"))
    llm = make_optimizer(OptimizerConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m"))
    assert mutation.free and not llm.free
    assert TrainConfig().search_size(mutation.free) == SEARCH_SIZE[True] == (16, 16)
    assert TrainConfig().search_size(llm.free) == SEARCH_SIZE[False] == (2, 8)
    assert TrainConfig(n_responses=3, max_keep=5).search_size(True) == (3, 5)  # what is set wins
    with pytest.raises(ValueError, match="n_responses must be >= 1"):
        TrainConfig(n_responses=0)
