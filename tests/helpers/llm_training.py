"""The toy task (learn ``f(x) = 2x``) for tests that train through an LLM client and a fake server.

The update prompt marks the parent's code with ``CODE:`` and each failure case
with ``CASE:``, so that a fake server's responder can tell which script it is
asked to improve.
"""
from __future__ import annotations

from pathlib import Path

from langprop_core.module import Module
from langprop_core.task import Task
from tests.helpers.scripted_training import doubling_module

WEAK = "def f(x):\n    return x\n"


def llm_doubling_module(tmp_path: Path) -> Module:
    """A module learning ``f`` whose prompts a fake server's responder can read (see the module's docstring)."""
    update = ("%% user\nImprove it (score {{ score }}).\nCODE:\n{{ code }}\n"
              "{% for c in failures %}CASE:\n{{ c }}\n{% endfor %}")
    return doubling_module(tmp_path, update=update, max_keep=4)


TASK = Task(preprocess=lambda x: ((x,), 2 * x), objective=lambda out, label, args: float(out == label))
