"""The mutation optimizer: deterministic, valid, distinct rewrites (numbers, comparisons, conditions, names,
crossover); never a chained comparison from a single one."""
from __future__ import annotations

import ast
import random

import pytest

from langprop_core.llm.base import ProposalRequest
from langprop_core.llm.mutation import MutationOptimizer, find_sites, mutate_source
from langprop_core.llm.rewrites import chain_report, find_edits
from langprop_driving.model.seed_policy import read_seed_source, seed_path
from langprop_core.llm.reply import extract_script

PARENT = '''import math


def policy(distance, speed):
    """Brake when close."""
    # keep a margin: the comment < stays
    if distance < 5.0 and speed >= 2:
        return 0.0
    gap = [1, 2, 3][0]
    return min(1.0, 0.25 * distance / max(speed, 1e-3)) if speed > 0.5 else 0.8
'''


def request(parent=PARENT, n=4, seed=0):
    return ProposalRequest(messages=(), n=n, function_name="policy", parent_source=parent, seed=seed)


def scripts(proposals, function_name="policy"):
    return [extract_script(p.reply, function_name) for p in proposals]


def test_deterministic_given_seed_and_parent():
    a = scripts(MutationOptimizer(seed=3).propose(request(seed=7)))
    b = scripts(MutationOptimizer(seed=3).propose(request(seed=7)))
    c = scripts(MutationOptimizer(seed=3).propose(request(seed=8)))
    assert a == b
    assert a != c


def test_mutants_parse_define_the_function_and_differ():
    proposals = MutationOptimizer().propose(request(n=8))
    assert len(proposals) == 8
    out = scripts(proposals)
    parent_dump = ast.dump(ast.parse(PARENT))
    dumps = set()
    for source in out:
        tree = ast.parse(source)
        assert any(isinstance(n, ast.FunctionDef) and n.name == "policy" for n in tree.body)
        assert ast.dump(tree) != parent_dump
        dumps.add(ast.dump(tree))
        # Comments survive: edits are made in the text, not by unparsing.
        assert "# keep a margin: the comment < stays" in source
        # Subscript indices are never touched.
        assert "[0]" in source
    assert len(dumps) == len(out)
    for p in proposals:
        assert p.optimizer == "mutation"


def test_number_and_compare_kinds_edit_only_numbers_and_comparisons():
    rng = random.Random(0)
    parent_tokens = ast.parse(PARENT)
    for _ in range(50):
        source, notes = mutate_source(PARENT, rng, kinds=("number", "compare"))
        assert notes
        tree = ast.parse(source)
        # Same shape: only constant values and comparison operators may change.
        kinds_a = [type(n).__name__ for n in ast.walk(parent_tokens) if not isinstance(n, ast.cmpop)]
        kinds_b = [type(n).__name__ for n in ast.walk(tree) if not isinstance(n, ast.cmpop)]
        assert kinds_a == kinds_b


def test_number_types_and_signs_kept():
    rng = random.Random(1)
    src = "def policy(x):\n    return x * 3 + 0.5 - (-2.0)\n"
    for _ in range(30):
        source, _ = mutate_source(src, rng, kinds=("number",))
        nodes = sorted((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)),
                       key=lambda n: n.col_offset)
        consts = [n.value for n in nodes]
        assert isinstance(consts[0], int) and consts[0] >= 1
        assert isinstance(consts[1], float) and consts[1] > 0
        assert isinstance(consts[2], float) and consts[2] > 0


def test_comparison_sites_found_only_when_unambiguous():
    sites = find_sites(PARENT)
    compares = [s.text for s in sites if s.kind == "compare"]
    assert compares == ["<", ">=", ">"]
    numbers = [s.text for s in sites if s.kind == "number"]
    assert "0" not in numbers  # the subscript index
    assert "5.0" in numbers and "1e-3" in numbers


def test_script_without_sites_gives_no_proposals():
    src = "def policy(x):\n    return x\n"
    assert MutationOptimizer().propose(request(parent=src)) == []


def test_seed_sources_first_as_given_then_mutated_copies():
    seeds = ["def policy(x):\n    return 1.0 if x > 2 else 0.0\n",
             "def policy(x):\n    return 0.5 * x\n"]
    opt = MutationOptimizer(seed=0, seed_sources=seeds)
    out = scripts(opt.propose(ProposalRequest(messages=(), n=5, function_name="policy")))
    assert out[:2] == seeds
    assert len(out) == 5
    assert len({ast.dump(ast.parse(s)) for s in out}) == 5
    assert scripts(opt.propose(ProposalRequest(messages=(), n=1, function_name="policy"))) == seeds[:1]


def test_no_parent_no_seeds_gives_nothing():
    assert MutationOptimizer().propose(ProposalRequest(messages=(), n=3, function_name="policy")) == []


def test_unparsable_parent_gives_nothing():
    assert MutationOptimizer().propose(request(parent="def policy(:\n")) == []


def test_describe_says_no_llm():
    assert "mutation" in MutationOptimizer().describe()
    assert MutationOptimizer().usage().calls == 0


@pytest.mark.parametrize("seed", range(5))
def test_non_ascii_source(seed):
    src = "def policy(x):\n    s = 'été'; return 2.5 if x < 1 else 0.5  # ‹note›\n"
    out = scripts(MutationOptimizer(seed=seed).propose(request(parent=src, n=3, seed=seed)))
    for source in out:
        assert "'été'" in source and "# ‹note›" in source
        ast.parse(source)


NAIVE = read_seed_source(seed_path("naive"))
# Another parent: different limits, an extra condition and a helper NAIVE lacks.
OTHER = (NAIVE.replace("red < 1.0", "red < 6.0")
         .replace("0.0 < a < 2.0 and abs(r) < 1.0", "0.0 < a < 8.0 and _near(r)")
         + "\n\ndef _near(r):\n    return abs(r) < 2.0\n")


def _compares(source):
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Compare)]


@pytest.mark.parametrize("seed", range(3))
def test_never_a_chained_comparison_from_a_single_one(seed):
    """The issue's failure: ``0.0 < a < 2.0`` became ``0.1352 <= a >= 4.677``, and no single
    comparison may become a chain. Chains keep one direction; their number never grows."""
    rng = random.Random(seed)
    parent_chains = chain_report(ast.parse(NAIVE))
    assert parent_chains == (1, 0)
    single = "def policy(d, s):\n    if d < 2.0 and s >= 1:\n        return 0.0\n    return 1.0 if d > 3 else 0.5\n"
    for _ in range(150):
        source, _ = mutate_source(NAIVE, rng)
        chains, mixed = chain_report(ast.parse(source))
        assert mixed == 0, source
        assert chains <= 1, source
        for node in _compares(source):
            if len(node.ops) > 1:
                ups = {isinstance(op, (ast.Lt, ast.LtE)) for op in node.ops}
                assert len(ups) == 1, ast.unparse(node)
        child, _ = mutate_source(single, rng)
        assert all(len(n.ops) == 1 for n in _compares(child)), child


def test_chained_operators_only_change_strictness():
    edits = [e for e in find_edits(NAIVE, kinds=("compare",)) if e.line == NAIVE.split("\n").index(
        "            if 0.0 < a < 2.0 and abs(r) < 1.0:") + 1]
    chain_edits = [e for e in edits if e.text == "<" and e.choices == ("<=",)]
    assert len(chain_edits) == 2  # both operators of ``0.0 < a < 2.0``
    single = [e for e in edits if e.choices != ("<=",)]
    assert [set(e.choices) for e in single] == [{"<=", ">", ">="}]  # abs(r) < 1.0


def test_logic_edits_negate_drop_and_swap():
    out = {}
    for edit in find_edits(NAIVE, kinds=("negate", "drop", "swap")):
        out.setdefault(edit.kind, []).append((edit.text, edit.choices))
    assert ("red < 1.0", ("not (red < 1.0)",)) in out["negate"]
    assert ("red is not None and red < 1.0", ("(red < 1.0)", "(red is not None)")) in out["drop"]
    # A distance tested against None and compared with numbers swaps for another such distance
    # bound before it (``stop`` for ``red``; not ``red`` for ``stop``, assigned a line later),
    # never for the loop's actor offset ``a`` (compared with numbers only).
    assert ("stop", ("red",)) in out["swap"]
    assert all(text != "red" for text, _ in out["swap"])
    assert all(text != "a" and "a" not in choices for text, choices in out["swap"])


def test_swap_never_brings_in_a_name_bound_further_down():
    source = (
        "def f(scene):\n"
        "    stop = scene['s']\n"
        "    if stop < 1.0:\n"
        "        return 1\n"
        "    for a in scene['xs']:\n"
        "        if a < 2.0:\n"
        "            return 2\n"
        "    return 0\n"
    )
    swaps = {e.text: e.choices for e in find_edits(source, kinds=("swap",))}
    assert swaps == {"a": ("stop",)}  # stop may stand in for the loop's a, a never for stop
    for seed in range(20):
        child, _notes = mutate_source(source, random.Random(seed), max_edits=1, kinds=("swap",))
        namespace: dict = {}
        exec(compile(child, "<child>", "exec"), namespace)
        namespace["f"]({"s": 5.0, "xs": [3.0]})  # runs: no UnboundLocalError


def test_crossover_exchanges_a_branch_or_a_function_with_its_helpers():
    rng = random.Random(0)
    seen = set()
    for _ in range(60):
        source, notes = mutate_source(NAIVE, rng, max_edits=1, others=[OTHER], kinds=("cross",))
        compile(source, "<child>", "exec")
        seen.add(source)
        if "_near(r)" in source:
            assert "def _near(r):" in source  # the helper came with the function that calls it
    assert any("red < 6.0" in s and "0.0 < a < 2.0" in s for s in seen)  # one branch exchanged
    assert any("red < 6.0" in s and "_near(r)" in s for s in seen)  # the whole function


@pytest.mark.parametrize("seed", range(4))
def test_every_child_compiles_and_is_new(seed):
    opt = MutationOptimizer(seed=seed)
    req = ProposalRequest(messages=(), n=12, function_name="predict_speed_and_steering", parent_source=NAIVE,
                          seed=seed, other_sources=(OTHER,))
    out = scripts(opt.propose(req), "predict_speed_and_steering")
    assert len(out) == 12
    dumps = {ast.dump(ast.parse(s)) for s in out}
    assert len(dumps) == 12
    assert not dumps & {ast.dump(ast.parse(NAIVE)), ast.dump(ast.parse(OTHER))}
    for source in out:
        compile(source, "<child>", "exec")
    assert out == scripts(MutationOptimizer(seed=seed).propose(req), "predict_speed_and_steering")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="mutation kinds"):
        MutationOptimizer(kinds=("number", "rewrite"))
