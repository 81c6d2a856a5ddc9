"""The leaderboard agents without leaderboard, on scripted scene sequences."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import carla
import pytest

from driving.carla_compat import RoadOption
from driving.dataset import SceneDataset
from driving.labels import REASONS
from driving.scene import validate_scene
from team_code import base
from team_code.config import ConfigError, load_agent_config
from team_code.expert_agent import ExpertAgent
from team_code.expert_agent import get_entry_point as expert_entry_point
from team_code.langprop_agent import LangPropAgent, get_entry_point
from tests.helpers.agent_doubles import (FAKE_LEADERBOARD_2, MOVE_RIGHT, ScriptedProvider, global_plan, make_scene,
                                         script, start)

REPO_ROOT = Path(__file__).resolve().parents[2]

RAISES = """
def predict_speed_and_steering(scene):
    raise KeyError("no such key")
"""
INVALID = """
def predict_speed_and_steering(scene):
    return "FAST", 0.0
"""
LOOPS = """
def predict_speed_and_steering(scene):
    while True:
        pass
"""


# --- scripted world ---------------------------------------------------------------------
class FailingProvider:
    def get_scene(self) -> dict:
        raise RuntimeError("simulator went away")


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("LANGPROP_") or name == "CHALLENGE_TRACK_CODENAME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LANGPROP_SANDBOX", "false")
    return monkeypatch


# --- tests ------------------------------------------------------------------------------------
NO_LEADERBOARD_RUN = '''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("leaderboard", "srunner", "agents"):
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, {repo!r})
import carla
from team_code import base
from team_code.langprop_agent import LangPropAgent, get_entry_point
from team_code.expert_agent import ExpertAgent
from tests.helpers.agent_doubles import ScriptedProvider, global_plan, make_scene
assert not base.HAVE_LEADERBOARD and base.AutonomousAgent is base.FallbackAutonomousAgent
assert base.LEADERBOARD_VERSION == 1 and LangPropAgent.get_ros_version() == -1
assert get_entry_point() == "LangPropAgent"
for agent in (LangPropAgent({policy!r}), ExpertAgent(None)):
    agent.set_global_plan(*global_plan())
    agent.set_scene_provider(ScriptedProvider([make_scene(0)]))
    control = agent()  # the base class's __call__ runs run_step
    assert isinstance(control, carla.VehicleControl) and control.throttle > 0, control
    agent.destroy()
print("OK")
'''


def test_import_and_drive_without_leaderboard(tmp_path):
    code = NO_LEADERBOARD_RUN.format(repo=str(REPO_ROOT), policy=str(script(tmp_path, MOVE_RIGHT)))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), LANGPROP_SANDBOX="false")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
    assert get_entry_point() == "LangPropAgent" and expert_entry_point() == "ExpertAgent"


def test_langprop_agent_drives_scripted_sequence(tmp_path, clean_env):
    agent = start(LangPropAgent(str(script(tmp_path, MOVE_RIGHT))), [make_scene(i) for i in range(6)])
    scenes_before = agent.scene_provider.scenes[0]["vehicles"].copy()
    controls = [agent.run_step({}, 0.05 * i) for i in range(6)]
    agent.destroy()
    for control in controls:
        assert isinstance(control, carla.VehicleControl)
        assert control.throttle > 0.0 and control.brake == 0.0
        assert control.steer > 0.0  # 10 degrees to the right
    assert agent.exception_count == 0
    assert agent.scene_provider.scenes[0]["vehicles"] == scenes_before  # the policy got a copy
    assert len(agent.dense_world_plan) == 60  # the dense plan is kept


def test_raising_policy_brakes_every_step_and_counts(tmp_path, clean_env):
    agent = start(LangPropAgent(str(script(tmp_path, RAISES))), [make_scene(i) for i in range(5)])
    controls = [agent.run_step({}, 0.05 * i) for i in range(5)]
    assert all(c.brake == 1.0 and c.throttle == 0.0 for c in controls)
    assert agent.exception_count == 5
    assert "KeyError" in agent.last_exception
    agent.destroy()


def test_invalid_output_brakes(tmp_path, clean_env):
    agent = start(LangPropAgent(str(script(tmp_path, INVALID))), [make_scene(0)])
    control = agent.run_step({}, 0.0)
    assert control.brake == 1.0 and agent.exception_count == 1
    assert "FAST" in agent.last_exception
    agent.destroy()


def test_sandboxed_timeout_brakes_and_carries_on(tmp_path, clean_env):
    clean_env.setenv("LANGPROP_SANDBOX", "true")
    clean_env.setenv("LANGPROP_TIMEOUT_S", "0.3")
    agent = start(LangPropAgent(str(script(tmp_path, LOOPS))), [make_scene(i) for i in range(2)])
    try:
        controls = [agent.run_step({}, 0.05 * i) for i in range(2)]
    finally:
        agent.destroy()
    assert [c.brake for c in controls] == [1.0, 1.0]
    assert agent.exception_count == 2
    assert agent.timeout_count == 2  # told apart from other failures: a loaded machine shows up


def test_scene_failure_brakes(tmp_path, clean_env):
    agent = LangPropAgent(str(script(tmp_path, MOVE_RIGHT)))
    agent.set_global_plan(*global_plan())
    agent.set_scene_provider(FailingProvider())
    control = agent.run_step({}, 0.0)
    assert control.brake == 1.0 and agent.scene_error_count == 1
    agent.destroy()


def test_missing_checkpoint_is_a_clear_error(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="LANGPROP_CHECKPOINT"):
        LangPropAgent(None)
    with pytest.raises(ConfigError, match="does not exist"):
        LangPropAgent(str(tmp_path / "nope.py"))


def test_checkpoint_from_config_file_and_env(tmp_path, clean_env):
    policy = script(tmp_path, MOVE_RIGHT)
    (tmp_path / "agent.yaml").write_text("# agent\ncheckpoint: policy.py  # relative to this file\nseed: 3\n")
    config = load_agent_config(str(tmp_path / "agent.yaml"))
    assert config.checkpoint == policy and config.seed == 3 and config.sandbox is False
    (tmp_path / "agent.json").write_text(json.dumps({"checkpoint": str(policy), "sandbox": True}))
    assert load_agent_config(str(tmp_path / "agent.json")).sandbox is True
    clean_env.setenv("LANGPROP_CHECKPOINT", str(policy))
    agent = LangPropAgent("")
    assert agent.config.checkpoint == policy
    agent.destroy()
    (tmp_path / "bad.yaml").write_text("checkpoint: policy.py\nchekpoint: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'chekpoint'"):
        load_agent_config(str(tmp_path / "bad.yaml"))
    (tmp_path / "bad2.yaml").write_text("checkpoint policy.py\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_agent_config(str(tmp_path / "bad2.yaml"))
    clean_env.setenv("LANGPROP_DAGGER_BETA", "lots")
    with pytest.raises(ConfigError, match="LANGPROP_DAGGER_BETA"):
        load_agent_config(None)


def test_recording_writes_a_dataset(tmp_path, clean_env):
    clean_env.setenv("LANGPROP_RECORD_DIR", str(tmp_path / "data"))
    clean_env.setenv("LANGPROP_RECORD_EVERY", "2")
    clean_env.setenv("LANGPROP_ROUTE_ID", "r7")
    agent = start(LangPropAgent(str(script(tmp_path, RAISES))), [make_scene(i) for i in range(5)])
    for i in range(5):
        agent.run_step({}, 0.05 * i)
    agent.destroy()
    records = list(SceneDataset(tmp_path / "data"))
    assert len(records) == 5
    assert [r.meta["time_s"] for r in records] == pytest.approx([0.05 * i for i in range(5)])
    assert {r.meta["controller"] for r in records} == {"policy"}
    assert {r.meta["route_id"] for r in records} == {"r7"}
    assert all(r.label is None and r.meta["action"]["target_speed_mps"] == 0.0 for r in records)
    assert "KeyError" in records[0].meta["policy_exception"]
    validate_scene(records[0].scene, strict=True)
    assert len(agent.recorder.chunks) == 3  # flushed every 2 ticks and at destroy


def test_dagger_beta_one_lets_the_expert_drive_and_label(tmp_path, clean_env):
    clean_env.setenv("LANGPROP_RECORD_DIR", str(tmp_path / "data"))
    clean_env.setenv("LANGPROP_DAGGER_BETA", "1.0")
    agent = start(LangPropAgent(str(script(tmp_path, RAISES))), [make_scene(i) for i in range(3)])
    for i in range(3):
        agent.run_step({}, 0.05 * i)
    agent.destroy()
    assert agent.expert_drives and agent.exception_count == 0
    records = list(SceneDataset(tmp_path / "data"))
    assert {r.meta["controller"] for r in records} == {"expert"}
    assert all(r.label is not None and r.label.reason in REASONS for r in records)


def test_dagger_draw_is_seeded_per_route(tmp_path, clean_env):
    clean_env.setenv("LANGPROP_DAGGER_BETA", "0.5")
    policy = str(script(tmp_path, MOVE_RIGHT))

    def draws(seed: int) -> list[bool]:
        clean_env.setenv("LANGPROP_SEED", str(seed))
        out = []
        for y in range(8):  # eight different routes
            agent = LangPropAgent(policy)
            agent.set_global_plan(*global_plan(y=10.0 * y))
            agent.set_scene_provider(ScriptedProvider([make_scene(0)]))
            agent.run_step({}, 0.0)
            out.append(agent.expert_drives)
            agent.destroy()
        return out

    first = draws(0)
    assert draws(0) == first
    assert True in first and False in first  # 8 routes at beta 0.5: both happen for this seed


def test_expert_agent_drives_records_and_stops_for_red(tmp_path, clean_env):
    clean_env.setenv("LANGPROP_RECORD_DIR", str(tmp_path / "data"))
    scenes = [make_scene(i, speed_mps=5.0) for i in range(3)] + [make_scene(3, speed_mps=5.0, red_light_m=6.0)]
    agent = start(ExpertAgent(None), scenes)
    controls = [agent.run_step({}, 0.05 * i) for i in range(4)]
    agent.destroy()
    assert all(isinstance(c, carla.VehicleControl) for c in controls)
    assert controls[0].throttle > 0.0
    assert controls[-1].brake > 0.0 and controls[-1].throttle == 0.0
    records = list(SceneDataset(tmp_path / "data"))
    assert len(records) == 4
    assert records[-1].label.reason == "red_light"
    assert records[-1].meta["controller"] == "expert"


def test_sensors_follow_the_leaderboard_format(clean_env):
    agent = ExpertAgent(None)
    sensors = agent.sensors()
    ids = [s["id"] for s in sensors]
    assert len(ids) == len(set(ids))
    allowed = {"sensor.speedometer", "sensor.other.gnss", "sensor.other.imu"}
    assert {s["type"] for s in sensors} <= allowed
    for sensor in sensors:
        if "x" in sensor:
            assert (sensor["x"] ** 2 + sensor["y"] ** 2 + sensor["z"] ** 2) ** 0.5 <= 3.0
    assert agent.track is base.Track.SENSORS
    clean_env.setenv("CHALLENGE_TRACK_CODENAME", "MAP")
    assert ExpertAgent(None).track is base.Track.MAP
    clean_env.setenv("LANGPROP_TRACK", "ROAD")
    with pytest.raises(ValueError, match="ROAD"):
        ExpertAgent(None)


def test_lazy_carla_extractor_from_data_provider(monkeypatch, clean_env, shared_data):
    town01 = carla.Map("Town01", (shared_data / "carla_town01" / "Town01.xodr").read_text())
    start_wp = town01.get_waypoint(carla.Location(x=154.07, y=16.0, z=0.0))
    wps = [start_wp] + [start_wp.next(float(d))[0] for d in range(1, 40)]
    transform = wps[0].transform
    hero = types.SimpleNamespace(
        id=1, type_id="vehicle.lincoln.mkz_2017", attributes={"role_name": "hero"},
        bounding_box=carla.BoundingBox(carla.Location(0, 0, 0.7), carla.Vector3D(2.45, 1.05, 0.75)),
        get_transform=lambda: transform, get_velocity=lambda: carla.Vector3D(0.0, 2.0, 0.0),
        get_speed_limit=lambda: 30.0)
    world = types.SimpleNamespace(get_actors=lambda: [hero])
    module = types.ModuleType("srunner.scenariomanager.carla_data_provider")
    module.CarlaDataProvider = type("CarlaDataProvider", (), {
        "get_world": staticmethod(lambda: world), "get_map": staticmethod(lambda world=None: town01),
        "get_hero_actor": staticmethod(lambda: hero)})
    for name in ("srunner", "srunner.scenariomanager"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "srunner.scenariomanager.carla_data_provider", module)

    agent = ExpertAgent(None)
    agent.set_global_plan([({}, RoadOption.LANEFOLLOW)] * len(wps), [(w.transform, RoadOption.LANEFOLLOW) for w in wps])
    control = agent.run_step({}, 0.0)
    agent.destroy()
    assert type(agent.scene_provider).__name__ == "CarlaSceneProvider"
    assert agent.scene_error_count == 0 and agent.exception_count == 0
    assert control.throttle > 0.0 and abs(control.steer) < 0.2


LEADERBOARD_2_RUN = '''
import sys
sys.path.insert(0, {repo!r})
import carla
from team_code import base
from team_code.langprop_agent import LangPropAgent
from tests.helpers.agent_doubles import ScriptedProvider, global_plan, make_scene
assert base.HAVE_LEADERBOARD and base.LEADERBOARD_VERSION == 2, base.LEADERBOARD_VERSION
agent = LangPropAgent("127.0.0.1", 2000, False)       # 2.0: host, port, debug
agent.set_global_plan(*global_plan())                  # 2.0: the plan before setup
agent.setup({policy!r})
agent.set_scene_provider(ScriptedProvider([make_scene(0)]))
control = agent.run_step({{}}, 0.0)
assert isinstance(control, carla.VehicleControl) and control.throttle > 0, control
assert len(agent.dense_world_plan) == 60 and len(agent._global_plan_world_coord) == 6
assert isinstance(agent, sys.modules["leaderboard.autoagents.autonomous_agent"].AutonomousAgent)
agent.destroy()
print("OK")
'''


def test_runs_under_a_leaderboard_2_style_base(tmp_path, clean_env):
    package = tmp_path / "lb" / "leaderboard" / "autoagents"
    package.mkdir(parents=True)
    (tmp_path / "lb" / "leaderboard" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "autonomous_agent.py").write_text(FAKE_LEADERBOARD_2)
    policy = script(tmp_path, MOVE_RIGHT)
    code = LEADERBOARD_2_RUN.format(repo=str(REPO_ROOT), policy=str(policy))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "lb"), str(REPO_ROOT)]),
               LANGPROP_SANDBOX="false")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_checkpoint_directories_ours_and_original_langprop(tmp_path, clean_env):
    from langprop_core.checkpoint import save_checkpoint
    from langprop_core.policy import Policy

    good, bad = textwrap.dedent(MOVE_RIGHT), textwrap.dedent(RAISES)
    ours = tmp_path / "ours"
    save_checkpoint(ours, "predict_speed_and_steering", "predict_speed_and_steering",
                    [Policy.from_source(good, "predict_speed_and_steering"),
                     Policy.from_source(bad, "predict_speed_and_steering")])
    original = tmp_path / "original"
    original.mkdir()
    (original / "record_0.txt").write_text(bad)
    (original / "record_1.txt").write_text(good)
    (original / "config.json").write_text(json.dumps({"name": "predict_speed_and_steering", "step": 3, "records": {
        "0": {"main": {"priority": 0.1, "count": 5, "avg_score": 0.1}},
        "1": {"main": {"priority": 0.9, "count": 5, "avg_score": 0.9}}}}))
    for checkpoint in (ours, original):
        (tmp_path / "agent.yaml").write_text(f"checkpoint: {checkpoint.name}\n")
        agent = start(LangPropAgent(str(tmp_path / "agent.yaml")), [make_scene(i) for i in range(3)])
        controls = [agent.run_step({}, 0.05 * i) for i in range(3)]
        agent.destroy()
        assert agent.exception_count == 0, checkpoint  # the best script (the good one) drives
        assert all(c.throttle > 0 and c.steer > 0 for c in controls)


def test_a_failing_script_is_reported_in_one_line(tmp_path, clean_env, caplog):
    # The script's traceback is kept at debug level: a log at WARNING gets one line per report.
    clean_env.setenv("LANGPROP_SANDBOX", "true")
    agent = start(LangPropAgent(str(script(tmp_path, RAISES))), [make_scene(i) for i in range(3)])
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            agent.run_step({}, 0.05 * i)
    agent.destroy()
    reports = [r.getMessage() for r in caplog.records if "policy failed (failure" in r.getMessage()]
    assert len(reports) == 1 and "KeyError" in reports[0]
    assert all("\n" not in r.getMessage() and "Traceback" not in r.getMessage() for r in caplog.records)
    assert "Traceback" in agent.last_exception  # still kept for the record and for --debug
