"""The driving behaviour space: probe scenes follow the contract, descriptors say what a script stops for."""
from __future__ import annotations

from pathlib import Path

from driving.scene import ACTOR_KEYS, SCENE_KEYS, validate_scene
from langprop_core.sandbox import SandboxConfig, ScriptRunner
from langprop_driving.model.behaviour import (INPUT_DOMAINS, KINDS, describe_outputs, driving_behaviour_space,
                                              probe_scenes)
from langprop_driving.model.seed_policy import FUNCTION_NAME

SEEDS = Path(__file__).resolve().parents[3] / "langprop_driving" / "model" / "seeds"
IGNORES_ALL = "def predict_speed_and_steering(scene):\n    return 'MOVE', 0.0\n"
SLOW_CRUISE = "def predict_speed_and_steering(scene):\n    return 3.0, 0.0\n"
PROPS_ONLY = ("def predict_speed_and_steering(scene):\n"
              "    for p in scene['static_props'].values():\n"
              "        if p['location_world_coord'][0] - scene['ego_location_world_coord'][0] < 10:\n"
              "            return 'STOP', 0.0\n"
              "    return 'MOVE', 0.0\n")
# the naive seed without its "ahead" test: it stops for anything in its line, behind it too
IN_LINE = ("def predict_speed_and_steering(scene):\n"
           "    for group in ('vehicles', 'pedestrians'):\n"
           "        for a in scene[group].values():\n"
           "            if abs(a['location_world_coord'][1] - scene['ego_location_world_coord'][1]) < 1.0:\n"
           "                return 'STOP', 0.0\n"
           "    return 'MOVE', 0.0\n")
# what a script that reacts to nothing is described as
NOTHING = {**{k: 0 for k in KINDS}, "needless": 0}


def _describe(sources: dict[str, str]) -> dict[str, dict]:
    space = driving_behaviour_space()
    runner = ScriptRunner(SandboxConfig(workers=1))
    try:
        results = runner.run_batch(sources, FUNCTION_NAME, list(space.probes))
    finally:
        runner.close()
    return {name: space.measure([c.output if c.exception is None else None for c in calls])
            for name, calls in results.items()}


def test_probe_scenes_follow_the_strict_contract_and_are_fixed():
    scenes = probe_scenes()
    assert len(scenes) > 200
    for scene in scenes:
        validate_scene(scene, strict=True)
    again = probe_scenes()
    assert all(a["distance_to_stop_sign"] == b["distance_to_stop_sign"] for a, b in zip(scenes, again))


def test_descriptors_say_which_scenes_a_script_stops_for():
    found = _describe({"naive": (SEEDS / "naive.py").read_text(), "cautious": (SEEDS / "cautious.py").read_text(),
                       "ignores": IGNORES_ALL, "slow": SLOW_CRUISE, "props": PROPS_ONLY, "in_line": IN_LINE})
    assert found["ignores"].descriptor == {**NOTHING, "cruise_mps": 6}
    assert found["slow"].descriptor == {**NOTHING, "cruise_mps": 3}
    assert found["props"].descriptor == {**NOTHING, "static_prop": 1, "cruise_mps": 6}
    # the naive seed only stops for an actor within 2 m; the cautious one for lights, signs and actors ahead
    assert found["naive"].descriptor == {**NOTHING, "lead_vehicle": 1, "cruise_mps": 6}
    assert found["cautious"].descriptor == {"red_light": 1, "stop_sign": 1, "lead_vehicle": 1, "crossing": 1,
                                            "junction_yield": 0, "static_prop": 0, "needless": 0, "cruise_mps": 6}
    # stopping for the car or walker behind is its own behaviour, beside stopping for the car ahead
    assert found["in_line"].descriptor == {**NOTHING, "lead_vehicle": 1,
                                           "needless": 1, "cruise_mps": 6}
    assert len({b.signature for b in found.values()}) == len(found)


def test_a_threshold_moved_across_a_probe_distance_changes_the_signature():
    naive = (SEEDS / "naive.py").read_text()
    moved = naive.replace("red < 1.0", "red < 1.5")
    assert moved != naive
    found = _describe({"naive": naive, "moved": moved})
    assert found["naive"].signature != found["moved"].signature
    assert found["moved"].descriptor["red_light"] == 1


def test_failed_calls_count_as_no_reaction():
    outputs = [None] * len(probe_scenes())
    assert describe_outputs(outputs) == {**NOTHING, "cruise_mps": None}


def test_input_domains_name_contract_keys():
    keys = {k.name for k in SCENE_KEYS} | {k.name for k in ACTOR_KEYS}
    assert set(INPUT_DOMAINS) <= keys


def test_the_train_command_keeps_distinct_behaviours_and_deploys_no_dead_condition(tmp_path: Path):
    import json

    from click.testing import CliRunner

    from driving.dataset import SceneDataset
    from langprop_core.metrics import read_metrics
    from langprop_driving.cli.pipeline_cmd import train_cmd
    from tests.helpers.driving_records import drive, label

    dataset = SceneDataset(tmp_path / "work" / "data")
    ticks = drive(60, stop_after=40)
    for i, r in enumerate(ticks):
        r.meta["route_id"] = "1"
        if i >= 40:
            r.scene["distance_to_red_light"] = 2.0
            r.label = label("STOP", 0.0, "red_light")
    dataset.append(ticks, "collect-1")
    args = ["--work-dir", str(tmp_path / "work"), "--route-id", "1", "--optimizer", "mutation", "--epochs", "3",
            "--batch-size", "16", "--record-stride", "1", "--sandbox", "inprocess"]
    out = CliRunner().invoke(train_cmd, args)
    assert out.exit_code == 0, out.output
    assert "distinct behaviours" in out.output
    marker = json.loads((tmp_path / "work" / "stages" / "train-offline.json").read_text())
    occupancy = marker["behaviours"]
    # every member behaves unlike every other on the probe scenes
    assert occupancy["distinct"] == sum(occupancy["niches"].values()) >= 2
    assert marker["deployed_dead_conditions"] == []
    assert sum(occupancy["islands"].values()) >= occupancy["distinct"]
    batches = [r for r in read_metrics(tmp_path / "work" / "train" / "offline" / "metrics.jsonl")
               if r["kind"] == "train"]
    assert all("behaviours" in r for r in batches)
    assert (tmp_path / "work" / "train" / "offline" / "behaviours.png").is_file()
