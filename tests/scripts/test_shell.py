"""The shell entry points under scripts/: syntax, variable checks, the commands they build."""
from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
ALL = ["start_carla.sh", "run_evaluation.sh", "collect_data.sh", "relabel.sh", "train.sh", "dagger_carla.sh"]


def run(script: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """Run a script with a bare environment plus ``variables``."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHON": sys.executable, "LANGPROP_BIN": "langprop"}
    env.update(variables)
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=str(REPO_ROOT))


def missing_names(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 2, result.stderr
    assert "missing environment variable(s)" in result.stderr
    return {line.split(":")[0].strip() for line in result.stderr.splitlines() if line.startswith("  ")}


@pytest.fixture
def fake_carla(tmp_path):
    """Folders shaped like CARLA, leaderboard (2.0) and scenario_runner installs, and a routes file."""
    carla_root = tmp_path / "carla"
    (carla_root / "PythonAPI" / "carla").mkdir(parents=True)
    leaderboard = tmp_path / "leaderboard"
    (leaderboard / "leaderboard").mkdir(parents=True)
    (leaderboard / "leaderboard" / "leaderboard_evaluator.py").write_text(
        "parser.add_argument('--traffic-manager-port', default=8000)\n")
    runner = tmp_path / "scenario_runner"
    (runner / "srunner").mkdir(parents=True)
    routes = tmp_path / "routes.xml"
    routes.write_text("<routes></routes>\n")
    policy = tmp_path / "policy.py"
    policy.write_text("def predict_speed_and_steering(scene):\n    return 'MOVE', 0.0\n")
    return {"CARLA_ROOT": str(carla_root), "LEADERBOARD_ROOT": str(leaderboard),
            "SCENARIO_RUNNER_ROOT": str(runner), "ROUTES": str(routes), "TEAM_CONFIG": str(policy)}


@pytest.mark.parametrize("script", ALL)
def test_syntax_and_help(script):
    assert subprocess.run(["bash", "-n", str(SCRIPTS / script)]).returncode == 0
    result = run(script, "--help")
    assert result.returncode == 0 and "Usage: scripts/" + script in result.stdout


@pytest.mark.parametrize("script, world, expected", [
    ("start_carla.sh", "carla", {"CARLA_ROOT"}),
    ("run_evaluation.sh", "carla", {"CARLA_ROOT", "LEADERBOARD_ROOT", "SCENARIO_RUNNER_ROOT", "ROUTES"}),
    ("run_evaluation.sh", "embedded", {"ROUTES", "TOWN"}),
    ("collect_data.sh", "carla", {"WORK_DIR"}),
    ("collect_data.sh", "embedded", {"WORK_DIR", "ROUTES", "TOWN"}),
    ("relabel.sh", "embedded", {"DATA_DIR"}),
    ("train.sh", "embedded", {"WORK_DIR"}),
    ("dagger_carla.sh", "carla", {"WORK_DIR", "ROUTES", "CHECKPOINT", "CARLA_ROOT", "LEADERBOARD_ROOT",
                                  "SCENARIO_RUNNER_ROOT"}),
    ("dagger_carla.sh", "embedded", {"WORK_DIR", "ROUTES", "CHECKPOINT", "TOWN"}),
])
def test_missing_variables_are_named(script, world, expected):
    assert missing_names(run(script, "--world", world)) == expected


def test_only_the_missing_variable_is_named(fake_carla):
    variables = dict(fake_carla)
    del variables["SCENARIO_RUNNER_ROOT"]
    assert missing_names(run("run_evaluation.sh", **variables)) == {"SCENARIO_RUNNER_ROOT"}


def test_bad_world_and_bad_paths(fake_carla, tmp_path):
    result = run("run_evaluation.sh", "--world", "mars")
    assert result.returncode == 2 and "unknown world 'mars'" in result.stderr
    result = run("run_evaluation.sh", **{**fake_carla, "ROUTES": str(tmp_path / "none.xml")})
    assert result.returncode == 2 and "ROUTES=" in result.stderr and "no such file" in result.stderr
    result = run("run_evaluation.sh", **{**fake_carla, "SCENARIO_RUNNER_ROOT": str(tmp_path)})
    assert result.returncode == 2 and "srunner is missing" in result.stderr


def test_langprop_agent_needs_a_policy(fake_carla):
    variables = {k: v for k, v in fake_carla.items() if k != "TEAM_CONFIG"}
    result = run("run_evaluation.sh", "--dry-run", **variables)
    assert result.returncode == 2
    assert "TEAM_CONFIG" in result.stderr and "LANGPROP_CHECKPOINT" in result.stderr
    assert run("run_evaluation.sh", "--dry-run", LANGPROP_CHECKPOINT=fake_carla["TEAM_CONFIG"],
               **variables).returncode == 0


def command_words(result: subprocess.CompletedProcess) -> list[str]:
    """The words of the command a --dry-run printed (its last line; the line before exports PYTHONPATH)."""
    return shlex.split(result.stdout.strip().splitlines()[-1])


def printed_pythonpath(result: subprocess.CompletedProcess) -> list[str]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("export PYTHONPATH=")]
    assert len(lines) == 1, result.stdout
    return shlex.split(lines[0].removeprefix("export "))[0].removeprefix("PYTHONPATH=").split(":")


def test_leaderboard_2_command(fake_carla):
    result = run("run_evaluation.sh", "--dry-run", PORT="2010", TM_PORT="8010", **fake_carla)
    assert result.returncode == 0, result.stderr
    words = command_words(result)
    assert words[0] == sys.executable
    assert words[1].endswith("leaderboard/leaderboard_evaluator.py")
    assert f"--routes={fake_carla['ROUTES']}" in words
    assert "--traffic-manager-port=8010" in words and "--port=2010" in words
    assert f"--agent={REPO_ROOT}/team_code/langprop_agent.py" in words
    assert f"--agent-config={fake_carla['TEAM_CONFIG']}" in words
    assert "--track=SENSORS" in words and "--repetitions=1" in words
    assert f"--checkpoint={REPO_ROOT}/results/routes.json" in words
    # --resume is parsed as bool(str): it must be absent unless resuming.
    assert not any(w.startswith("--resume") for w in words)
    assert not any(w.startswith("--scenarios") for w in words)
    resumed = command_words(run("run_evaluation.sh", "--dry-run", RESUME="1", **fake_carla))
    assert "--resume=True" in resumed


def test_leaderboard_1_needs_scenarios(fake_carla, tmp_path):
    evaluator = Path(fake_carla["LEADERBOARD_ROOT"]) / "leaderboard" / "leaderboard_evaluator.py"
    evaluator.write_text("parser.add_argument('--trafficManagerPort', default='8000')\n")
    assert missing_names(run("run_evaluation.sh", "--dry-run", **fake_carla)) == {"SCENARIOS"}
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text("{}")
    result = run("run_evaluation.sh", "--dry-run", SCENARIOS=str(scenarios), **fake_carla)
    words = command_words(result)
    assert f"--scenarios={scenarios}" in words and "--trafficManagerPort=8000" in words
    assert not any(w.startswith("--traffic-manager-port") for w in words)
    # The leaderboard's own scenario file is the default when it is there.
    default = Path(fake_carla["LEADERBOARD_ROOT"]) / "data" / "all_towns_traffic_scenarios_public.json"
    default.parent.mkdir()
    default.write_text("{}")
    result = run("run_evaluation.sh", "--dry-run", **fake_carla)
    assert f"--scenarios={default}" in command_words(result)
    assert "SCENARIOS not set" in result.stderr


def test_embedded_evaluation_runs_langprop_evaluate(fake_carla):
    result = run("run_evaluation.sh", "--world", "embedded", "--dry-run", "--", "--pictures", "pics",
                 ROUTES=fake_carla["ROUTES"], TOWN="Town01", TEAM_CONFIG=fake_carla["TEAM_CONFIG"],
                 TRAFFIC="busy", SEED="4", CHECKPOINT_ENDPOINT="out.json")
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout.strip())
    assert words[:4] == ["langprop", "evaluate", "--world", "embedded"]
    pairs = dict(zip(words[4::2], words[5::2]))
    assert pairs["--town"] == "Town01" and pairs["--routes"] == fake_carla["ROUTES"]
    assert pairs["--agent"] == f"{REPO_ROOT}/team_code/langprop_agent.py"
    assert pairs["--agent-config"] == fake_carla["TEAM_CONFIG"] and pairs["--results"] == "out.json"
    assert pairs["--traffic"] == "busy" and pairs["--seed"] == "4"
    assert "--no-resume" in words and words[-2:] == ["--pictures", "pics"]


def test_collect_data_uses_the_expert_and_records(fake_carla, tmp_path):
    result = run("collect_data.sh", "--dry-run", WORK_DIR=str(tmp_path / "work"), **fake_carla)
    assert result.returncode == 0, result.stderr
    words = command_words(result)
    assert f"--agent={REPO_ROOT}/team_code/expert_agent.py" in words
    assert f"--checkpoint={tmp_path}/work/collect/results.json" in words
    result = run("collect_data.sh", "--world", "embedded", "--dry-run", WORK_DIR="w", ROUTES=fake_carla["ROUTES"],
                 TOWN="Town01", WORKERS="3")
    assert shlex.split(result.stdout.strip()) == ["langprop", "collect", "--town", "Town01", "--routes",
                                                  fake_carla["ROUTES"], "--work-dir", "w", "--workers", "3"]


def test_relabel_and_train_commands(tmp_path):
    data = tmp_path / "work" / "data"
    result = run("relabel.sh", WORK_DIR=str(tmp_path / "work"))
    assert result.returncode == 2 and "DATA_DIR=" in result.stderr and "no such directory" in result.stderr
    result = run("train.sh", WORK_DIR=str(tmp_path / "work"))
    assert result.returncode == 2 and "no scene dataset" in result.stderr and "collect_data.sh" in result.stderr
    data.mkdir(parents=True)
    result = run("relabel.sh", DATA_DIR=str(data))
    assert result.returncode == 2 and "index.json is missing" in result.stderr
    (data / "index.json").write_text("{}")
    result = run("relabel.sh", "--dry-run", WORK_DIR=str(tmp_path / "work"), OUT_DIR="labelled")
    assert shlex.split(result.stdout.strip()) == ["langprop", "relabel", str(data), "--out", "labelled"]
    result = run("train.sh", "--dry-run", "--", "--optimizer", "mutation", WORK_DIR=str(tmp_path / "work"),
                 EPOCHS="3", RUN_NAME="r1")
    assert shlex.split(result.stdout.strip()) == [
        "langprop", "train", "--work-dir", str(tmp_path / "work"), "--dataset", str(data), "--name", "r1",
        "--epochs", "3", "--optimizer", "mutation"]


def pairs_of(words: list[str]) -> dict[str, str]:
    """``--option value`` pairs of a command's words (flags without a value are not expected here)."""
    return {word: words[i + 1] for i, word in enumerate(words[:-1]) if word.startswith("--")}


def test_dagger_embedded_and_carla_plans(fake_carla, tmp_path):
    work = tmp_path / "work"
    policy = fake_carla["TEAM_CONFIG"]
    result = run("dagger_carla.sh", "--world", "embedded", "--dry-run", WORK_DIR=str(work),
                 ROUTES=fake_carla["ROUTES"], CHECKPOINT=policy, TOWN="T", DAGGER_BETA="0.5", ITERATIONS="3")
    words = shlex.split(result.stdout.strip())
    assert words[:2] == ["langprop", "dagger"]
    pairs = dict(zip(words[2::2], words[3::2]))
    assert pairs["--checkpoint"] == policy and pairs["--iterations"] == "3" and pairs["--beta"] == "0.5"

    variables = {k: v for k, v in fake_carla.items() if k != "TEAM_CONFIG"}
    result = run("dagger_carla.sh", "--dry-run", WORK_DIR=str(work), CHECKPOINT=policy, DAGGER_BETA="0.5",
                 ITERATIONS="2", **variables)
    assert result.returncode == 0, result.stderr
    evaluations = [shlex.split(line) for line in result.stdout.splitlines() if "leaderboard_evaluator.py" in line]
    trains = [shlex.split(line) for line in result.stdout.splitlines() if line.startswith("langprop train")]
    imports = [shlex.split(line) for line in result.stdout.splitlines() if line.startswith("langprop import-rollout")]
    assert len(evaluations) == 2 and len(trains) == 2
    # each run's recording is imported with its results (infraction marks), not plainly relabelled
    assert not any(line.startswith("langprop relabel") for line in result.stdout.splitlines())
    assert len(imports) == 2
    for i, words in enumerate(imports, start=1):
        stage = work / "carla" / f"dagger-{i}"
        assert words[2] == str(stage / "recorded")
        pairs = dict(zip(words[3::2], words[4::2]))
        assert pairs == {"--results": str(stage / "results.json"), "--work-dir": str(work),
                         "--stage": f"carla-dagger-{i}"}
    # the import comes after its run and before the training it feeds
    lines = result.stdout.splitlines()
    order = [("eval" if "leaderboard_evaluator.py" in line else "import" if "import-rollout" in line
              else "train") for line in lines
             if "leaderboard_evaluator.py" in line or line.startswith(("langprop import-rollout", "langprop train"))]
    assert order == ["eval", "import", "train"] * 2
    assert pairs_of(trains[0])["--dataset"] == str(work / "data")
    assert f"--agent={REPO_ROOT}/team_code/langprop_agent.py" in evaluations[0]
    config = json.loads((work / "carla" / "dagger-2" / "agent.json").read_text())
    assert config["dagger_beta"] == pytest.approx(0.25)  # beta * decay^(i-1)
    assert config["checkpoint"] == str(work / "train" / "carla-dagger-1")
    assert config["record_dir"] == str(work / "carla" / "dagger-2" / "recorded")
    first = json.loads((work / "carla" / "dagger-1" / "agent.json").read_text())
    assert first["checkpoint"] == policy and first["dagger_beta"] == 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_start_carla_checks_version_and_waits_for_the_port(tmp_path):
    carla_root = tmp_path / "carla"
    carla_root.mkdir()
    assert run("start_carla.sh", CARLA_ROOT=str(carla_root)).stderr.count("no executable CarlaUE4.sh") == 1
    server = carla_root / "CarlaUE4.sh"
    # A stand-in server: listens on the -carla-rpc-port it is given.
    server.write_text(
        "#!/usr/bin/env bash\n"
        "for a in \"$@\"; do case $a in -carla-rpc-port=*) port=${a#*=};; esac; done\n"
        f"exec {shlex.quote(sys.executable)} -m http.server \"$port\" --bind 127.0.0.1\n")
    server.chmod(server.stat().st_mode | stat.S_IXUSR)
    (carla_root / "VERSION").write_text("0.9.15\n")
    result = run("start_carla.sh", "--version", "0.9.16", CARLA_ROOT=str(carla_root))
    assert result.returncode == 2 and "version 0.9.15, expected 0.9.16" in result.stderr

    result = run("start_carla.sh", "--dry-run", "--port", "2042", CARLA_ROOT=str(carla_root))
    assert shlex.split(result.stdout.strip()) == [str(server), "-carla-rpc-port=2042", "-nosound", "-RenderOffScreen"]

    port = _free_port()
    pidfile = tmp_path / "carla.pid"
    result = run("start_carla.sh", "--port", str(port), "--wait", "20", "--version", "0.9.15",
                 CARLA_ROOT=str(carla_root), CARLA_PIDFILE=str(pidfile), CARLA_LOG=str(tmp_path / "carla.log"))
    pid = int(pidfile.read_text())
    try:
        assert result.returncode == 0, result.stderr
        assert f"CARLA is up on port {port}" in result.stdout
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        again = run("start_carla.sh", "--port", str(port), CARLA_ROOT=str(carla_root),
                    CARLA_PIDFILE=str(tmp_path / "other.pid"), CARLA_LOG=str(tmp_path / "other.log"))
        assert again.returncode == 2 and "already in use" in again.stderr
    finally:
        os.kill(pid, 15)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    assert run("start_carla.sh", "--world", "embedded").stdout.startswith("The embedded world")


# --- the leaderboard command per version, and PYTHONPATH -------------------------------------------
def python_without_site(tmp_path: Path) -> str:
    """An interpreter of this Python version that has no carla installed (site-packages off)."""
    wrapper = tmp_path / "python-no-site"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -S \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def make_eggs(fake_carla: dict, *tags: str) -> dict[str, Path]:
    dist = Path(fake_carla["CARLA_ROOT"]) / "PythonAPI" / "carla" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    eggs = {}
    for tag in tags:
        eggs[tag] = dist / f"carla-0.9.15-py{tag}-linux-x86_64.egg"
        eggs[tag].write_text("")
    return eggs


THIS_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_dry_run_command_and_pythonpath_per_version(fake_carla, tmp_path, version):
    if version == "1.0":
        evaluator = Path(fake_carla["LEADERBOARD_ROOT"]) / "leaderboard" / "leaderboard_evaluator.py"
        evaluator.write_text("parser.add_argument('--trafficManagerPort', default='8000')\n"
                             "parser.add_argument('--routes-subset', default='')\n")
        scenarios = tmp_path / "scenarios.json"
        scenarios.write_text("{}")
        fake_carla = {**fake_carla, "SCENARIOS": str(scenarios)}
    eggs = make_eggs(fake_carla, "2.7", THIS_PYTHON)
    results = tmp_path / "out" / "run.json"
    result = run("run_evaluation.sh", "--dry-run", ROUTES_SUBSET="0-2", CHECKPOINT_ENDPOINT=str(results),
                 PYTHON=python_without_site(tmp_path), **fake_carla)
    assert result.returncode == 0, result.stderr
    words = command_words(result)
    assert "--routes-subset=0-2" in words
    if version == "2.0":  # else the live results land in ./live_results.txt
        assert f"--debug-checkpoint={tmp_path}/out/run_live.txt" in words
    else:  # 1.0 has no such option
        assert not any(w.startswith("--debug-checkpoint") for w in words)
    # the egg of this Python first, then the order of the leaderboard's docs; never the 2.7 egg
    carla_root = fake_carla["CARLA_ROOT"]
    assert printed_pythonpath(result)[:5] == [
        str(eggs[THIS_PYTHON]), f"{carla_root}/PythonAPI/carla", fake_carla["SCENARIO_RUNNER_ROOT"],
        fake_carla["LEADERBOARD_ROOT"], str(REPO_ROOT)]
    assert str(eggs["2.7"]) not in result.stdout
    assert f"egg for Python {THIS_PYTHON}" in result.stderr
    assert not results.parent.exists()  # a dry run creates nothing


def test_installed_carla_wheel_wins_over_eggs(fake_carla):
    make_eggs(fake_carla, THIS_PYTHON)
    result = run("run_evaluation.sh", "--dry-run", **fake_carla)  # this venv has the carla wheel
    assert result.returncode == 0, result.stderr
    assert printed_pythonpath(result)[0] == f"{fake_carla['CARLA_ROOT']}/PythonAPI/carla"
    assert ".egg" not in result.stdout and "carla client: installed" in result.stderr


def test_only_another_pythons_egg_is_an_error(fake_carla, tmp_path):
    make_eggs(fake_carla, "2.7")
    result = run("run_evaluation.sh", "--dry-run", PYTHON=python_without_site(tmp_path), **fake_carla)
    assert result.returncode == 2
    assert f"no carla client for Python {THIS_PYTHON}" in result.stderr
    assert "carla-0.9.15-py2.7-linux-x86_64.egg" in result.stderr


def test_embedded_scripts_pass_scenarios_through(fake_carla, tmp_path):
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text('{"available_scenarios": []}')
    result = run("run_evaluation.sh", "--world", "embedded", "--dry-run", ROUTES=fake_carla["ROUTES"], TOWN="Town01",
                 TEAM_CONFIG=fake_carla["TEAM_CONFIG"], SCENARIOS=str(scenarios))
    words = command_words(result)
    assert dict(zip(words[4::2], words[5::2]))["--scenarios"] == str(scenarios)
    result = run("collect_data.sh", "--world", "embedded", "--dry-run", WORK_DIR="w", ROUTES=fake_carla["ROUTES"],
                 TOWN="Town01", SCENARIOS=str(scenarios))
    assert command_words(result)[-2:] == ["--scenarios", str(scenarios)]
    result = run("dagger_carla.sh", "--world", "embedded", "--dry-run", WORK_DIR="w", ROUTES=fake_carla["ROUTES"],
                 CHECKPOINT=fake_carla["TEAM_CONFIG"], TOWN="T", SCENARIOS=str(scenarios))
    assert command_words(result)[-2:] == ["--scenarios", str(scenarios)]
    result = run("run_evaluation.sh", "--world", "embedded", "--dry-run", ROUTES=fake_carla["ROUTES"], TOWN="Town01",
                 TEAM_CONFIG=fake_carla["TEAM_CONFIG"], SCENARIOS=str(tmp_path / "missing.json"))
    assert result.returncode != 0 and "SCENARIOS" in result.stderr
