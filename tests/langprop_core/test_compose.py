"""Modules that call each other: a frozen dependency loaded beside every script,
in training (sandboxed), in checkpoints and in inference."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from langprop_core.checkpoint import load_checkpoint, save_checkpoint
from langprop_core.inference import load_policy
from langprop_core.module import Module
from langprop_core.sandbox import Dependency, SandboxConfig, ScriptError, ScriptRunner
from langprop_core.task import Task, score_call
from langprop_core.trainer import Trainer, TrainerConfig
from tests.helpers.scripted_training import ScriptedOptimizer, fence

FEATURE = ('def feature(x):\n    """Square of x; refuses negative inputs."""\n'
           '    if x < 0:\n        raise ValueError("negative input %d" % x)\n    return x * x\n')
PREDICT_WRONG = "def predict(x):\n    return feature(x)\n"
PREDICT_RIGHT = "def predict(x):\n    return feature(x) + 1\n"
TASK = Task(preprocess=lambda x: ((x,), x * x + 1),
            objective=lambda out, label, args: 1.0 if out == label else 0.0, exception_score=-1.0)


def _templates(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "setup.txt").write_text(
        "%% user\nWrite {{ function_name }}(x). You may call:\n{{ dependencies_text }}\n"
        "{% for d in dependencies %}[{{ d.module }}]{% endfor %}\n")
    (root / "update.txt").write_text("%% user\nImprove (score {{ score }}):\n{{ code }}\n"
                                     "Callable: {{ dependencies_text }}\n")
    return root


def _feature_module(tmp_path: Path, seed: str = FEATURE) -> Module:
    return Module("b", "feature", _templates(tmp_path / "tb"), seed_sources=[seed])


def test_train_a_with_frozen_b_sandboxed_then_infer_through_load_policy(tmp_path):
    run = tmp_path / "run"
    # B was trained earlier: its checkpoint sits beside A's in the run directory.
    trained_b = _feature_module(tmp_path)
    trained_b.seed()
    save_checkpoint(run / "checkpoints" / "b", "b", "feature", trained_b.population)
    b = Module("b", "feature", _templates(tmp_path / "tb"))
    b.load_checkpoint(run / "checkpoints" / "b")
    a = Module("a", "predict", _templates(tmp_path / "ta"), depends_on=[b])

    optimizer = ScriptedOptimizer([fence(PREDICT_WRONG)], [fence(PREDICT_RIGHT)])
    config = TrainerConfig(epochs=2, batch_size=4, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(workers=2, timeout_s=2.0))
    result = Trainer(optimizer, config, run_dir=run).fit(a, TASK, list(range(8)), val_data=[9, 10])

    assert result.best_policy.source == PREDICT_RIGHT
    assert result.best_policy.priority == 1.0
    wrong = next(p for p in a.population if p.source == PREDICT_WRONG)
    assert wrong.n_exceptions == 0 and wrong.priority == 0.0  # it ran and called feature()
    setup_text = optimizer.requests[0].messages[0].content
    assert "- feature(x): Square of x; refuses negative inputs." in setup_text
    assert "[b]" in setup_text
    assert "Callable: - feature(x)" in optimizer.requests[1].messages[0].content
    # B was frozen: untouched by A's training.
    assert [p.source for p in b.population] == [FEATURE]

    index = json.loads((run / "checkpoints" / "a" / "index.json").read_text())
    (dep,) = index["dependencies"]
    assert (dep["module"], dep["function_name"], dep["policy_id"]) == ("b", "feature", b.best().id)
    assert (run / "checkpoints" / "a" / dep["file"]).read_text() == FEATURE

    # The run directory holds a and b; a (the module nobody depends on) is the policy.
    for sandbox in (True, False):
        with load_policy(run, sandbox=sandbox) as fn:
            assert fn.policy_id == result.best_policy.id
            assert [fn(x) for x in (3, 12)] == [10, 145]
            with pytest.raises(ScriptError, match="negative input -2"):
                fn(-2)
    with load_policy(run, module="b", sandbox=False) as fn:
        assert fn(4) == 16
    # Without its own copy, the dependency is found by id in the sibling checkpoint.
    shutil.rmtree(run / "checkpoints" / "a" / "dependencies")
    assert load_checkpoint(run).dependencies[0].source == FEATURE
    with load_policy(run / "checkpoints" / "a", sandbox=False) as fn:
        assert fn(5) == 26
    # The module's own handle gives the same callable.
    with a.policy_function(sandbox=False) as fn:
        assert fn(2) == 5


@pytest.mark.parametrize("mode", ["process", "inprocess"])
def test_a_raising_dependency_scores_the_call_as_an_exception(mode):
    dep = Dependency("feature", FEATURE, script_id="pB", module="b")
    with ScriptRunner(SandboxConfig(mode=mode, workers=1, timeout_s=2.0)) as runner:
        res = runner.run_batch({"a": PREDICT_RIGHT}, "predict", [(2,), (-3,)], [dep])
        plain = runner.run_batch({"a": PREDICT_RIGHT}, "predict", [(2,)])
        broken = runner.run_batch({"a": PREDICT_RIGHT}, "predict", [(2,)],
                                  [Dependency("feature", "def feature(x)\n", "pX", "b")])
    ok, failed = res["a"]
    assert ok.output == 5 and ok.exception is None
    assert failed.exception == "ValueError: negative input -3"
    assert "<dependency b pB>" in failed.traceback and "line 4" in failed.traceback
    assert score_call(TASK, failed, 10, (-3,)).score == TASK.exception_score
    assert score_call(TASK, ok, 5, (2,)).score == 1.0
    # Without the dependency the name is unknown; a dependency that does not load fails every call.
    assert "NameError" in plain["a"][0].exception
    assert "LoadError" in broken["a"][0].exception and "dependency 'feature'" in broken["a"][0].exception


def test_training_a_counts_dependency_failures_as_exceptions(tmp_path):
    b = _feature_module(tmp_path)
    b.seed()
    a = Module("a", "predict", _templates(tmp_path / "ta"), depends_on=[b],
               seed_sources=[PREDICT_RIGHT])
    config = TrainerConfig(epochs=1, batch_size=6, n_responses=1, top_k=1, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    trainer = Trainer(ScriptedOptimizer([fence(PREDICT_WRONG)], [fence(PREDICT_WRONG)]), config,
                      run_dir=tmp_path / "r")
    trainer.fit(a, TASK, [-2, -1, 0, 1, 2, 3])
    best = a.best()
    assert best.source == PREDICT_RIGHT
    assert (best.n_calls, best.n_exceptions) == (6, 2)
    assert best.priority == pytest.approx((4 * 1.0 + 2 * TASK.exception_score) / 6)


def test_dependency_errors_are_named(tmp_path):
    empty_b = Module("b", "feature", _templates(tmp_path / "tb"))
    a = Module("a", "predict", _templates(tmp_path / "ta"), depends_on=[empty_b],
               seed_sources=[PREDICT_RIGHT])
    trainer = Trainer(ScriptedOptimizer([fence(PREDICT_RIGHT)], [fence(PREDICT_RIGHT)]),
                      TrainerConfig(progress=False, sandbox=SandboxConfig(mode="inprocess")),
                      run_dir=tmp_path / "r")
    with pytest.raises(LookupError, match="module 'a' depends on module 'b', which has no scripts"):
        trainer.fit(a, TASK, [1, 2])
    with pytest.raises(ValueError, match="same function name 'feature'"):
        Module("c", "feature", _templates(tmp_path / "tc"), depends_on=[empty_b])
    other = Module("b2", "feature", _templates(tmp_path / "tb2"))
    with pytest.raises(ValueError, match="both define 'feature'"):
        Module("c", "g", _templates(tmp_path / "tc"), depends_on=[empty_b, other])


def test_dependencies_of_dependencies_are_loaded(tmp_path):
    c = Module("c", "base", _templates(tmp_path / "tc"), seed_sources=["def base(x):\n    return x + 100\n"])
    b = Module("b", "feature", _templates(tmp_path / "tb"), depends_on=[c],
               seed_sources=["def feature(x):\n    return base(x) * 2\n"])
    a = Module("a", "predict", _templates(tmp_path / "ta"), depends_on=[b],
               seed_sources=[PREDICT_RIGHT])
    for m in (c, b, a):
        m.seed()
    assert [m.name for m in a.all_dependencies()] == ["b", "c"]
    save_checkpoint(tmp_path / "ck" / "a", "a", "predict", a.population, dependencies=a.dependencies())
    with load_policy(tmp_path / "ck" / "a", sandbox=False) as fn:
        assert fn(1) == 203
    with pytest.raises(ValueError, match="cycle"):
        c.depends_on.append(a)
        c._check_dependencies()
