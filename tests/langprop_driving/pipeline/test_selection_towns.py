"""Selection that generalises: per-town scores, the margin on every town, routes of several towns."""
from __future__ import annotations

from pathlib import Path

import pytest

from langprop_core.checkpoint import load_checkpoint
from langprop_core.policy import Policy
from langprop_core.selection import SelectByValidation
from tests.helpers.selection import EXACT, NEAR, ROUGH, fit_with_selection

INCUMBENT = "def f(x):\n    return x\n"


class TownValidator:
    """Per-town scores per script source."""

    def __init__(self, scores: dict[str, dict[str, float]]):
        self.scores = scores

    def __call__(self, policies):
        return {p.id: self.scores[p.source] for p in policies}


def _incumbent() -> Policy:
    return Policy.from_source(INCUMBENT, "f", optimizer="file")


def test_a_candidate_worse_on_one_town_by_more_than_the_margin_is_not_deployed(tmp_path):
    scores = {INCUMBENT: {"Town03": 60.0, "Town04": 60.0},
              # best mean (75) but loses 20 on Town04: it learnt Town03, not driving
              EXACT: {"Town03": 110.0, "Town04": 40.0},
              NEAR: {"Town03": 70.0, "Town04": 59.0},   # mean 64.5: gains 4.5, within the margin everywhere
              ROUGH: {"Town03": 10.0, "Town04": 10.0}}
    callback = SelectByValidation(TownValidator(scores), top_k=3, incumbent=_incumbent(), min_gain=2.0)
    _, _, result = fit_with_selection(tmp_path, callback)
    record = load_checkpoint(tmp_path / "run").extra["selection"]
    # EXACT is out (Town04 40 < 60 - 2); NEAR beats the incumbent's mean by more than the margin
    assert result.best_policy.source == NEAR
    assert record["deployed_groups"] == {"Town03": 70.0, "Town04": 59.0}
    assert record["deployed_validation"] == pytest.approx(64.5)
    rows = {r["validation"]: r for r in record["candidates"]}
    assert rows[75.0]["groups"] == {"Town03": 110.0, "Town04": 40.0}
    assert callback.worse_group(callback.record["candidates"][0]["id"], _incumbent().id) == "Town04"


def test_the_incumbent_stays_when_every_better_mean_loses_a_town(tmp_path):
    scores = {INCUMBENT: {"Town03": 60.0, "Town04": 60.0},
              EXACT: {"Town03": 100.0, "Town04": 50.0},
              NEAR: {"Town03": 90.0, "Town04": 55.0},
              ROUGH: {"Town03": 10.0, "Town04": 10.0}}
    callback = SelectByValidation(TownValidator(scores), top_k=3, incumbent=_incumbent(), min_gain=2.0)
    _, module, result = fit_with_selection(tmp_path, callback)
    assert result.best_policy.source == INCUMBENT
    assert callback.record["kept_incumbent"] is True
    # the incumbent's town scores are recorded, so the next stage need not drive it again
    assert callback.record["deployed_groups"] == {"Town03": 60.0, "Town04": 60.0}


def test_validation_routes_run_in_the_towns_their_file_names(tmp_path: Path):
    from langprop_driving.pipeline.config import WorldConfig
    from langprop_driving.pipeline.validation import ValidationConfig, route_towns

    routes = tmp_path / "routes.xml"
    routes.write_text(
        '<?xml version="1.0"?>\n<routes>\n'
        '  <route id="1" town="Town03"><waypoint x="0" y="0" z="0"/><waypoint x="10" y="0" z="0"/></route>\n'
        '  <route id="2" town="Town04"><waypoint x="0" y="0" z="0"/><waypoint x="10" y="0" z="0"/></route>\n'
        '</routes>\n')
    config = ValidationConfig(world=WorldConfig(town="Town03"), routes=routes, route_ids=("1", "2"))
    assert route_towns(config) == {"1": "Town03", "2": "Town04"}
    with pytest.raises(ValueError, match="no route"):
        route_towns(ValidationConfig(world=WorldConfig(town="Town03"), routes=routes, route_ids=("9",)))


def test_dagger_selects_by_driving_on_the_validation_routes_without_a_separate_flag(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    import langprop_driving.pipeline.dagger as dagger_module
    import langprop_driving.cli.pipeline_cmd as pipeline_cmd
    from langprop_driving.cli.pipeline_cmd import dagger_cmd

    seen = {}

    def fake_dagger(work, world, routes, train_ids, val_ids, optimizer, train_config, dagger_config, checkpoint,
                    selection=None, **kw):
        seen["selection"] = selection
        return dagger_module.DaggerOutcome([])

    monkeypatch.setattr(dagger_module, "dagger", fake_dagger)
    # No towns are stored here: the pre-flight checks of towns and routes have their own tests (test_cli_trust).
    monkeypatch.setattr(pipeline_cmd, "_preflight_world", lambda *args: None)
    routes = tmp_path / "routes.xml"
    routes.write_text(
        '<?xml version="1.0"?>\n<routes>\n'
        '  <route id="1" town="Town01"><waypoint x="0" y="0" z="0"/><waypoint x="10" y="0" z="0"/></route>\n'
        '  <route id="6" town="Town03"><waypoint x="0" y="0" z="0"/><waypoint x="10" y="0" z="0"/></route>\n'
        '  <route id="7" town="Town04"><waypoint x="0" y="0" z="0"/><waypoint x="10" y="0" z="0"/></route>\n'
        '</routes>\n')
    script = tmp_path / "seed.py"
    script.write_text("def predict_speed_and_steering(scene):\n    return 'MOVE', 0.0\n")
    out = CliRunner().invoke(dagger_cmd, ["--town", "Town01", "--routes", str(routes), "--route-id", "1",
                                          "--val-route-id", "6", "--val-route-id", "7", "--checkpoint", str(script),
                                          "--work-dir", str(tmp_path / "work"), "--optimizer", "mutation"])
    assert out.exit_code == 0, out.output
    selection = seen["selection"]
    assert selection is not None and selection.route_ids == ("6", "7")
    assert selection.world.town == "Town03"
