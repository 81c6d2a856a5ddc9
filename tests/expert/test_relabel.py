"""Relabelling datasets with the expert: appends only, labels right, CLI."""
from __future__ import annotations

from click.testing import CliRunner

from driving.dataset import SceneDataset, SceneRecord
from driving.labels import DrivingLabel
from expert import Expert, relabel_dataset
from langprop_driving.cli.relabel_cmd import relabel
from tests.helpers.expert_rollouts import unlabelled_rollout


def test_relabel_to_new_dataset_keeps_source(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    SceneDataset(src).append(unlabelled_rollout(4), run_id="dagger-0")
    assert relabel_dataset(src, dst, progress=False) == 4
    assert len(SceneDataset(src)) == 4 and all(r.label is None for r in SceneDataset(src))
    out = list(SceneDataset(dst))
    expert = Expert()
    assert [r.label for r in out] == [expert.predict(r.scene) for r in out]
    assert all(r.label.reason == "lead_vehicle" for r in out)
    assert out[0].meta["relabelled_from"] == "dagger-0" and out[0].meta["controller"] == "policy"
    assert out[0].meta["action"] == {"target_speed_mps": 6.0, "steering_deg": 0.0}
    # A second relabel replaces the first one's run instead of adding another (idempotent).
    relabel_dataset(src, dst, progress=False)
    assert len(SceneDataset(dst)) == 4 and SceneDataset(dst).runs() == ["dagger-0-relabel"]


def test_relabel_in_place_appends_after_existing_runs(tmp_path):
    ds = SceneDataset(tmp_path / "d")
    old_label = DrivingLabel(1.0, 0.0, "MOVE", "free_road")
    ds.append([SceneRecord(r.scene, old_label, r.meta) for r in unlabelled_rollout(3)], run_id="expert-0")
    assert relabel_dataset(ds.root, progress=False) == 3
    runs = ds.runs()
    assert runs == ["expert-0", "expert-0-relabel"]
    records = list(ds)
    assert [r.label for r in records[:3]] == [old_label] * 3
    assert all(r.label.reason == "lead_vehicle" for r in records[3:])


def test_relabel_cli(tmp_path):
    src = tmp_path / "src"
    SceneDataset(src).append(unlabelled_rollout(2), run_id="run")
    result = CliRunner().invoke(relabel, [str(src), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "relabelled 2 scenes" in result.output
    assert len(SceneDataset(tmp_path / "out")) == 2
    bad = CliRunner().invoke(relabel, [str(tmp_path)])
    assert bad.exit_code != 0 and "not a scene dataset" in bad.output
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"cruise_speed": 3}')
    bad_cfg = CliRunner().invoke(relabel, [str(src), "--expert-config", str(cfg)])
    assert bad_cfg.exit_code != 0 and "cruise_speed" in bad_cfg.output
