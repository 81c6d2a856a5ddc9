"""Our agents under the calling conventions of the leaderboard forks people run.

Each fork is reproduced by a small base class with its constructor, ``setup``
and ``__call__`` signatures (as read in the forks' code: carla_garage's
``autonomous_agent_local.py`` and ``leaderboard_evaluator_local.py``,
Bench2Drive's ``leaderboard_evaluator.py``), put on the path as
``leaderboard.autoagents.autonomous_agent`` in a fresh interpreter; the
stand-in base is tested in this process (the leaderboard is not on the path here).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import carla
import pytest

from team_code import base
from team_code.config import load_agent_config, split_fork_suffix
from team_code.expert_agent import ExpertAgent
from team_code.langprop_agent import LangPropAgent
from tests.helpers.agent_doubles import (FAKE_LEADERBOARD_2, MOVE_RIGHT, ScriptedProvider, global_plan, make_scene,
                                         script)

REPO_ROOT = Path(__file__).resolve().parents[2]

# carla_garage's 1.0 base: the constructor takes a route index and passes it to
# setup; __call__ passes the sensors to run_step as a third argument.
CARLA_GARAGE_BASE = '''
import enum
class Track(enum.Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
class AutonomousAgent:
    def __init__(self, path_to_conf_file, route_index=None):
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
        self.setup(path_to_conf_file, route_index)
    def setup(self, path_to_conf_file):
        pass
    def run_step(self, input_data, timestamp):
        raise NotImplementedError
    def destroy(self):
        pass
    def __call__(self, sensors=None):
        control = self.run_step({}, 0.0, sensors)
        control.manual_gear_shift = False
        return control
    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        self._global_plan_world_coord = global_plan_world_coord[::10]
        self._global_plan = global_plan_gps[::10]
'''

# The plain leaderboard 1.0 base: the config path only.
LEADERBOARD_1_BASE = '''
import enum
class Track(enum.Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
class AutonomousAgent:
    def __init__(self, path_to_conf_file):
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
        self.setup(path_to_conf_file)
    def setup(self, path_to_conf_file):
        pass
    def destroy(self):
        pass
    def __call__(self):
        control = self.run_step({}, 0.0)
        control.manual_gear_shift = False
        return control
    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        self._global_plan_world_coord = global_plan_world_coord[::10]
        self._global_plan = global_plan_gps[::10]
'''

# Leaderboard 2.0 (Bench2Drive builds on it): host, port, debug; setup after the plan.
LEADERBOARD_2_BASE = FAKE_LEADERBOARD_2

PRELUDE = '''
import sys, warnings
warnings.simplefilter("error")  # an import warning of team_code.base would be a failure here
sys.path.insert(0, {repo!r})
import carla
from team_code import base
from team_code.langprop_agent import LangPropAgent
from team_code.expert_agent import ExpertAgent
from tests.helpers.agent_doubles import ScriptedProvider, global_plan, make_scene
assert base.HAVE_LEADERBOARD
def drive(agent, call=None):
    agent.set_scene_provider(ScriptedProvider([make_scene(0)]))
    control = call() if call else agent.run_step({{}}, 0.0)
    assert isinstance(control, carla.VehicleControl) and control.throttle > 0, control
    agent.destroy()
'''

# carla_garage's 1.0 evaluator: Agent(agent_config, route_date_string) on its own base, and on the plain one.
CARLA_GARAGE_RUN = PRELUDE + '''
agent = LangPropAgent({policy!r}, "routes_town01_route3_11_27_10_30_00")
assert agent.config.checkpoint is not None
agent.set_global_plan(*global_plan())
drive(agent, agent)  # through the base's __call__, which passes sensors to run_step
expert = ExpertAgent("", 3)  # DATAGEN mode passes the route index
expert.set_global_plan(*global_plan())
drive(expert, expert)
print("OK")
'''

# Bench2Drive: Agent(host, port, debug); set_global_plan; setup(agent_config + "+" + save_name).
BENCH2DRIVE_RUN = PRELUDE + '''
assert base.LEADERBOARD_VERSION == 2
agent = LangPropAgent("localhost", 2000, 0)
agent.set_global_plan(*global_plan())
agent.setup({policy!r} + "+" + "RouteScenario_1711_rep0")
assert str(agent.config.checkpoint) == {policy!r} and agent.config.route_id == "RouteScenario_1711_rep0"
drive(agent)
expert = ExpertAgent("localhost", 2000, 0)
expert.set_global_plan(*global_plan())
expert.setup("" + "+" + "RouteScenario_2_rep0")  # no agent config given
assert expert.config.route_id == "RouteScenario_2_rep0"
drive(expert)
print("OK")
'''


def run_under(tmp_path: Path, base_source: str, code: str) -> subprocess.CompletedProcess:
    package = tmp_path / "lb" / "leaderboard" / "autoagents"
    package.mkdir(parents=True)
    (tmp_path / "lb" / "leaderboard" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "autonomous_agent.py").write_text(base_source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGPROP_")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "lb"), str(REPO_ROOT)]), LANGPROP_SANDBOX="false")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("base_source", [CARLA_GARAGE_BASE, LEADERBOARD_1_BASE], ids=["garage-base", "lb1-base"])
def test_carla_garage_constructor_with_route_string(tmp_path, base_source):
    policy = script(tmp_path, MOVE_RIGHT)
    result = run_under(tmp_path, base_source, CARLA_GARAGE_RUN.format(repo=str(REPO_ROOT),
                                                                      policy=str(policy)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_bench2drive_config_with_save_name_suffix(tmp_path):
    policy = script(tmp_path, MOVE_RIGHT)
    result = run_under(tmp_path, LEADERBOARD_2_BASE, BENCH2DRIVE_RUN.format(repo=str(REPO_ROOT),
                                                                            policy=str(policy)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_a_broken_leaderboard_is_a_warning_with_the_error(tmp_path):
    broken = "import carla_that_is_not_there  # a broken install\n" + LEADERBOARD_1_BASE
    code = ("import warnings\nwith warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n    from team_code import base\n"
            "assert not base.HAVE_LEADERBOARD and base.AutonomousAgent is base.FallbackAutonomousAgent\n"
            "print([str(w.message) for w in caught])\n")
    result = run_under(tmp_path, broken, code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "leaderboard is on the path but" in result.stdout
    assert "No module named 'carla_that_is_not_there'" in result.stdout


# --- the stand-in base (this process has no leaderboard) ----------------------------------------
@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("LANGPROP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LANGPROP_SANDBOX", "false")


def test_stand_in_takes_the_forks_extra_arguments(tmp_path, clean_env):
    assert not base.HAVE_LEADERBOARD
    policy = str(script(tmp_path, MOVE_RIGHT))
    agent = LangPropAgent(policy, "routes_route0_11_27_10_30_00")  # carla_garage's constructor
    assert agent.leaderboard_extra_args == (("routes_route0_11_27_10_30_00",), {})
    traffic_manager = object()
    agent.setup(policy, "routes_route0_11_27_10_30_00", traffic_manager)  # carla_garage 2.0's setup
    agent.setup(policy, route_index=4, traffic_manager=traffic_manager)
    assert agent.setup_extra_args == ((), {"route_index": 4, "traffic_manager": traffic_manager})
    agent.set_global_plan(*global_plan())
    agent.set_scene_provider(ScriptedProvider([make_scene(0)]))
    control = agent.run_step({}, 0.0, {"sensor": "data"})  # carla_garage's run_step gets the sensors too
    assert isinstance(control, carla.VehicleControl) and control.throttle > 0
    agent.destroy()


def test_fork_suffix_is_read_only_when_the_part_before_exists(tmp_path, clean_env):
    policy = script(tmp_path, MOVE_RIGHT)
    assert split_fork_suffix(f"{policy}+route_7") == (str(policy), "route_7")
    assert split_fork_suffix("+route_7") == ("", "route_7")
    plus = tmp_path / "a+b.py"  # a real name with a plus in it is taken whole
    plus.write_text(MOVE_RIGHT)
    assert split_fork_suffix(str(plus)) == (str(plus), None)
    with pytest.raises(ValueError, match="does not exist"):
        load_agent_config(str(tmp_path / "missing.yaml+route_7"))
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(f"checkpoint: {policy.name}\nroute_id: mine\n")
    assert load_agent_config(f"{config_file}+route_7").route_id == "mine"  # the file wins
    assert load_agent_config(f"{policy}+route_7").route_id == "route_7"


def test_sensors_have_only_keys_the_leaderboard_reads():
    sensors = {s["id"]: s for s in ExpertAgent(None).sensors()}
    assert sensors["speed"] == {"type": "sensor.speedometer", "id": "speed"}
    assert "sensor_tick" not in sensors["imu"] and "reading_frequency" not in sensors["speed"]


def test_too_early_extractor_error_names_the_caller(monkeypatch):
    import types

    module = types.ModuleType("srunner.scenariomanager.carla_data_provider")
    module.CarlaDataProvider = type("CarlaDataProvider", (), {"get_world": staticmethod(lambda: None)})
    for name in ("srunner", "srunner.scenariomanager"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "srunner.scenariomanager.carla_data_provider", module)
    from team_code.carla_extractor import CarlaSceneProvider

    def agent_setup():  # stands for an agent that builds the extractor in setup
        return CarlaSceneProvider.from_data_provider(global_plan()[1])

    with pytest.raises(RuntimeError, match=r"no world yet.*called from .*test_forks\.py:\d+ in agent_setup"):
        agent_setup()

