"""Formula text: round trips, identical scores, refuses code, errors name the position."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.errors import ConfigError
from evoprune_core.evolve.compile import compile_tree, unit_inputs
from evoprune_core.evolve.grammar import FormulaError, parse, to_text
from evoprune_core.evolve.seeds import SEEDS
from evoprune_core.evolve.simplify import cache_key, infix, latex

FORMULAS = [
    *SEEDS.values(),
    "tr(mm(W, T(W)))",
    "sum(mv(rinv(W), amean(T(W))))",
    "div(mean(outer(X, WI)), sub(N, count(P)))",
    "add(sum(amean(W)), sq(mX))",
    "mean(mul(sub(P, mX), Q))",
]


def _inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    acts = torch.rand(2, 20, 5, generator=g)
    w = torch.randn(2, 5, 7, generator=g)
    wo = torch.randn(2, 3, 5, generator=g)
    labels = torch.randint(0, 3, (20,), generator=g)
    return unit_inputs(acts, w, wo, labels)


@pytest.mark.parametrize("text", FORMULAS)
def test_text_tree_text_round_trips_and_scores_identically(text: str) -> None:
    tree = parse(text)
    again = parse(to_text(tree))
    assert to_text(tree) == text
    assert again == tree
    a, b = compile_tree(tree)(_inputs()), compile_tree(again)(_inputs())
    assert a.shape == (2, 5)
    assert torch.equal(a, b)
    assert bool(torch.isfinite(a).all())


def test_whitespace_is_free() -> None:
    assert to_text(parse("  add( mP ,\n mQ )")) == "add(mP, mQ)"


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        ("__import__('os').system('true')", 11, 'unexpected character "\'"'),
        ("__import__", 0, "unknown name '__import__'"),
        ("mean(X).real", 7, "unexpected character '.'"),
        ("exec(X)", 0, "unknown primitive 'exec'"),
        ("add(mP, mQ, mX)", 0, "no add(Scalar, Scalar, Scalar)"),
        ("tr(WI)", 0, "no tr(Vector); allowed: tr(Matrix)"),
        ("mean(add(X, WI))", 5, "lengths differ: S vs I"),
        ("tr(W)", 0, "trace of a non-square UxI matrix"),
        ("add(mP, mQ", 10, "expected ')', found the end"),
        ("X", 0, "the formula is a Vector"),
        ("mean(X) mQ", 8, "unexpected 'mQ' after the formula"),
        ("", 0, "expected a name, found the end"),
        ("mean", 0, "a primitive needs arguments"),
    ],
)
def test_parser_refuses_with_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FormulaError) as exc:
        parse(text)
    assert exc.value.position == position
    assert fragment in str(exc.value)
    assert str(exc.value).startswith(f"position {position}: ")
    assert isinstance(exc.value, ConfigError)  # the CLI prints it as one line, exit 2


def test_parser_refuses_absurd_nesting() -> None:
    text = "abs(" * 100 + "mX" + ")" * 100
    with pytest.raises(FormulaError, match="nested deeper than 60"):
        parse(text)


def test_cache_key_merges_equal_forms_only() -> None:
    assert cache_key(parse("add(mP, mQ)")) == cache_key(parse("add(mQ, mP)"))
    assert cache_key(parse("div(mP, mP)")) == cache_key(parse("div(mQ, mQ)"))  # both 1
    assert cache_key(parse("sub(mP, mQ)")) != cache_key(parse("sub(mQ, mP)"))
    # matrix products are opaque: W W^T and W^T W stay apart
    assert cache_key(parse("tr(mm(W, T(W)))")) != cache_key(parse("tr(mm(T(W), W))"))


def test_infix_and_latex_of_a_seed() -> None:
    tree = parse(SEEDS["fdr"])
    assert infix(tree) == "(mP - mQ)**2/(var(P) + var(Q) + 0.0001)"
    assert latex(tree).startswith(r"\frac{\left(mP - mQ\right)^{2}}")
