"""The sandbox: failures come back as results, workers are replaced, results are in order."""
from __future__ import annotations

import time

import pytest

from langprop_core.policy import Policy, normalized_source, policy_id_for, source_hash
from langprop_core.sandbox import SandboxConfig, ScriptRunner

GOOD = "def f(x):\n    print('saw', x)\n    return x * 2\n"
BAD_SCRIPTS = {
    "loop": "def f(x):\n    while True:\n        pass\n",
    "stubborn_loop": ("def f(x):\n    while True:\n        try:\n            while True:\n"
                      "                pass\n        except BaseException:\n            pass\n"),
    "memory": "def f(x):\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**7))\n",
    "exit": "import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    return x\n",
    "raise": "def f(x):\n    raise ValueError('bad input %d' % x)\n",
    "missing": "def g(x):\n    return x\n",
    "syntax": "def f(x)\n    return x\n",
}


@pytest.fixture(scope="module")
def runner():
    with ScriptRunner(SandboxConfig(workers=2, timeout_s=0.5, memory_mb=256)) as r:
        yield r


def test_good_script_outputs_in_order_with_stdout(runner):
    res = runner.run_batch({"good": GOOD}, "f", [(i,) for i in range(50)])
    assert [c.output for c in res["good"]] == [2 * i for i in range(50)]
    assert res["good"][7].stdout == "saw 7\n"
    assert all(c.ok for c in res["good"])


def test_every_failure_is_a_result_and_good_scripts_are_unaffected(runner):
    sources = dict(BAD_SCRIPTS, good=GOOD)
    res = runner.run_batch(sources, "f", [(0,), (1,), (2,)])
    assert [c.output for c in res["good"]] == [0, 2, 4]
    for name in ("loop", "stubborn_loop", "memory", "raise", "missing", "syntax"):
        assert all(c.exception for c in res[name]), name
    assert "Timeout" in res["loop"][0].exception
    assert "ValueError: bad input 2" in res["raise"][2].exception
    assert "line 2" in res["raise"][2].traceback
    assert "no function 'f'" in res["missing"][0].exception
    assert "SyntaxError" in res["syntax"][0].exception
    # os._exit kills its worker on input 1 only; the other inputs still run.
    assert [c.output for c in res["exit"]] == [0, None, 2]
    assert "WorkerDied" in res["exit"][1].exception
    # A loop that swallows the alarm is killed by its worker's template, which lives on.
    assert all(c.timed_out for c in res["stubborn_loop"])
    # The pool still works afterwards.
    again = runner.run_batch({"good": GOOD}, "f", [(5,)])
    assert again["good"][0].output == 10


def test_memory_limit_raises_memory_error():
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=10.0, memory_mb=200)) as r:
        res = r.run_batch({"memory": BAD_SCRIPTS["memory"], "good": GOOD}, "f", [(0,), (1,)])
    assert all("MemoryError" in c.exception or "WorkerDied" in c.exception for c in res["memory"])
    assert [c.output for c in res["good"]] == [0, 2]


@pytest.mark.parametrize("mode", ["process", "inprocess"])
def test_each_call_gets_its_own_copy_of_the_inputs(mode):
    mutate = "def f(d):\n    d['n'] += 1\n    d['seen'].append(1)\n    return d['n'], len(d['seen'])\n"
    shared = {"n": 0, "seen": []}
    with ScriptRunner(SandboxConfig(mode=mode, workers=1)) as r:
        res = r.run_batch({"m": mutate, "m2": mutate + "\n"}, "f", [(shared,)] * 3)
    assert [c.output for c in res["m"]] == [(1, 1)] * 3
    assert shared == {"n": 0, "seen": []}


def test_inprocess_mode_scores_exceptions():
    with ScriptRunner(SandboxConfig(mode="inprocess")) as r:
        res = r.run_batch({"raise": BAD_SCRIPTS["raise"], "good": GOOD,
                           "exit": "import sys\ndef f(x):\n    sys.exit(2)\n"}, "f", [(1,), (2,)])
    assert [c.output for c in res["good"]] == [2, 4]
    assert res["good"][1].stdout == "saw 2\n"
    assert all("ValueError" in c.exception for c in res["raise"])
    assert all("SystemExit" in c.exception for c in res["exit"])


def test_inputs_must_be_tuples(runner):
    with pytest.raises(TypeError, match=r"inputs\[1\]"):
        runner.run_batch({"good": GOOD}, "f", [(1,), 2])


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="mode"):
        SandboxConfig(mode="thread")


def test_normalized_source_ignores_comments_and_layout():
    a = "def f(x):\n    # double it\n    return x*2\n"
    b = "def f(x):\n\n    return x * 2   # twice\n"
    assert normalized_source(a) == normalized_source(b)
    assert source_hash(a) == source_hash(b)
    assert policy_id_for(a) != policy_id_for("def f(x):\n    return x * 3\n")


def test_policy_roundtrips_through_dict():
    p = Policy.from_source(GOOD, "f", parent_id="p0", generation=2, scores=[0.5], priority=0.5,
                           sampling={"model": "m", "temperature": 0.2})
    q = Policy.from_dict(p.to_dict(include_source=False) | {"unknown_future_key": 1}, source=GOOD)
    assert q == p


def test_inputs_keep_their_types_whatever_the_encoding():
    import collections

    import numpy as np

    from langprop_core.copier import CopyPlanner

    planner = CopyPlanner()
    plain = ({"a": [1, 2.5, None], "b": ("x", True)}, np.arange(3.0))
    assert planner.copier_for(plain) is not None
    special = [(collections.defaultdict(int, a=1), np.arange(3.0))]
    assert planner.copier_for(special[0]) is None  # a dict subclass: the pickle round trip
    src = "def f(d, arr=None):\n    return type(d).__name__, type(arr).__name__, d['missing']\n"
    with ScriptRunner(SandboxConfig(mode="inprocess")) as r:
        res = r.run_batch({"s": src}, "f", special + [(collections.defaultdict(int),)])
    assert [c.output for c in res["s"]] == [("defaultdict", "ndarray", 0), ("defaultdict", "NoneType", 0)]


def test_a_call_stuck_in_c_code_is_killed_by_its_template():
    # sum() over a range never returns to the interpreter loop, so the in-worker
    # alarm cannot interrupt it: the worker's template kills the job's process at
    # the call's deadline, and the worker itself lives on.
    stuck = "def f(x):\n    return sum(range(10**13))\n"
    with ScriptRunner(SandboxConfig(workers=1, timeout_s=0.2)) as r:
        t0 = time.monotonic()
        res = r.run_batch({"stuck": stuck, "good": GOOD}, "f", [(1,), (2,)])
        assert time.monotonic() - t0 < 5.0
        assert all(c.timed_out and "worker killed" in c.exception for c in res["stuck"])
        assert [c.output for c in res["good"]] == [2, 4]
        assert r.workers_replaced == 0


def test_planned_copies_equal_deepcopy_and_share_nothing_mutable():
    import copy

    import numpy as np

    from langprop_core.copier import CopyPlanner

    planner = CopyPlanner()
    value = ({"ego": {"x": 1.0, "tags": ("a", 2)}, "actors": [{"x": 1}, {"x": 2, "v": [3]}],
              "grid": np.arange(6.0).reshape(2, 3)[:, 1:], 7: {1, 2}, "nested": [[1], [[2]]],
              "t": (1, [2], {"k": [3]}), "atoms": (None, True, 2.5, "s", b"b", frozenset({1}))},
             [], (np.float32(1.5), 3))
    copier = planner.copier_for(value)
    assert copier is not None
    for _ in range(2):  # the compiled copier is reused
        copied = copier(value)
        assert repr(copied) == repr(copy.deepcopy(value))
        assert type(copied[0]["grid"]) is np.ndarray and not np.shares_memory(copied[0]["grid"],
                                                                               value[0]["grid"])
        copied[0]["actors"][1]["v"].append(4)
        copied[0]["t"][1].append(5)
        copied[0]["t"][2]["k"].clear()
        copied[0]["nested"][1][0].append(6)
        copied[0][7].add(3)
        copied[0]["grid"][0, 0] = -1
        copied[1].append(0)
    assert value[0]["actors"][1]["v"] == [3] and value[0]["t"][1:] == ([2], {"k": [3]})
    assert value[0]["nested"] == [[1], [[2]]] and value[0][7] == {1, 2} and value[1] == []
    assert value[0]["grid"][0, 0] == 1.0
    assert planner.copier_for(value) is copier  # same structure, same compiled function


@pytest.mark.parametrize("mode", ["process", "inprocess"])
def test_shared_references_inside_an_input_stay_shared_in_its_copy(mode):
    # A plain copy would split them; such inputs take the pickle round trip.
    inner = [0]
    src = "def f(a, b):\n    a.append(1)\n    return a is b, len(b)\n"
    with ScriptRunner(SandboxConfig(mode=mode, workers=1)) as r:
        res = r.run_batch({"s": src}, "f", [(inner, inner)] * 2)
    assert [c.output for c in res["s"]] == [(True, 2)] * 2
    assert inner == [0]


def test_inputs_reach_the_script_with_their_types():
    # marshal takes any object with a buffer and gives it back as bytes: a scene's numpy arrays
    # must arrive as arrays, a bytearray as a bytearray, shared lists shared.
    import numpy as np

    from langprop_core.sandbox.inputs import decode_input, encode_input

    shared = [1, 2]
    inputs = [({"xy": np.array([1.0, 2.0]), "n": 3, "s": "a"},), (bytearray(b"ab"),), ([shared, shared],),
              ({"a": (1, 2.5, None, True), "b": {"c": [b"x"]}},)]
    for args in inputs:
        data = encode_input(args)
        (decoded,) = decode_input(memoryview(data)[8:])
        (original,) = args
        assert type(decoded) is type(original)
    (scene,) = decode_input(memoryview(encode_input(inputs[0]))[8:])
    assert isinstance(scene["xy"], np.ndarray) and scene["xy"].tolist() == [1.0, 2.0]
    (pair,) = decode_input(memoryview(encode_input(inputs[2]))[8:])
    assert pair[0] is pair[1]
    (plain,) = decode_input(memoryview(encode_input(inputs[3]))[8:])
    assert plain == inputs[3][0]
