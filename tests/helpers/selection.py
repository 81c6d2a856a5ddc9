"""Three scripts of the toy task whose objective and validation ("episode") scores disagree, and a fit of them."""
from __future__ import annotations

from pathlib import Path

from langprop_core.sandbox import SandboxConfig
from langprop_core.selection import SelectByValidation
from langprop_core.trainer import Trainer, TrainerConfig
from tests.helpers.scripted_training import TASK, ScriptedOptimizer, doubling_module, fence

# Scored per call by TASK (out == 2x); their "episode" score (the validator) disagrees on purpose:
# the objective's favourite is the worst in validation.
EXACT = "def f(x):\n    return 2 * x\n"
NEAR = "def f(x):\n    return 2 * x if x < 6 else 2 * x + 1\n"
ROUGH = "def f(x):\n    return 2 * x if x < 3 else 0\n"
EPISODE_SCORE = {EXACT: 10.0, NEAR: 80.0, ROUGH: 50.0}


class CountingValidator:
    """An episode score per script; counts which scripts it was asked to run."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.asked: list[str] = []

    def __call__(self, policies):
        self.asked.extend(p.id for p in policies)
        return {p.id: self.scores[p.source] for p in policies}


def fit_with_selection(tmp_path: Path, callback: SelectByValidation, setup=(EXACT, NEAR, ROUGH), resume=False):
    """One epoch whose setup replies are ``setup``; returns the trainer, the module and the fit's result."""
    optimizer = ScriptedOptimizer(setup=[fence(s) for s in setup])
    config = TrainerConfig(epochs=1, batch_size=10, n_responses=len(setup), top_k=0, progress=False,
                           sandbox=SandboxConfig(mode="inprocess"))
    trainer = Trainer(optimizer, config, run_dir=tmp_path / "run", callbacks=[callback])
    module = doubling_module(tmp_path)
    result = trainer.fit(module, TASK, range(10), resume=resume)
    return trainer, module, result
