"""The one config loader (langprop_common.config_files): files, commands and TEAM_CONFIG read alike."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from langprop_common.config_files import ConfigError, config_from_file, layered, load_config
from langprop_driving.cli import main
from langprop_driving.model.objective import DrivingObjective
from langprop_driving.pipeline.config import DaggerConfig, TrainConfig, WorldConfig
from team_code.config import load_agent_config


def test_a_nested_file_reaches_every_field_and_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 4\nbalance_scene_kinds: yes\nmax_records: null\nobjective:\n  wait_score: 0.5\n"
                    "  scene_costs: off\n")
    config = config_from_file(TrainConfig, path)
    assert config.epochs == 4 and config.balance_scene_kinds is True and config.max_records is None
    assert config.objective == DrivingObjective(wait_score=0.5, scene_costs=False)  # the rest: its defaults
    assert config.batch_size == TrainConfig().batch_size
    json_file = tmp_path / "train.json"
    json_file.write_text('{"objective": {"horizon_s": 2}, "llm_prices": "prices.json"}')
    config = config_from_file(TrainConfig, json_file)
    assert config.objective.horizon_s == 2.0 and config.llm_prices == Path("prices.json")


@pytest.mark.parametrize("text, message", [
    ("objective:\n  horizn_s: 2\n", r"t\.yaml: unknown key 'objective\.horizn_s'; known keys of objective: .*horizon_s"),
    ("epochz: 2\n", r"unknown key 'epochz'"),
    ("epochs: 1.5\n", r"bad value '1\.5' for 'epochs'"),
    ("objective: 3\n", r"objective must be a mapping"),
    ("objective:\n  steering_tolerance_deg: 0\n", r"t\.yaml: DrivingObjective: steering_tolerance_deg"),
])
def test_a_bad_key_or_value_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_file(TrainConfig, path)
    assert "\n" not in str(caught.value)


def test_text_values_take_the_field_type_not_yaml_guesses():
    world = load_config(WorldConfig, {"town": "Town01", "seed": "007", "pictures": "on",
                                      "ray_resources": [["carla_server", "1"]]}, "test")
    assert world.seed == 7 and world.pictures is True and world.ray_resources == (("carla_server", 1.0),)
    assert load_config(DaggerConfig, {"expert_share": "~"}, "test").expert_share is None
    assert layered({"a": 1, "o": {"x": 1, "y": 2}}, {"o": {"x": 3}}, {"a": 4}) == {"a": 4, "o": {"x": 3, "y": 2}}


def test_team_config_files_go_through_the_same_loader(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("route_id: 007\nsandbox: no\ntimeout_s: 5\nrecord_dir:\n")
    config = load_agent_config(str(path), environ={})
    assert config.route_id == "007" and config.sandbox is False and config.timeout_s == 5.0
    assert config.record_dir is None  # an empty value leaves the default (or the environment's)
    path.write_text("sandbox:\n  nested: true\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml: bad value .* for 'sandbox'"):
        load_agent_config(str(path), environ={})


def test_train_config_file_on_the_command_line_and_options_that_win(tmp_path, monkeypatch):
    import langprop_driving.pipeline.preflight as preflight
    import langprop_driving.pipeline.train as train

    seen = []

    def fake_train_stage(work, name, dataset, train_routes, val_routes, optimizer_config, config, *args, **kwargs):
        seen.append(config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(train, "train_stage", fake_train_stage)
    monkeypatch.setattr(preflight, "check_dataset", lambda path: None)
    (tmp_path / "data").mkdir()
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  epochs: 5\n  batch_size: 7\n  balance_scene_kinds: true\n"
                    "  objective:\n    horizon_s: 2.5\n    wait_score: 0.25\n")
    args = ["train", "--work-dir", str(tmp_path), "--dataset", str(tmp_path / "data"), "--optimizer", "mutation",
            "--config", str(good), "--epochs", "2"]
    CliRunner().invoke(main, args)
    config, = seen
    assert config.epochs == 2 and config.batch_size == 7 and config.balance_scene_kinds is True  # --epochs wins
    assert config.objective.horizon_s == 2.5 and config.objective.wait_score == 0.25

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  objective:\n    horizn_s: 2.5\n")
    result = CliRunner().invoke(main, args[:-4] + ["--config", str(bad)])
    assert result.exit_code == 1
    assert "unknown key 'train.objective.horizn_s'" in result.output and len(seen) == 1
    bad.write_text("trian:\n  epochs: 2\n")
    result = CliRunner().invoke(main, args[:-4] + ["--config", str(bad)])
    assert result.exit_code == 1 and "unknown section 'trian'" in result.output


def test_the_world_section_reaches_the_settings_no_option_sets(tmp_path, monkeypatch):
    import langprop_driving.pipeline.collect as collect
    import langprop_driving.pipeline.preflight as preflight

    seen = []

    def fake_collect(work, world, routes, route_ids=None, stage="collect", progress=True):
        seen.append(world)
        return []

    monkeypatch.setattr(collect, "collect", fake_collect)
    monkeypatch.setattr(preflight, "check_routes", lambda *args: None)
    routes = tmp_path / "routes.xml"
    routes.write_text("<routes/>")
    settings = tmp_path / "settings.yaml"
    settings.write_text("world:\n  blocked_time_s: 12\n  timeout_factor: 2\n  pictures: true\n  seed: 5\n")
    result = CliRunner().invoke(main, ["collect", "--town", "T", "--routes", str(routes), "--route-id", "0",
                                       "--work-dir", str(tmp_path / "w"), "--config", str(settings), "--seed", "9"])
    assert result.exit_code == 0, result.output
    world, = seen
    assert (world.blocked_time_s, world.timeout_factor, world.pictures) == (12.0, 2.0, True)
    assert world.seed == 9 and world.town == "T"  # given on the command line: they win
    assert world.traffic == "default"  # not in the file: the command's default, as without --config
