"""The mutation optimizer: deterministic, valid, distinct rewrites of numbers and comparisons."""
from __future__ import annotations

import ast
import random

import pytest

from langprop_core.llm.base import ProposalRequest
from langprop_core.llm.mutation import MutationOptimizer, find_sites, mutate_source
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


def scripts(proposals):
    return [extract_script(p.reply, "policy") for p in proposals]


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


def test_edits_are_only_numbers_and_comparisons():
    rng = random.Random(0)
    parent_tokens = ast.parse(PARENT)
    for _ in range(50):
        source, notes = mutate_source(PARENT, rng)
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
        source, _ = mutate_source(src, rng)
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
