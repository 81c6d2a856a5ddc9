"""The scene dataset: appends across runs, streaming order, reopening, corruption errors."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from driving.dataset import DatasetError, SceneDataset, SceneRecord
from driving.labels import DrivingLabel
from driving.scene import validate_scene
from expert.scenarios import make_actor, make_scene


def _records(n: int, route_id: str, controller: str = "expert", labelled: bool = True) -> list[SceneRecord]:
    out = []
    for i in range(n):
        scene = make_scene(speed_mps=float(i), vehicles={7: make_actor(10.0 + i, 0.0, speed_mps=2.0)},
                           timestamp_s=0.05 * i)
        label = DrivingLabel(float(i), -1.5, "MOVE", "free_road") if labelled else None
        out.append(SceneRecord(scene, label, {"route_id": route_id, "time_s": np.float64(0.05 * i),
                                              "controller": controller}))
    return out


def test_append_twice_keeps_both_runs_in_order_and_reopens(tmp_path):
    root = tmp_path / "data"
    ds = SceneDataset(root)
    first = ds.append(_records(3, "r0"), run_id="run-a")
    second = ds.append(_records(2, "r1", controller="policy", labelled=False), run_id="run-b")
    third = ds.append(_records(1, "r0"), run_id="run-a")
    assert len({first, second, third}) == 3 and all(p.is_file() for p in (first, second, third))

    reopened = SceneDataset(root)
    assert len(reopened) == 6
    assert reopened.runs() == ["run-a", "run-b"]
    records = list(reopened)
    assert [r.meta["run_id"] for r in records] == ["run-a"] * 3 + ["run-b"] * 2 + ["run-a"]
    assert [r.scene["ego_forward_speed"] for r in records] == [0.0, 1.0, 2.0, 0.0, 1.0, 0.0]
    for record in records:
        validate_scene(record.scene, strict=True)
        assert isinstance(record.scene["vehicles"][7]["location_world_coord"], np.ndarray)
    assert records[1].label == DrivingLabel(1.0, -1.5, "MOVE", "free_road")
    assert records[3].label is None
    # Iterating twice gives the same stream (the trainer iterates once per epoch).
    assert [r.meta["time_s"] for r in reopened] == [r.meta["time_s"] for r in records]


def test_filters(tmp_path):
    ds = SceneDataset(tmp_path)
    ds.append(_records(3, "r0"), run_id="a")
    ds.append(_records(2, "r1", controller="policy", labelled=False), run_id="b")
    assert len(ds.filter(run_ids=["b"])) == 2
    assert len(ds.filter(route_ids=["r0"])) == 3
    assert len(ds.filter(controller="policy")) == 2
    assert len(ds.filter(labelled=True)) == 3
    fast = ds.filter(predicate=lambda r: r.scene["ego_forward_speed"] >= 1.0)
    assert sorted(r.scene["ego_forward_speed"] for r in fast) == [1.0, 1.0, 2.0]


def test_corrupt_chunk_error_names_the_file(tmp_path):
    ds = SceneDataset(tmp_path)
    ds.append(_records(2, "r0"), run_id="good")
    bad = ds.append(_records(2, "r0"), run_id="bad")
    bad.write_bytes(gzip.compress(b"{not json\n")[:-6])
    with pytest.raises(DatasetError, match=bad.name):
        list(ds)
    bad.write_bytes(gzip.compress(b'{"scene": {}}\n{broken\n'))
    with pytest.raises(DatasetError, match=rf"{bad.name}: line 2"):
        list(ds)
    assert len(list(ds.filter(run_ids=["good"]))) == 2


def test_missing_chunk_and_bad_index_are_named(tmp_path):
    ds = SceneDataset(tmp_path)
    path = ds.append(_records(1, "r0"), run_id="x")
    path.unlink()
    with pytest.raises(DatasetError, match="missing"):
        list(ds)
    (tmp_path / "index.json").write_text("{oops")
    with pytest.raises(DatasetError, match="index.json"):
        len(ds)


def test_rejects_bad_run_id_and_non_records(tmp_path):
    ds = SceneDataset(tmp_path)
    with pytest.raises(DatasetError, match="run_id"):
        ds.append(_records(1, "r"), run_id="../escape")
    with pytest.raises(DatasetError, match="record 0"):
        ds.append([{"scene": {}}], run_id="ok")  # type: ignore[list-item]
    assert len(ds) == 0 and ds.runs() == []


def test_index_is_plain_json(tmp_path):
    ds = SceneDataset(tmp_path)
    ds.append(_records(2, "r0"), run_id="a")
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["format"] == "langprop-scenes" and index["version"] == 1
    assert index["chunks"][0]["n_records"] == 2 and index["chunks"][0]["run_id"] == "a"


def _append_many(root: str, run_id: str) -> None:
    ds = SceneDataset(root)
    for _ in range(5):
        ds.append(_records(1, "r"), run_id=run_id)


def test_parallel_writers_lose_nothing(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), f"w{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    ds = SceneDataset(tmp_path)
    assert len(ds) == 15 and sorted(ds.runs()) == ["w0", "w1", "w2"]
    assert len(list(ds)) == 15
    assert len(list((tmp_path / "chunks").glob("*.jsonl.gz"))) == 15
