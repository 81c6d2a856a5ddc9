"""Dead conditions: interval reasoning on comparisons with constants (langprop_core.dead_logic)."""
from __future__ import annotations

from pathlib import Path

import pytest

from langprop_core.dead_logic import Interval, dead_conditions

SEEDS = Path(__file__).resolve().parents[2] / "langprop_driving" / "model" / "seeds"


def _wrap(body: str) -> str:
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"import math\n\ndef f(scene, a, r):\n{lines}\n    return 0\n"


@pytest.mark.parametrize("condition", [
    "5.12 < a < 0.5667",            # the deployed script of the issue
    "a > 5 and a < 2",              # the same across an `and`
    "0.0 < a < 2.0 and a > 3.0",
    "a == 1 and a > 2",
    "abs(r) < -1",                  # abs is never negative
    "math.hypot(a, r) <= -0.5",
    "2 > 3",
    "-1 > a > 1",
])
def test_conditions_that_never_hold_are_found(condition):
    found = dead_conditions(_wrap(f"if {condition}:\n    return 1"))
    assert [d.holds for d in found] == ["never"], found
    assert found[0].line == 4


@pytest.mark.parametrize("condition", ["abs(r) >= 0", "-1 <= math.cos(a) <= 1", "3 > 2", "a ** 2 > -0.1"])
def test_conditions_that_always_hold_are_found(condition):
    found = dead_conditions(_wrap(f"if {condition}:\n    return 1"))
    assert [d.holds for d in found] == ["always"], found


@pytest.mark.parametrize("condition", [
    "0.0 < a < 2.0 and abs(r) < 1.0", "a < 5 or a > 7", "abs(r) < 0.5", "a != 3", "a < b",
    "a >= 0.5 and a <= 0.5",
])
def test_live_conditions_are_not_flagged(condition):
    assert dead_conditions(_wrap(f"b = 1.0\nif {condition}:\n    return 1")) == []


def test_input_domains_bound_values_read_by_key_and_names_assigned_from_them():
    domains = {"ego_forward_speed": Interval.closed(0.0)}
    never = _wrap('speed = scene["ego_forward_speed"]\nif speed < 0:\n    return 1')
    always = _wrap('if scene.get("ego_forward_speed") >= 0.0:\n    return 1')
    assert [d.holds for d in dead_conditions(never, domains)] == ["never"]
    assert [d.holds for d in dead_conditions(always, domains)] == ["always"]
    # without the domain nothing is known about the speed
    assert dead_conditions(never) == []
    # a name bound twice may hold anything
    rebound = _wrap('speed = scene["ego_forward_speed"]\nspeed = speed - 3\nif speed < 0:\n    return 1')
    assert dead_conditions(rebound, domains) == []


def test_sub_conditions_and_other_places_are_checked():
    source = _wrap("x = [v for v in (1, 2) if v > 3 > v]\nwhile a > 1 and a < 0:\n    pass\n"
                   "y = 1 if (a < 0 or 4 < a < 2) else 0")
    found = dead_conditions(source)
    assert sorted(d.text for d in found) == ["4 < a < 2", "a > 1 and a < 0", "v > 3 > v"]


def test_the_bundled_seeds_have_no_dead_condition_and_bad_source_has_none():
    from langprop_driving.model.behaviour import INPUT_DOMAINS

    for seed in SEEDS.glob("*.py"):
        assert dead_conditions(seed.read_text(), INPUT_DOMAINS) == [], seed.name
    assert dead_conditions("def f(:\n") == []


def test_interval_arithmetic():
    assert Interval(1.0, 1.0, False, False).empty is False
    assert Interval(1.0, 1.0, True, False).empty is True
    assert Interval.closed(0.0).intersect(Interval(-5.0, 0.0, True, False)) == Interval(0.0, 0.0, False, False)
    assert Interval.closed(0.0, 1.0).within(Interval.closed(-1.0, 2.0))
    assert not Interval.closed(0.0, 1.0).within(Interval(0.0, 2.0, True, False))
