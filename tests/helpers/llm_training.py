"""The toy task (learn ``f(x) = 2x``) for tests that train through an LLM client and a fake server.

The update prompt marks the parent's code with ``CODE:`` and each failure case
with ``CASE:``, so that a fake server's responder can tell which script it is
asked to improve.
"""
from __future__ import annotations

from pathlib import Path

from langprop_core.module import Module
from langprop_core.task import Task

WEAK = "def f(x):\n    return x\n"


def llm_doubling_module(tmp_path: Path) -> Module:
    """A module learning ``f`` whose prompts a fake server's responder can read (see the module's docstring)."""
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "setup.txt").write_text("%% user\nWrite {{ function_name }}(x) returning twice x.\n")
    (tdir / "update.txt").write_text(
        "%% user\nImprove it (score {{ score }}).\nCODE:\n{{ code }}\n"
        "{% for c in failures %}CASE:\n{{ c }}\n{% endfor %}")
    return Module("double", "f", tdir, max_keep=4)


TASK = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label))
