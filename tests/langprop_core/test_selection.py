"""Select by validation (a trainer callback), the one "best script" rule, and the rank correlation."""
from __future__ import annotations

import pytest

from langprop_core.checkpoint import load_checkpoint
from langprop_core.inference import load_policy
from langprop_core.metrics import ranks, spearman
from langprop_core.policy import Policy
from langprop_core.sandbox import SandboxConfig
from langprop_core.rescoring import RescoreOnFitEnd
from langprop_core.selection import SelectByValidation, incumbent_of
from langprop_core.trainer import Trainer, TrainerConfig
from tests.helpers.scripted_training import TASK, ScriptedOptimizer, doubling_module, fence
from tests.helpers.selection import EPISODE_SCORE, EXACT, NEAR, ROUGH, CountingValidator, fit_with_selection


def test_spearman_on_a_hand_made_population():
    assert spearman([0.1, 0.5, 0.9, 0.7], [10, 20, 80, 40]) == pytest.approx(1.0)
    assert spearman([0.1, 0.5, 0.9], [30, 20, 10]) == pytest.approx(-1.0)
    # ties share their mean rank; worked by hand: ranks x (1, 2.5, 2.5, 4), y (2, 1, 4, 3)
    assert ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert spearman([1.0, 2.0, 2.0, 3.0], [20, 10, 40, 30]) == pytest.approx(1.5 / (4.5 * 5) ** 0.5)
    assert spearman([1.0, 1.0], [1.0, 2.0]) is None  # constant objective: undefined
    assert spearman([1.0], [2.0]) is None
    with pytest.raises(ValueError):
        spearman([1.0, 2.0], [1.0])


def test_the_validated_best_is_deployed_not_the_objectives_best(tmp_path):
    validator = CountingValidator(EPISODE_SCORE)
    callback = SelectByValidation(validator, top_k=3, plot_path=tmp_path / "pairs.png")
    _, module, result = fit_with_selection(tmp_path, callback)
    assert module.best().source == EXACT  # the objective ranks the exact one first
    ck = load_checkpoint(tmp_path / "run")
    assert ck.best.source == NEAR and result.best_policy.source == NEAR
    # every reader of "the best script" uses the same rule
    with load_policy(tmp_path / "run", sandbox=False) as fn:
        assert fn.policy_id == ck.best.id and fn(7) == 15
    record = ck.extra["selection"]
    assert record["deployed_validation"] == 80.0 and not record["kept_incumbent"]
    rows = {r["id"]: r for r in record["candidates"]}
    assert {r["validation"] for r in rows.values()} == {10.0, 80.0, 50.0}
    assert all(r["objective"] is not None for r in rows.values())
    # objective order EXACT > NEAR > ROUGH, validation order NEAR > ROUGH > EXACT
    assert record["spearman"] == pytest.approx(-0.5)
    assert (tmp_path / "pairs.png").stat().st_size > 1000


def test_the_incumbent_stays_unless_beaten_and_comes_back_into_the_checkpoint(tmp_path):
    champion = Policy.from_source("def f(x):\n    return x\n", "f")
    validator = CountingValidator(EPISODE_SCORE)
    callback = SelectByValidation(validator, top_k=2, incumbent=champion, incumbent_score=90.0)
    _, module, result = fit_with_selection(tmp_path, callback)
    ck = load_checkpoint(tmp_path / "run")
    assert ck.best.id == champion.id and result.best_policy.id == champion.id
    assert incumbent_of(ck) == (ck.best, 90.0)
    assert ck.extra["selection"]["kept_incumbent"] is True
    assert champion.id not in validator.asked  # its score came with it
    # a tie keeps the incumbent too (it must be beaten)
    tie = SelectByValidation(CountingValidator(EPISODE_SCORE), top_k=3, incumbent=champion, incumbent_score=80.0)
    (tmp_path / "tie").mkdir()
    fit_with_selection(tmp_path / "tie", tie)
    assert load_checkpoint(tmp_path / "tie" / "run").best.id == champion.id


def test_a_candidate_must_beat_the_incumbent_by_the_margin(tmp_path):
    champion = Policy.from_source("def f(x):\n    return x\n", "f")
    outcomes = {}
    for name, margin in (("narrow", 10.0), ("wide", 5.0)):
        # the best candidate (NEAR) drives 80: less than 10 above the champion's 72 is no gain, 8 > 5 is
        callback = SelectByValidation(CountingValidator(EPISODE_SCORE), top_k=3, incumbent=champion,
                                      incumbent_score=72.0, min_gain=margin)
        (tmp_path / name).mkdir()
        fit_with_selection(tmp_path / name, callback)
        ck = load_checkpoint(tmp_path / name / "run")
        outcomes[name] = (ck.best.source, ck.extra["selection"]["kept_incumbent"], ck.extra["selection"]["min_gain"])
    assert outcomes["narrow"] == (champion.source, True, 10.0)
    assert outcomes["wide"] == (NEAR, False, 5.0)
    with pytest.raises(ValueError, match="min_gain"):
        SelectByValidation(CountingValidator(EPISODE_SCORE), min_gain=-1.0)


def test_a_resumed_run_does_not_validate_a_script_twice(tmp_path):
    first = CountingValidator(EPISODE_SCORE)
    fit_with_selection(tmp_path, SelectByValidation(first, top_k=3))
    assert len(first.asked) == 3
    again = CountingValidator(EPISODE_SCORE)
    _, _, result = fit_with_selection(tmp_path, SelectByValidation(again, top_k=3), resume=True)
    assert again.asked == [] and result.best_policy.source == NEAR


# Behaves as EXACT everywhere (dead code): the same objective on any data.
CLONE = "def f(x):\n    unused = 1\n    return 2 * x\n"


def test_rescoring_ranks_on_all_the_data_and_selection_drives_one_script_per_objective_value(tmp_path):
    validator = CountingValidator({**EPISODE_SCORE, CLONE: 10.0})
    rescore = RescoreOnFitEnd(TASK, range(20))
    optimizer = ScriptedOptimizer(setup=[fence(s) for s in (ROUGH, CLONE, NEAR, EXACT)])
    config = TrainerConfig(epochs=1, batch_size=3, n_responses=4, top_k=0, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run",
                      callbacks=[rescore, SelectByValidation(validator, top_k=2)])
    module = doubling_module(tmp_path)
    # On x < 3 all four are exact: the batch average cannot tell them apart.
    result = trainer.fit(module, TASK, range(3))
    by_source = {p.source: p for p in module.population}
    assert by_source[EXACT].priority == by_source[CLONE].priority == 1.0
    assert by_source[NEAR].priority == pytest.approx(6 / 20) and by_source[ROUGH].priority == pytest.approx(3 / 20)
    # Two validation slots: one of the two alike scripts, and the next best, not the clone.
    asked = {next(p.source for p in module.population if p.id == i) for i in validator.asked}
    assert len(validator.asked) == 2 and NEAR in asked and ROUGH not in asked and {EXACT, CLONE} & asked
    assert result.best_policy.source == NEAR
    ck = load_checkpoint(tmp_path / "run")
    assert ck.best.source == NEAR
    assert ck.extra["rescored"]["records"] == 20
    assert ck.extra["rescored"]["scores"][by_source[NEAR].id] == pytest.approx(0.3)
