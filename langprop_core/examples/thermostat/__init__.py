"""The thermostat example: choose "heat", "cool" or "off" from a room's temperature.

A pure-function task with a hidden rule that labels the data
(:func:`expert_action`): heat when the temperature expected two minutes ahead
(``temperature_c + 2 * rate_c_per_min``) is below the comfort band (19.5 to
22.5 C), cool above it, else off. The seed script looks less far ahead and has
the wrong band; the mutation optimizer improves it by moving its constants, an
LLM by reading the failures.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from langprop_core.module import Module
from langprop_core.task import Task

__all__ = ["ACTIONS", "FUNCTION_NAME", "MODULE_NAME", "TEMPLATE_DIR", "SEED_SCRIPT", "expert_action",
           "make_dataset", "make_module", "make_task", "seed_sources"]

FUNCTION_NAME = "choose_action"
MODULE_NAME = "thermostat"
ACTIONS = ("heat", "cool", "off")
LOW_C = 19.5
HIGH_C = 22.5
LOOKAHEAD_MIN = 2.0
PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
SEED_SCRIPT = PACKAGE_DIR / "seed_script.py"


def expert_action(temperature_c: float, rate_c_per_min: float) -> str:
    """The hidden rule that labels the data."""
    ahead = temperature_c + LOOKAHEAD_MIN * rate_c_per_min
    if ahead < LOW_C:
        return "heat"
    if ahead > HIGH_C:
        return "cool"
    return "off"


def make_dataset(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` labelled readings, the same for the same seed."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        temperature = round(rng.uniform(15.0, 27.0), 2)
        rate = round(rng.uniform(-1.5, 1.5), 2)
        items.append({"temperature_c": temperature, "rate_c_per_min": rate,
                      "action": expert_action(temperature, rate)})
    return items


def _preprocess(item: dict[str, Any]) -> tuple[tuple, str]:
    return (item["temperature_c"], item["rate_c_per_min"]), item["action"]


def _objective(output: Any, label: str, args: tuple) -> float:
    return 1.0 if output == label else 0.0


def _check_output(output: Any) -> None:
    if output not in ACTIONS:
        raise ValueError(f"returned {output!r}; expected one of {', '.join(map(repr, ACTIONS))}")


def _describe(args: tuple, label: str, output: Any) -> str:
    temperature, rate = args
    return (f"temperature_c={temperature}, rate_c_per_min={rate}\n"
            f"expected: {label!r}\nthe script returned: {output!r}")


def make_task(exception_score: float = -1.0) -> Task:
    """Exact-match scoring; a wrong type of answer counts as an exception."""
    return Task(preprocess=_preprocess, objective=_objective, exception_score=exception_score,
                output_check=_check_output, describe_case=_describe)


def seed_sources() -> list[str]:
    """The deliberately poor starting script."""
    return [SEED_SCRIPT.read_text(encoding="utf-8")]


def make_module(max_keep: int = 8, seed_with_script: bool = False) -> Module:
    """The ``choose_action`` module; with ``seed_with_script`` the population starts from the seed."""
    return Module(name=MODULE_NAME, function_name=FUNCTION_NAME, template_dir=TEMPLATE_DIR,
                  max_keep=max_keep, seed_sources=seed_sources() if seed_with_script else [],
                  template_vars={"actions": ACTIONS})
