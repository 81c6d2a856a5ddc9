"""``langprop town`` and ``langprop routes`` commands."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from langprop_driving.cli.world_cmd import routes, town
from sumo_world.routes.files import read_routes


def test_town_generate_list_and_routes(tmp_path: Path) -> None:
    runner = CliRunner()
    towns = str(tmp_path / "towns")
    result = runner.invoke(town, ["generate", "Mini", "--size", "3", "--seed", "2", "--towns-dir", towns])
    assert result.exit_code == 0, result.output
    assert "generated town Mini" in result.output and "traffic lights" in result.output
    result = runner.invoke(town, ["list", "--towns-dir", towns])
    assert result.exit_code == 0 and result.output.startswith("Mini")

    out = tmp_path / "routes.xml"
    result = runner.invoke(routes, ["generate", "--town", "Mini", "-n", "2", "--seed", "1", "--out", str(out),
                                    "--min-length", "80", "--max-length", "400", "--towns-dir", towns])
    assert result.exit_code == 0, result.output
    made = read_routes(out)
    assert len(made) == 2 and {r.town for r in made} == {"Mini"}
    result = runner.invoke(routes, ["show", str(out), "--towns-dir", towns])
    assert result.exit_code == 0, result.output
    assert "2 routes" in result.output and result.output.count("planned") == 2


def test_town_import_and_errors(tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    towns = str(tmp_path / "towns")
    result = runner.invoke(town, ["import", str(shared_data / "carla_town01" / "Town01.xodr"), "--towns-dir", towns])
    assert result.exit_code == 0, result.output
    assert "imported town Town01" in result.output
    result = runner.invoke(town, ["import", str(shared_data / "carla_town01" / "Town01.xodr"), "--towns-dir", towns])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(routes, ["generate", "--town", "Town02", "-n", "1", "--out", str(tmp_path / "r.xml"),
                                    "--towns-dir", towns])
    assert result.exit_code != 0
    assert "town 'Town02' not found" in result.output and "Town01" in result.output
    result = runner.invoke(routes, ["show", str(shared_data / "carla_town01" / "routes_town01_training.xml"),
                                    "--towns-dir", towns])
    assert result.exit_code == 0 and result.output.count("planned") == 10


def test_routes_show_reports_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<routes>\n<route id='1' town='T'>\n</routes>")
    result = CliRunner().invoke(routes, ["show", str(bad)])
    assert result.exit_code != 0 and "line 3" in result.output and "bad.xml" in result.output


def test_town_import_with_carla_signal_timing(tmp_path: Path, shared_data: Path) -> None:
    import json

    towns = str(tmp_path / "towns")
    xodr = str(shared_data / "carla_town01" / "Town01.xodr")
    result = CliRunner().invoke(town, ["import", xodr, "--towns-dir", towns, "--name", "Plain"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(town, ["import", xodr, "--towns-dir", towns, "--name", "Carla", "--carla-signals"])
    assert result.exit_code == 0, result.output
    plain = json.loads((tmp_path / "towns" / "Plain" / "town.json").read_text())
    carla = json.loads((tmp_path / "towns" / "Carla" / "town.json").read_text())
    assert "signal_plans" not in plain
    assert carla["signal_plans"]["kind"] == "carla" and carla["signal_plans"]["lights"] > 0
