"""Templates, tasks and the module's population rules."""
from __future__ import annotations

import pytest

from langprop_core.module import Module
from langprop_core.policy import Policy
from langprop_core.sandbox import CallResult
from langprop_core.task import Task, score_call
from langprop_core.templates import TemplateError, render_chat


def _templates(tmp_path):
    (tmp_path / "_common.txt").write_text("Write `{{ function_name }}` for {{ purpose }}.")
    (tmp_path / "setup.txt").write_text(
        "%% system\nYou write code.\n%% user\n{% include '_common.txt' %}\n")
    (tmp_path / "update.txt").write_text(
        "%% system\nYou fix code.\n%% user\n{% include '_common.txt' %}\n"
        "It scored {{ '%.2f'|format(score) }}.\n```python\n{{ code }}\n```\n"
        "{% for case in failures %}- {{ case }}\n{% endfor %}%% assistant\nSure.\n")
    return tmp_path


def test_render_chat_roles_includes_and_variables(tmp_path):
    msgs = render_chat(_templates(tmp_path) / "setup.txt", function_name="f", purpose="doubling")
    assert [m.role for m in msgs] == ["system", "user"]
    assert msgs[1].content == "Write `f` for doubling."


def test_render_chat_errors_name_the_problem(tmp_path):
    _templates(tmp_path)
    with pytest.raises(TemplateError, match="purpose"):
        render_chat(tmp_path / "setup.txt", function_name="f")
    (tmp_path / "bad.txt").write_text("hello\n%% user\nx\n")
    with pytest.raises(TemplateError, match="before the first role line"):
        render_chat(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("%% robot\nx\n")
    with pytest.raises(TemplateError, match="unknown role 'robot'"):
        render_chat(tmp_path / "bad2.txt")
    with pytest.raises(TemplateError, match="not found"):
        render_chat(tmp_path / "missing.txt")


def test_update_prompt_shows_code_score_and_failures(tmp_path):
    module = Module("m", "f", _templates(tmp_path), template_vars={"purpose": "doubling"})
    policy = Policy.from_source("def f(x):\n    return x\n", "f")
    msgs = module.update_prompt(policy, 0.25, ["x=2 expected 4 got 2", "x=3 expected 6 got 3"])
    assert [m.role for m in msgs] == ["system", "user", "assistant"]
    assert "It scored 0.25." in msgs[1].content
    assert "return x" in msgs[1].content and "- x=3 expected 6 got 3" in msgs[1].content


def test_edit_instructions_reach_templates_that_do_not_show_them(tmp_path):
    from langprop_core.llm.edits import EDIT_INSTRUCTIONS

    module = Module("m", "f", _templates(tmp_path), template_vars={"purpose": "doubling"})
    policy = Policy.from_source("def f(x):\n    return x\n", "f")
    rewrite = module.update_prompt(policy, 0.25, [])
    edits = module.update_prompt(policy, 0.25, [], reply_format="edits")
    # appended to the last user message; the other messages are as for a rewrite
    assert edits[1].content == rewrite[1].content + "\n\n" + EDIT_INSTRUCTIONS
    assert [m for i, m in enumerate(edits) if i != 1] == [m for i, m in enumerate(rewrite) if i != 1]
    with pytest.raises(ValueError, match="reply_format"):
        module.update_prompt(policy, 0.25, [], reply_format="diff")


def test_priority_is_a_decayed_average_and_ranking_keeps_max_keep(tmp_path):
    module = Module("m", "f", _templates(tmp_path), max_keep=2, priority_decay=0.5)
    pols = [Policy.from_source(f"def f(x):\n    return {i}\n", "f") for i in range(3)]
    for p in pols:
        assert module.admit(p)
    module.update_priority(pols[0], 1.0)
    assert pols[0].priority == 1.0
    module.update_priority(pols[0], 0.0)
    # weights: old batch 0.5, new batch 1 -> (0.5*1 + 0) / 1.5
    assert pols[0].priority == pytest.approx(1 / 3)
    module.update_priority(pols[1], 0.5)
    dropped = module.rerank()
    assert [p.id for p in module.population] == [pols[1].id, pols[0].id]
    assert dropped == [pols[2]]


def test_batches_are_folded_relative_to_their_difficulty(tmp_path):
    module = Module("m", "f", _templates(tmp_path), priority_decay=0.5)
    good, clone, child = (Policy.from_source(f"def f(x):\n    return {i}\n", "f") for i in range(3))
    for p in (good, clone):
        module.admit(p)
    assert module.fold_batch({good.id: 0.80, clone.id: 0.70}) == 0.0  # nobody ranked yet
    # An easy batch: both incumbents score 0.15 above their priority, and the
    # child, worse than the good script on these records, scores 0.92.
    module.admit(child)
    offset = module.fold_batch({good.id: 0.95, clone.id: 0.85, child.id: 0.92})
    assert offset == pytest.approx(0.15)
    assert good.priority == pytest.approx(0.80) and clone.priority == pytest.approx(0.70)
    assert child.priority == pytest.approx(0.77)
    assert good.scores == [0.80, 0.95]  # raw scores kept
    module.rerank()
    assert [p.id for p in module.population] == [good.id, child.id, clone.id]
    # a hard batch does not drop the child below a worse incumbent
    module.fold_batch({good.id: 0.60, clone.id: 0.50, child.id: 0.58})
    module.rerank()
    assert [p.id for p in module.population] == [good.id, child.id, clone.id]


def test_a_newcomer_that_scores_like_the_incumbent_does_not_pass_it_by_rounding(tmp_path):
    # Folded against the incumbent alone, a newcomer with the same batch score gets the
    # incumbent's priority; in floats it lands one ulp above it here (0.7838 against
    # 0.7837999999999999), and the older script must keep its place.
    module = Module("m", "f", _templates(tmp_path), priority_decay=0.5)
    incumbent = Policy.from_source("def f(x):\n    return 0\n", "f")
    module.admit(incumbent)
    module.fold_batch({incumbent.id: 0.7838})
    newcomer = Policy.from_source("def f(x):\n    return 1\n", "f", generation=1)
    module.admit(newcomer)
    module.fold_batch({incumbent.id: 0.3033, newcomer.id: 0.3033})
    assert newcomer.priority > incumbent.priority  # the rounding error this guards against
    module.rerank()
    assert module.best() is incumbent


def test_identical_scripts_are_not_admitted_twice(tmp_path):
    module = Module("m", "f", _templates(tmp_path))
    assert module.admit(Policy.from_source("def f(x):\n    return x*2\n", "f"))
    assert not module.admit(Policy.from_source("def f(x):  # same\n\n    return x * 2\n", "f"))
    module.population.clear()  # dropped scripts stay known
    assert not module.admit(Policy.from_source("def f(x):\n    return x * 2\n", "f"))


def test_score_call_treats_wrong_outputs_as_exceptions():
    def check(out):
        if not isinstance(out, int):
            raise TypeError(f"not an int: {out!r}")

    task = Task(preprocess=lambda item: ((item,), item), objective=lambda out, label, args: float(out == label),
                exception_score=-2.0, output_check=check)
    ok = score_call(task, CallResult(3, None, None, "", 0.0), 3, (3,))
    assert (ok.score, ok.error) == (1.0, None)
    wrong = score_call(task, CallResult("3", None, None, "", 0.0), 3, (3,))
    assert wrong.score == -2.0 and "not an int" in wrong.error
    raised = score_call(task, CallResult(None, "ValueError: x", "tb", "", 0.0), 3, (3,))
    assert raised.score == -2.0 and raised.traceback == "tb"


def test_module_calls_its_best_script(tmp_path):
    module = Module("m", "f", _templates(tmp_path), seed_sources=["def f(x):\n    return x + 1\n",
                                                                  "def f(x):\n    return x + 2\n"])
    module.seed()
    module.update_priority(module.population[1], 1.0)
    module.update_priority(module.population[0], 0.0)
    module.rerank()
    with module.policy_function(sandbox=False) as fn:
        assert fn(1) == 3
