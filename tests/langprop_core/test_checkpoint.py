"""Checkpoints: atomic layout, lineage kept, original LangProp layout, inference."""
from __future__ import annotations

import json

import pytest

from langprop_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from langprop_common.files import atomic_write_text
from langprop_core.inference import load_policy
from langprop_core.policy import Policy
from langprop_core.sandbox import ScriptError

A = "def f(x):\n    return x + 1\n"
B = "def f(x):\n    # raises on negatives\n    if x < 0:\n        raise ValueError('negative')\n    return x * 10\n"


def _population():
    a = Policy.from_source(A, "f", generation=0, optimizer="llm", scores=[0.2, 0.4], priority=0.31,
                           sampling={"model": "gpt-x", "temperature": 0.7, "n": 2},
                           prompt=[{"role": "user", "content": "write f"}], reply="```python\n...```")
    b = Policy.from_source(B, "f", parent_id=a.id, generation=1, optimizer="llm", scores=[0.9],
                           priority=0.9, sampling={"model": "gpt-x", "temperature": 0.7, "n": 2})
    return [b, a]


def test_roundtrip_keeps_ranking_lineage_and_sampling(tmp_path):
    pop = _population()
    save_checkpoint(tmp_path / "ck", "mod", "f", pop, extra={"note": 1})
    assert (tmp_path / "ck" / "scripts" / f"{pop[0].id}.py").read_text() == B
    ck = load_checkpoint(tmp_path / "ck")
    assert [p.id for p in ck.policies] == [p.id for p in pop]
    assert ck.policies == pop
    assert ck.best.parent_id == pop[1].id
    assert ck.best.sampling["model"] == "gpt-x"
    assert ck.extra == {"note": 1}
    assert not list((tmp_path / "ck").glob(".*tmp"))


def test_dropped_scripts_are_removed(tmp_path):
    pop = _population()
    save_checkpoint(tmp_path, "mod", "f", pop)
    save_checkpoint(tmp_path, "mod", "f", pop[:1])
    assert sorted(p.name for p in (tmp_path / "scripts").iterdir()) == [f"{pop[0].id}.py"]


def test_missing_script_and_bad_json_are_named(tmp_path):
    pop = _population()
    save_checkpoint(tmp_path, "mod", "f", pop)
    (tmp_path / "scripts" / f"{pop[1].id}.py").unlink()
    with pytest.raises(CheckpointError, match=r"policies\[1\]"):
        load_checkpoint(tmp_path)
    atomic_write_text(tmp_path / "index.json", "{not json")
    with pytest.raises(CheckpointError, match="index.json: invalid JSON at line 1"):
        load_checkpoint(tmp_path)


def _original_layout(root):
    root.mkdir()
    config = {"name": "f", "step": 10, "records": {
        "0": {"main": {"priority": 0.5, "past_priority": 0, "past_weight": 0, "count": 20,
                       "avg_score": 0.5}},
        "1": {"main": {"priority": 0.8, "past_priority": 0, "past_weight": 0, "count": 20,
                       "avg_score": 0.8}}}}
    (root / "config.json").write_text(json.dumps(config))
    (root / "record_0.txt").write_text(A)
    (root / "record_1.txt").write_text(B)
    return root


def test_original_langprop_layout_loads_ranked_by_priority(tmp_path):
    ck = load_checkpoint(_original_layout(tmp_path / "orig"))
    assert ck.source_format == "langprop-original"
    assert [p.source for p in ck.policies] == [B, A]
    assert ck.best.priority == 0.8 and ck.best.n_calls == 20


def test_original_layout_with_a_bad_record_key_is_named(tmp_path):
    root = _original_layout(tmp_path / "orig")
    config = json.loads((root / "config.json").read_text())
    config["records"]["best"] = config["records"].pop("1")
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: record key 'best'"):
        load_checkpoint(root)


def test_original_layout_with_missing_record_files_loads_the_rest_and_warns(tmp_path, caplog):
    root = _original_layout(tmp_path / "orig")
    (root / "record_1.txt").unlink()
    with caplog.at_level("WARNING", logger="langprop_core.checkpoint"):
        ck = load_checkpoint(root)
    assert [p.source for p in ck.policies] == [A] and ck.missing == ["record_1.txt"]
    assert "lists 1 record(s) whose files are missing: record_1.txt" in caplog.text
    (root / "record_0.txt").unlink()
    with pytest.raises(CheckpointError, match="none of its 2 records has a file"):
        load_checkpoint(root)


@pytest.mark.parametrize("sandbox", [True, False])
def test_best_script_that_does_not_compile_fails_at_loading_with_file_and_line(tmp_path, sandbox):
    broken = Policy.from_source("def f(x):\n    return x +\n", "f", priority=0.99)
    save_checkpoint(tmp_path / "ck", "mod", "f", [broken, *_population()])
    with pytest.raises(CheckpointError) as info:
        load_policy(tmp_path / "ck", sandbox=sandbox)
    assert f"scripts/{broken.id}.py:2: the best script of checkpoint 'mod' does not compile" in str(info.value)


@pytest.mark.parametrize("sandbox", [True, False])
def test_load_policy_runs_best_script(tmp_path, sandbox):
    save_checkpoint(tmp_path / "run" / "checkpoints" / "mod", "mod", "f", _population())
    with load_policy(tmp_path / "run", sandbox=sandbox) as fn:
        assert fn(3) == 30
        assert fn.policy_id == _population()[0].id
        with pytest.raises(ScriptError, match="ValueError: negative"):
            fn(-1)


def test_load_policy_from_original_layout_and_plain_file(tmp_path):
    with load_policy(_original_layout(tmp_path / "orig"), sandbox=False) as fn:
        assert fn(2) == 20
    script = tmp_path / "g.py"
    script.write_text("def helper(x):\n    return x\n\ndef g(x):\n    return helper(x) - 1\n")
    with load_policy(script, sandbox=False) as fn:
        assert fn(2) == 1
    with pytest.raises(ScriptError, match="defines no function 'h'"):
        load_policy(script, function_name="h")


def test_sandboxed_policy_times_out(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("def slow(x):\n    while True:\n        pass\n")
    with load_policy(script, timeout_s=0.2) as fn:
        with pytest.raises(ScriptError, match="Timeout"):
            fn(1)


def test_not_a_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path)
