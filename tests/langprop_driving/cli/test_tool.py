"""The ``langprop`` command as one tool: errors as one line, --debug, --version, LLM budgets from the CLI."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from langprop_driving.cli import main
from langprop_driving.cli.errors import EXIT_BUDGET
from tests.helpers.driving_records import make_dataset
from tests.helpers.scripted_training import fence


def test_version():
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and out.output.startswith("langprop ")


def test_bad_input_is_one_line_and_exit_1_and_debug_shows_the_traceback(tmp_path):
    args = ["train", "--work-dir", str(tmp_path / "work"), "--optimizer", "mutation"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(tmp_path / "work" / "data") in lines[0]
    assert "Traceback" not in out.output
    debug = CliRunner().invoke(main, ["--debug", *args])
    assert debug.exit_code == 1 and isinstance(debug.exception, ValueError)  # raised, with its traceback


def test_train_stops_at_the_call_budget_and_goes_on_with_a_larger_one(tmp_path, fake_llm_server, monkeypatch):
    counter = itertools.count()
    fake_llm_server.responder = lambda messages: fence(
        f"def predict_speed_and_steering(scene):\n    return 'MOVE', {next(counter) % 7}.0\n")
    monkeypatch.setenv("LANGPROP_LLM_BASE_URL", fake_llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("LANGPROP_LLM_MODEL", "fake-model")
    make_dataset(tmp_path / "work" / "data")
    prices = tmp_path / "prices.json"
    prices.write_text('{"fake-model": {"input": 1.0, "output": 4.0}}')
    args = ["train", "--work-dir", str(tmp_path / "work"), "--route-id", "1", "--optimizer", "openai",
            "--epochs", "2", "--batch-size", "16", "--record-stride", "1", "--sandbox", "inprocess",
            "--llm-prices", str(prices)]
    out = CliRunner().invoke(main, [*args, "--max-llm-calls", "1"])
    assert out.exit_code == EXIT_BUDGET, out.output
    assert "stopped: LLM call budget reached" in out.output and "run again with a larger budget" in out.output
    spent = len(fake_llm_server.chat_requests)
    assert spent >= 1
    marker = tmp_path / "work" / "stages" / "train-offline.json"
    assert not marker.exists()  # not done: a rerun resumes it

    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    total = len(fake_llm_server.chat_requests)
    assert total > spent
    tokens_in = sum(u["prompt_tokens"] for u in fake_llm_server.reported_usage)
    tokens_out = sum(u["completion_tokens"] for u in fake_llm_server.reported_usage)
    assert (f"LLM: {total} LLM calls (0 replayed from the cache), {tokens_in} tokens in, {tokens_out} out, "
            f"estimated cost {(tokens_in + 4 * tokens_out) / 1e6:.4f}") in out.output
    assert marker.exists()


@pytest.mark.parametrize("command", ["collect", "dagger", "evaluate"])
def test_the_same_world_options_everywhere(command):
    out = CliRunner().invoke(main, [command, "--help"])
    assert out.exit_code == 0
    for option in ("--towns-dir", "--traffic", "--seed", "--workers", "--backend", "--ray-address"):
        assert option in out.output, (command, option)


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(command line, the file its one-line error must name) for each command."""
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{ this is not json")
    routes = tmp_path / "routes.xml"
    routes.write_text("<routes><route id='0'")
    empty = tmp_path / "no_dataset"
    empty.mkdir()
    net = tmp_path / "town.xodr"
    net.write_text("not an OpenDRIVE file")
    return [
        (["results", str(garbage)], str(garbage)),
        (["routes", "show", str(routes), "--no-plan"], str(routes)),
        (["evaluate", "--routes", str(routes), "--agent", "expert", "--towns-dir", str(tmp_path)], str(routes)),
        (["collect", "--town", "T", "--routes", str(routes), "--towns-dir", str(tmp_path),
          "--work-dir", str(tmp_path / "w")], str(routes)),
        (["relabel", str(empty)], str(empty)),  # a usage error: click's exit code 2
        (["import-rollout", str(empty), "--results", str(garbage), "--work-dir", str(tmp_path / "w")],
         str(garbage)),
        (["town", "import", str(net), "--towns-dir", str(tmp_path / "towns")], str(net)),
    ]


def test_every_command_reports_bad_input_as_one_line(tmp_path):
    for args, named in _bad_inputs(tmp_path):
        out = CliRunner().invoke(main, args)
        lines = out.output.strip().splitlines()
        assert out.exit_code == (2 if args[0] == "relabel" else 1), (args, out.output)
        assert "Traceback" not in out.output, (args, out.output)
        errors = [line for line in lines if line.startswith("Error: ")]
        assert len(errors) == 1 and named in errors[0], (args, out.output)
