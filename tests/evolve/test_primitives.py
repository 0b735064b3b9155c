"""Typed design space: seeds equal their direct numpy formulas; trees stay well typed and shallow."""

from __future__ import annotations

import functools
import operator
import random

import numpy as np
import pytest
import torch
from deap import gp
from scipy.optimize import minimize

from evoprune_core.evolve.compile import ShapeError, check_shapes, compile_tree, unit_inputs
from evoprune_core.evolve.grammar import parse, to_text
from evoprune_core.evolve.primitives import Matrix, Scalar, Vector, by_key, primitive_set
from evoprune_core.evolve.randomness import deap_random
from evoprune_core.evolve.seeds import SEEDS, seed_tree


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One network: 3 units, 8 rows of 2 classes, 4 inputs, 2 outputs."""
    acts = np.array(
        [
            [0.0, 1.0, 2.0],
            [1.0, 0.5, 2.0],
            [2.0, 0.0, 0.0],
            [3.0, 1.5, 1.0],
            [0.5, 2.0, 4.0],
            [0.0, 2.5, 3.0],
            [1.5, 3.0, 5.0],
            [4.0, 0.0, 1.0],
        ]
    )  # (S, U)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    w = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.25], [-2.0, 0.0, 0.5, 1.5]])  # (U, I)
    wo = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]])  # (O, U)
    return acts, labels, w, wo


def _direct(name: str) -> np.ndarray:
    acts, labels, w, _ = _case()
    out = np.zeros(3)
    for u in range(3):
        for c in (0, 1):
            p, q = acts[labels == c, u], acts[labels != c, u]
            mp, mq, vp, vq = p.mean(), q.mean(), p.var(), q.var()
            if name == "abs_snr":
                out[u] += abs(mp - mq) / (p.std() + q.std() + 1e-4)
            elif name == "fdr":
                out[u] += (mp - mq) ** 2 / (vp + vq + 1e-4)
            elif name == "symdiv":
                out[u] += vp / (vq + 0.05) + vq / (vp + 0.05) + (mp - mq) ** 2 / (vp + vq + 0.05)
            elif name == "t_stat":
                out[u] += abs(mp - mq) / np.sqrt(vp / len(p) + vq / len(q) + 1e-4)
            elif name == "l1":
                out[u] += np.abs(w[u]).sum()
            elif name == "l2":
                out[u] += np.linalg.norm(w[u])
            elif name == "geomedian":
                res = minimize(lambda z: np.linalg.norm(w - z, axis=1).sum(), w.mean(0), tol=1e-12)
                out[u] += np.linalg.norm(w[u] - res.x)
    return out


def _inputs() -> dict:
    acts, labels, w, wo = _case()
    t = torch.tensor
    return unit_inputs(t(acts).unsqueeze(0), t(w).unsqueeze(0), t(wo).unsqueeze(0), t(labels))


@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_tree_equals_direct_numpy_formula(name: str) -> None:
    got = compile_tree(seed_tree(name))(_inputs())[0].numpy()
    want = _direct(name)
    tol = 1e-4 if name == "geomedian" else 1e-9  # Weiszfeld vs a generic minimiser
    np.testing.assert_allclose(got, want, rtol=tol)
    assert len(set(np.round(want, 6))) == 3  # the case tells the three units apart


def test_label_free_seed_counts_each_class_once() -> None:
    # evaluated per class and summed: two classes double a label-free score
    got = compile_tree(parse("sum(abs(WI))"))(_inputs())[0]
    assert got.tolist() == pytest.approx([7.0, 5.5, 8.0])


def _well_typed(tree: gp.PrimitiveTree) -> None:
    """Every primitive's children return exactly the types its overload declares."""

    def visit(i: int) -> tuple[type, int]:
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return node.ret, i + 1
        prim = by_key(node.name)
        nxt = i + 1
        for want in prim.args:
            got, nxt = visit(nxt)
            assert got is want, f"{to_text(tree)}: {prim.name} got {got} for {want}"
        assert node.ret is prim.ret
        return prim.ret, nxt

    ret, end = visit(0)
    assert ret is Scalar and end == len(tree)


def test_generated_trees_are_well_typed_and_depth_limited_after_variation() -> None:
    pset = primitive_set()
    rng = random.Random(7)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=8)
    mate = limit(gp.cxOnePoint)
    mutate = limit(
        functools.partial(
            gp.mutUniform, expr=functools.partial(gp.genFull, min_=0, max_=4), pset=pset
        )
    )
    with deap_random(rng):
        pop = [gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4, type_=Scalar)) for _ in range(60)]
    heights = set()
    round_trips = 0
    for _ in range(300):
        with deap_random(rng):
            a, b = random.sample(pop, 2)
            a, b = mate(gp.PrimitiveTree(list(a)), gp.PrimitiveTree(list(b)))
            (a,) = mutate(a)
        _well_typed(a)
        _well_typed(b)
        assert a.height <= 8 and b.height <= 8
        heights.add(a.height)
        pop[rng.randrange(len(pop))] = a
        try:
            check_shapes(a)
        except ShapeError:
            continue  # well typed but of mismatched lengths: the evolution redraws these
        assert parse(to_text(a)) == a  # every dimensionally valid tree has a text form
        round_trips += 1
    assert round_trips >= 20
    assert max(heights) >= 6  # the limit was actually reached for, not trivially met
    vectors = sum(node.ret is Vector for t in pop for node in t)
    matrices = sum(node.ret is Matrix for t in pop for node in t)
    assert vectors > 0 and matrices > 0


def test_deap_random_leaves_the_global_generator_alone() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    with deap_random(random.Random(5)):
        gp.genFull(primitive_set(), 2, 3, type_=Scalar)
    assert random.random() == expected


def test_shape_check_names_the_node_and_counts_entries() -> None:
    tree = parse("sum(mv(W, WI))")
    # mv(W (U x I), WI (I)) -> U entries; per unit: U*U; with U=30 units: 900
    assert check_shapes(tree, {"U": 30, "I": 100, "S": 50, "O": 10, "C": 3}) == 3000
    bad = gp.PrimitiveTree(
        [primitive_set().mapping[k] for k in ("sum_v", "add_vv", "X", "WI")]
    )  # sum(add(X, WI)): S vs I
    with pytest.raises(ShapeError) as exc:
        check_shapes(bad)
    assert exc.value.index == 1
