"""Results you can trust from every command (issue 23): one test per defect it names.

A tiny generated town with two short routes, no traffic: each route run takes
about a second.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driving.dataset import SceneDataset
from langprop_core.checkpoint import save_checkpoint
from langprop_core.policy import Policy
from langprop_driving.cli import main
from sumo_world.scoring.results import ResultsFile
from sumo_world.run.runner import EvaluationConfig, EvaluationError
from tests.helpers.expert_rollouts import unlabelled_rollout

GOOD_SCRIPT = '''
def predict_speed_and_steering(scene):
    return 0.0, 0.0
'''

CRASHING_AGENT = '''
from driving.carla_compat import VehicleControl


def get_entry_point():
    return "CrashingAgent"


class CrashingAgent:
    def __init__(self, path_to_conf_file):
        self.setup(path_to_conf_file)

    def setup(self, path_to_conf_file):
        pass

    def sensors(self):
        return [{"type": "sensor.speedometer", "id": "speed"}]

    def set_global_plan(self, gps, world):
        pass

    def run_step(self, input_data, timestamp):
        raise RuntimeError("a bug on every tick")

    def destroy(self):
        pass
'''

SETUP_FAILS_AGENT = CRASHING_AGENT.replace('''    def setup(self, path_to_conf_file):
        pass''', '''    def setup(self, path_to_conf_file):
        raise RuntimeError("cannot read my model file")''')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    towns = root / "towns"
    routes = root / "routes.xml"
    run = CliRunner().invoke(main, ["town", "generate", "tiny", "--size", "3", "--block", "60",
                                    "--towns-dir", str(towns)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(main, ["routes", "generate", "--town", "tiny", "-n", "2", "--min-length", "50",
                                    "--max-length", "90", "--out", str(routes), "--towns-dir", str(towns)])
    assert run.exit_code == 0, run.output
    return {"root": root, "towns": towns, "routes": routes}


def evaluate(world: dict[str, Path], agent: str, *extra: str) -> "CliRunner":
    args = ["evaluate", "--routes", str(world["routes"]), "--agent", agent, "--towns-dir", str(world["towns"]),
            "--traffic", "none", "--no-progress", *extra]
    return CliRunner().invoke(main, args)


def error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ") and "Traceback" not in output, output
    return lines[0]


# -- 1. never mix runs ---------------------------------------------------------------------------------
def test_resuming_another_agents_results_is_refused_in_one_line(world, tmp_path):
    results = tmp_path / "r.json"
    first = evaluate(world, "builtin:follow", "--results", str(results), "--route-id", "0")
    assert first.exit_code == 0, first.output
    before = results.read_text()
    other = evaluate(world, "builtin:stopped", "--results", str(results), "--route-id", "0")
    assert other.exit_code == 1
    line = error_line(other.output)
    assert "agent 'builtin:follow' there, 'builtin:stopped' now" in line
    assert "--no-resume" in line and "--results" in line
    assert results.read_text() == before  # untouched
    # the same agent with other traffic is another run too
    assert "traffic" in error_line(evaluate(world, "builtin:follow", "--results", str(results), "--route-id", "0",
                                            "--traffic", "light").output)
    # and --no-resume starts over (keeping the old file)
    fresh = evaluate(world, "builtin:stopped", "--results", str(results), "--route-id", "0", "--no-resume")
    assert fresh.exit_code == 0, fresh.output
    assert results.with_name("r.json.bak").read_text() == before


def test_default_results_path_names_the_agent_and_the_first_line_says_resume(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = evaluate(world, "builtin:follow", "--route-id", "1")
    assert a.exit_code == 0, a.output
    assert a.output.splitlines()[0] == "builtin:follow: new run: 1 route runs into " \
                                       "results/routes_builtin-follow_embedded.json"
    b = evaluate(world, "builtin:stopped", "--route-id", "1", "--timeout-factor", "0.2")
    assert b.exit_code == 0, b.output
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "routes_builtin-follow_embedded.json", "routes_builtin-stopped_embedded.json"]
    again = evaluate(world, "builtin:follow", "--route-id", "1")
    assert again.output.splitlines()[0].startswith(
        "builtin:follow: resuming results/routes_builtin-follow_embedded.json: 1 of 1 runs done")


def test_failed_runs_are_retried_on_resume(tmp_path):
    from sumo_world.scoring.records import RouteOutcome

    path = tmp_path / "r.json"
    results = ResultsFile(path)
    results.set_total_routes(3)
    for index, status in enumerate(["Failed - Agent couldn't be set up", "Failed - Agent crashed",
                                    "Failed - Agent timed out"]):
        results.add(RouteOutcome(route_id=str(index), town="t", status=status, route_completion_percent=0.0,
                                 route_length_m=50.0, duration_game_s=1.0, duration_system_s=1.0), index)
    # runs that could not run are run again; a driving failure (timed out) is a result
    assert ResultsFile(path).finished_runs() == {("2", 0)}


# -- 2. errors early, one line --------------------------------------------------------------------------
def _checkpoint(root: Path, source: str = GOOD_SCRIPT) -> Path:
    policy = Policy.from_source(source, "predict_speed_and_steering", optimizer="file")
    return save_checkpoint(root, "predict_speed_and_steering", "predict_speed_and_steering", [policy])


@pytest.mark.parametrize("damage", ["index", "script", "missing"])
def test_a_broken_checkpoint_is_one_line_before_any_route_runs(world, tmp_path, damage):
    folder = _checkpoint(tmp_path / "ck")
    index = folder / "index.json"
    scripts = sorted(folder.rglob("*.py"))
    assert scripts
    if damage == "index":
        index.write_text(index.read_text()[:40])
    elif damage == "script":
        scripts[0].write_text("def predict_speed_and_steering(scene):\n    return (\n")
    else:
        for script in scripts:
            script.unlink()
    results = tmp_path / "r.json"
    out = evaluate(world, str(folder), "--results", str(results))
    assert out.exit_code == 1
    error_line(out.output)
    assert not results.exists()  # no world started, no results file of failed routes


def test_agent_setup_failure_and_langprop_agent_without_config_are_one_line(world, tmp_path):
    agent = tmp_path / "setup_fails.py"
    agent.write_text(SETUP_FAILS_AGENT)
    out = evaluate(world, str(agent), "--results", str(tmp_path / "a.json"))
    assert out.exit_code == 1 and "cannot read my model file" in error_line(out.output)
    assert not (tmp_path / "a.json").exists()
    import team_code

    langprop_agent = Path(team_code.__file__).parent / "langprop_agent.py"
    out = evaluate(world, str(langprop_agent), "--results", str(tmp_path / "b.json"))
    assert out.exit_code == 1 and "no LangProp checkpoint" in error_line(out.output)


def test_unknown_town_and_unplannable_route_are_one_line_for_collect(world, tmp_path):
    out = CliRunner().invoke(main, ["collect", "--town", "nowhere", "--routes", str(world["routes"]),
                                    "--towns-dir", str(world["towns"]), "--work-dir", str(tmp_path / "w")])
    assert out.exit_code == 1 and "nowhere" in error_line(out.output)
    assert not (tmp_path / "w" / "data").exists()
    far = tmp_path / "far.xml"
    far.write_text(world["routes"].read_text().replace('x="', 'x="9000'))
    out = CliRunner().invoke(main, ["collect", "--town", "tiny", "--routes", str(far),
                                    "--towns-dir", str(world["towns"]), "--work-dir", str(tmp_path / "w")])
    assert out.exit_code == 1 and "cannot be planned" in error_line(out.output)


# -- 3. idempotent writes -------------------------------------------------------------------------------
def test_relabel_twice_does_not_double_the_dataset(tmp_path):
    src = tmp_path / "d"
    SceneDataset(src).append(unlabelled_rollout(5), run_id="collect-0")
    for _ in range(3):
        out = CliRunner().invoke(main, ["relabel", str(src), "--no-progress"])
        assert out.exit_code == 0, out.output
    assert len(SceneDataset(src)) == 10
    assert SceneDataset(src).runs() == ["collect-0", "collect-0-relabel"]


# -- 4. failures exit 1, nonsense values refused -------------------------------------------------------
def test_an_agent_that_crashes_is_failed_agent_crashed_and_exit_1(world, tmp_path):
    agent = tmp_path / "crashing.py"
    agent.write_text(CRASHING_AGENT)
    results = tmp_path / "r.json"
    out = evaluate(world, str(agent), "--results", str(results), "--route-id", "0")
    assert out.exit_code == 1
    record = json.loads(results.read_text())["_checkpoint"]["records"][0]
    assert record["status"] == "Failed - Agent crashed"
    assert "a bug on every tick" in record["meta"]["error"]
    assert record["meta"]["duration_game"] < 5.0  # stopped, not driven to the route's time limit
    assert "Failed - Agent crashed" in out.output.strip().splitlines()[-1]


def test_timeout_factor_must_be_positive(world):
    for bad in ("0", "-1"):
        out = evaluate(world, "builtin:follow", "--timeout-factor", bad)
        assert out.exit_code == 2 and "--timeout-factor" in out.output
    with pytest.raises(EvaluationError, match="timeout factor must be > 0"):
        EvaluationConfig(town="", routes=Path("r.xml"), agent="builtin:follow", timeout_factor=0.0)


def test_demo_workers_0_is_refused_like_everywhere_else():
    for command in (["demo"], ["collect", "--town", "t", "--routes", __file__], ["evaluate"]):
        out = CliRunner().invoke(main, [*command, "--workers", "0"])
        assert out.exit_code == 2 and "'--workers': 0 is not in the range x>=1" in out.output, out.output


def test_routes_show_exits_1_when_routes_cannot_be_planned(world, tmp_path):
    far = tmp_path / "far.xml"
    far.write_text(world["routes"].read_text().replace('x="', 'x="9000'))
    out = CliRunner().invoke(main, ["routes", "show", str(far), "--towns-dir", str(world["towns"])])
    assert out.exit_code == 1 and "NOT PLANNABLE" in out.output
    ok = CliRunner().invoke(main, ["routes", "show", str(world["routes"]), "--towns-dir", str(world["towns"])])
    assert ok.exit_code == 0, ok.output


def test_results_exits_1_on_a_json_that_is_not_a_results_file(tmp_path):
    other = tmp_path / "config.json"
    other.write_text('{"checkpoint": "runs/x"}')
    out = CliRunner().invoke(main, ["results", str(other)])
    assert out.exit_code == 1 and "not a leaderboard results file" in error_line(out.output)


def test_interrupt_exits_130_and_says_how_to_resume(tmp_path, monkeypatch):
    import langprop_driving.pipeline.preflight as preflight

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(preflight, "check_dataset", interrupted)
    out = CliRunner().invoke(main, ["train", "--work-dir", str(tmp_path), "--no-resume", "--optimizer", "mutation"])
    assert out.exit_code == 130
    assert f"resume with: langprop train --work-dir {tmp_path} --optimizer mutation" in out.output


# -- 5. the commands behave alike ----------------------------------------------------------------------
LONG_COMMANDS = ("demo", "collect", "train", "dagger", "evaluate", "relabel", "example")
LLM_COMMANDS = ("demo", "train", "dagger", "example")


def _params(name: str) -> dict[str, object]:
    from langprop_driving.cli import _COMMANDS
    import importlib

    module, attr = _COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attr)
    return {opt: param for param in command.params for opt in param.opts}


def test_shared_options_are_the_same_everywhere():
    for name in LONG_COMMANDS:
        assert "--no-progress" in _params(name), name
    for name in LLM_COMMANDS:
        params = _params(name)
        for option in ("--optimizer", "--llm-base-url", "--llm-model", "--llm-timeout", "--llm-cache",
                       "--max-llm-calls", "--max-llm-tokens", "--max-llm-cost", "--llm-prices"):
            assert option in params, (name, option)
        assert params["--llm-timeout"].default == 600.0 and params["--llm-timeout"].envvar == "LANGPROP_LLM_TIMEOUT"
    traffic = {name: _params(name)["--traffic"].default for name in ("evaluate", "collect", "dagger")}
    assert len(set(traffic.values())) == 1, traffic
    for name in ("evaluate", "collect", "dagger", "demo", "train", "example"):
        assert _params(name)["--seed"].help == _params("evaluate")["--seed"].help, name

def test_every_option_of_every_command_has_help():
    import click

    ctx = click.Context(main)

    def walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(command, click.Group):
            return [found for name in command.list_commands(ctx)
                    for found in walk(command.get_command(ctx, name), (*path, name))]
        return [(*path, param.opts[0]) for param in command.params
                if isinstance(param, click.Option) and not param.help]

    assert walk(main, ()) == []


def test_progress_bars_are_off_when_the_output_is_not_a_terminal(tmp_path):
    from langprop_driving.cli.options import progress_enabled

    src = tmp_path / "d"
    SceneDataset(src).append(unlabelled_rollout(5), run_id="collect-0")
    out = CliRunner().invoke(main, ["relabel", str(src)])  # no --no-progress; CliRunner's output is no terminal
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines() == [f"relabelled 5 scenes from {src} into {src}"]
    assert progress_enabled(False) is False and progress_enabled(True) is False


def test_llm_timeout_comes_from_the_environment(monkeypatch):
    from langprop_core.llm.factory import OptimizerConfig

    monkeypatch.delenv("LANGPROP_LLM_TIMEOUT", raising=False)
    assert OptimizerConfig.from_env().timeout_s == 600.0
    monkeypatch.setenv("LANGPROP_LLM_TIMEOUT", "900")
    assert OptimizerConfig.from_env().timeout_s == 900.0
    assert OptimizerConfig.from_env(timeout_s=30.0).timeout_s == 30.0
    monkeypatch.setenv("LANGPROP_LLM_TIMEOUT", "0")
    with pytest.raises(ValueError, match="LLM timeout must be > 0"):
        OptimizerConfig.from_env()


def test_train_names_its_optimizer_on_its_first_line(tmp_path):
    from tests.helpers.driving_records import make_dataset

    make_dataset(tmp_path / "data")
    out = CliRunner().invoke(main, ["train", "--work-dir", str(tmp_path), "--optimizer", "mutation", "--epochs",
                                    "1", "--sandbox", "inprocess", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith("optimizer: mutation")
