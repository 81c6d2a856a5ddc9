"""The toy task of langprop_core's tests (learn ``f(x) = 2x``) with an optimizer whose replies are scripted."""
from __future__ import annotations

import json
from pathlib import Path

from langprop_core.llm.base import Optimizer, Proposal
from langprop_core.module import Module
from langprop_core.task import Task


def fence(src: str) -> str:
    """``src`` as an LLM reply: a sentence, then the code in a fenced python block."""
    return f"Here you go.\n```python\n{src}```\n"


class ScriptedOptimizer(Optimizer):
    """Deterministic replies: ``setup`` for the setup phase, ``update`` for rewrites."""

    name = "scripted"

    def __init__(self, setup: list[str], update: list[str] = ()) -> None:
        self.setup, self.update = setup, list(update)
        self.requests = []

    def propose(self, request):
        self.requests.append(request)
        replies = self.setup if request.parent_source is None else self.update
        return [Proposal(r, self.name, {"model": "test-model", "temperature": 0.0}) for r in replies]


FENCED_UPDATE = ("%% user\nScore {{ score }}.\n```python\n{{ code }}\n```\n"
                 "{% for c in failures %}CASE:\n{{ c }}\n{% endfor %}")


def doubling_module(tmp_path: Path, update: str = FENCED_UPDATE, **kw) -> Module:
    """A module learning ``f``; its update prompt (``update``, a template) shows by default the parent's code
    fenced and its failure cases."""
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "setup.txt").write_text("%% user\nWrite {{ function_name }}(x) returning twice x.\n")
    (tdir / "update.txt").write_text(update)
    return Module("double", "f", tdir, **kw)


def _int_check(out):
    if not isinstance(out, int):
        raise TypeError(f"expected an int, got {type(out).__name__}")


# Scores 1 per exact answer; an exception (a non-int answer included) scores -1.
TASK = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label),
            exception_score=-1.0, output_check=_int_check)


def checkpoint_snapshot(run_dir: Path) -> dict:
    """The thermostat example's checkpoint (index and scripts), less what differs between equal runs."""
    ck = run_dir / "checkpoints" / "thermostat"
    files = {p.name: p.read_text() for p in sorted((ck / "scripts").iterdir())}
    index = json.loads((ck / "index.json").read_text())
    for policy in index["policies"]:  # wall-clock call times differ between runs
        policy.pop("mean_call_s")
    return {"index": index, "scripts": files}
