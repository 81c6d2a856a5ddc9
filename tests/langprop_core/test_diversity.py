"""Distinct behaviours on purpose: probe signatures, niches, islands, novelty and dead-logic rejection."""
from __future__ import annotations

from pathlib import Path

from langprop_core.diversity import Archive, Behaviour, BehaviourSpace, niche_label, rounded_signature
from langprop_core.metrics import read_metrics
from langprop_core.module import Module
from langprop_core.policy import Policy
from langprop_core.sandbox import SandboxConfig
from langprop_core.task import Task
from langprop_core.trainer import Trainer, TrainerConfig
from tests.helpers.scripted_training import ScriptedOptimizer, fence

PARENT = "def f(x):\n    return x if x < 3 else 0\n"


def _policy(pid: str, priority: float, generation: int = 0) -> Policy:
    return Policy(id=pid, source=f"def f(x):\n    return {pid!r}\n", function_name="f", priority=priority,
                  generation=generation)


def _behaviour(signature: str, niche: int) -> Behaviour:
    return Behaviour(signature=signature, descriptor={"kind": niche})


def test_signature_rounds_floats_and_tells_outputs_apart():
    assert rounded_signature([1.0, (2.0001, "MOVE")]) == rounded_signature([1.0, (2.0, "MOVE")])
    assert rounded_signature([0.0]) == rounded_signature([-0.0])
    assert rounded_signature([1.0, None]) != rounded_signature([1.0, 0.0])
    assert niche_label({"b": 1, "a": 0}) == "a=0,b=1"


def test_survivors_keep_the_best_of_every_niche_before_clones():
    archive = Archive(islands=1)
    ranked = [_policy(f"p{i}", 1.0 - i / 10) for i in range(5)]
    # four clones of niche 0 rank above the only script of niche 1
    for i, policy in enumerate(ranked):
        archive.add(policy, _behaviour(f"s{i}", 1 if i == 4 else 0), island=0)
    kept = archive.survivors(ranked, 3)
    assert [p.id for p in kept] == ["p0", "p1", "p4"]


def test_survivors_keep_the_best_of_every_island():
    archive = Archive(islands=2)
    ranked = [_policy(f"p{i}", 1.0 - i / 10) for i in range(4)]
    for i, policy in enumerate(ranked):
        archive.add(policy, _behaviour(f"s{i}", 0), island=1 if i == 3 else 0)
    assert [p.id for p in archive.survivors(ranked, 2)] == ["p0", "p3"]


def test_parents_are_drawn_across_islands_and_niches_and_migration_is_a_ring():
    archive = Archive(islands=2, migration_interval=2)
    ranked = [_policy(f"p{i}", 1.0 - i / 10) for i in range(4)]
    niches = [0, 0, 1, 2]
    islands = [0, 0, 0, 1]
    for policy, niche, island in zip(ranked, niches, islands):
        archive.add(policy, _behaviour(policy.id, niche), island=island)
    assert [(p.id, i) for p, i in archive.parents(ranked, 2, step=0)] == [("p0", 0), ("p3", 1)]
    assert [(p.id, i) for p, i in archive.parents(ranked, 2, step=1)] == [("p3", 1), ("p0", 0)]
    # one island only: the second parent comes from another niche, not the top clone
    solo = Archive(islands=1)
    for policy, niche in zip(ranked, niches):
        solo.add(policy, _behaviour(policy.id, niche), island=0)
    assert [p.id for p, _ in solo.parents(ranked, 2, step=0)] == ["p0", "p2"]
    assert archive.migrate(ranked, step=1) == []
    assert archive.migrate(ranked, step=2) == [("p0", 0, 1), ("p3", 1, 0)]
    assert archive.island_of(ranked[0]) == {0, 1}
    restored = Archive(islands=2, migration_interval=2)
    restored.load_state_dict(archive.state_dict())
    assert restored.state_dict() == archive.state_dict()


def test_novelty_names_no_change_and_duplicates():
    archive = Archive(islands=1)
    parent, other = _policy("pa", 0.5), _policy("pb", 0.4)
    archive.add(parent, _behaviour("A", 0))
    archive.add(other, _behaviour("B", 1))
    assert archive.novelty(_behaviour("A", 0), parent, [parent, other]) == "no_change"
    assert archive.novelty(_behaviour("B", 1), parent, [parent, other]) == "duplicate_behaviour"
    assert archive.novelty(_behaviour("C", 1), parent, [parent, other]) is None


def _module(tmp_path: Path) -> Module:
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "setup.txt").write_text("%% user\nWrite {{ function_name }}(x) returning twice x.\n")
    (tdir / "update.txt").write_text("%% user\nScore {{ score }}.\n```python\n{{ code }}\n```\n")
    return Module("double", "f", tdir, max_keep=8, seed_sources=[PARENT])


def test_trainer_rejects_dead_logic_and_children_that_behave_like_a_member(tmp_path):
    space = BehaviourSpace(probes=tuple((x,) for x in range(-2, 8)),
                           describe=lambda outs: {"doubles_small": int(outs[3] == 2), "zero_big": int(outs[-1] == 0)})
    task = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label),
                behaviour=space)
    children = {
        "same behaviour, other text": "def f(x):\n    if x >= 3:\n        return 0\n    return x\n",
        "dead condition": "def f(x):\n    if 5.12 < x < 0.5667:\n        return 2 * x\n    return x if x < 3 else 0\n",
        "new": "def f(x):\n    return 2 * x if x < 3 else 0\n",
        "like new": "def f(x):\n    return x + x if x < 3 else 0\n",
        "also new": "def f(x):\n    return 2 * x\n",
    }
    optimizer = ScriptedOptimizer(setup=[], update=[fence(s) for s in children.values()])
    config = TrainerConfig(epochs=1, batch_size=4, n_responses=len(children), top_k=1, islands=2,
                           sandbox=SandboxConfig(workers=1, timeout_s=1.0), progress=False, shuffle=False)
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run")
    module = _module(tmp_path)
    trainer.fit(module, task, list(range(8)), resume=False)

    assert dict(trainer.rejected) == {"no_change": 1, "dead_condition": 1, "duplicate_behaviour": 1}
    sources = {p.source for p in module.population}
    assert {children["new"], children["also new"], PARENT} <= sources
    occupancy = trainer.behaviours(module)
    assert occupancy["distinct"] == len(module.population) == 3
    assert occupancy["n_niches"] == 3
    assert sum(occupancy["islands"].values()) >= 3
    batches = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert batches[0]["behaviours"]["distinct"] == 3
    assert batches[0]["rejected"] == {"no_change": 1, "dead_condition": 1, "duplicate_behaviour": 1}
    assert (tmp_path / "run" / "behaviours.png").is_file()

    # resume restores the archive: no script is probed as new again, islands are kept
    resumed = Trainer(optimizer, config, run_dir=tmp_path / "run")
    again = _module(tmp_path)
    resumed.fit(again, task, list(range(8)), resume=True)
    assert resumed.archive.state_dict() == trainer.archive.state_dict()


def test_a_child_that_fixes_its_failure_cases_is_new_even_where_the_probes_do_not_see_it(tmp_path):
    # the probes cover only x < 3; the prompt's failure cases are x >= 3 (the parent answers 0, not 2x)
    space = BehaviourSpace(probes=tuple((x,) for x in range(-2, 3)), describe=lambda outs: {"n": 0})
    task = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label),
                behaviour=space)
    fix = "def f(x):\n    return x if x < 3 else 2 * x\n"
    no_fix = "def f(x):\n    if x >= 3:\n        return 0\n    return x\n"
    optimizer = ScriptedOptimizer(setup=[], update=[fence(fix), fence(no_fix)])
    config = TrainerConfig(epochs=1, batch_size=4, n_responses=2, top_k=1, progress=False, shuffle=False,
                           sandbox=SandboxConfig(workers=1, timeout_s=1.0))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run")
    module = _module(tmp_path)
    trainer.fit(module, task, list(range(8)), resume=False)
    assert fix in {p.source for p in module.population}
    assert no_fix not in {p.source for p in module.population}
    assert dict(trainer.rejected) == {"no_change": 1}


def test_without_a_behaviour_space_children_that_behave_alike_are_admitted(tmp_path):
    task = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label))
    same = "def f(x):\n    if x >= 3:\n        return 0\n    return x\n"
    optimizer = ScriptedOptimizer(setup=[], update=[fence(same)])
    config = TrainerConfig(epochs=1, batch_size=4, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(workers=1, timeout_s=1.0))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run")
    module = _module(tmp_path)
    trainer.fit(module, task, list(range(8)), resume=False)
    assert same in {p.source for p in module.population}
    assert trainer.behaviours(module) is None


def test_an_empty_island_is_founded_by_a_parent_from_another_niche():
    archive = Archive(islands=2)
    ranked = [_policy("p0", 0.9), _policy("p1", 0.8), _policy("p2", 0.7)]
    for policy, niche in zip(ranked, (0, 0, 1)):
        archive.add(policy, _behaviour(policy.id, niche), island=0)
    assert [(p.id, i) for p, i in archive.parents(ranked, 2, step=0)] == [("p0", 0), ("p2", 1)]


def test_selection_drives_distinct_behaviours_that_the_objective_ties(tmp_path):
    from langprop_core.selection import SelectByValidation

    module = _module(tmp_path)
    module.population = [_policy(f"p{i}", 0.9) for i in range(3)] + [_policy("p3", 0.5)]
    archive = Archive(islands=1)
    for policy, signature in zip(module.population, ("A", "B", "B", "C")):
        archive.add(policy, _behaviour(signature, 0))
    select = SelectByValidation(lambda policies: {}, top_k=3)
    # one per behaviour: p2 behaves like p1; the objective's tie does not hide p1
    assert [p.id for p in select.candidates(module, archive)] == ["p0", "p1", "p3"]
    # without behaviours: one per objective value
    assert [p.id for p in select.candidates(module)] == ["p0", "p3"]
