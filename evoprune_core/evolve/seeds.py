"""Known unit-scoring metrics written as typed trees: the initial population's seeds."""

from __future__ import annotations

from deap import gp

from .grammar import parse

__all__ = ["SEEDS", "seed_tree"]

#: name -> formula text (spec section 3; means and variances over all entries of P or Q).
SEEDS: dict[str, str] = {
    "abs_snr": "div(abs(sub(mP, mQ)), p4(add(std(P), std(Q))))",
    "fdr": "div(sq(sub(mP, mQ)), p4(add(var(P), var(Q))))",
    "symdiv": (
        "add(add(div(var(P), p05(var(Q))), div(var(Q), p05(var(P)))), "
        "div(sq(sub(mP, mQ)), p05(add(var(P), var(Q)))))"
    ),
    "t_stat": "div(abs(sub(mP, mQ)), sqrt(p4(add(div(var(P), N), div(var(Q), count(Q))))))",
    "l1": "sum(abs(WI))",
    "l2": "sqrt(sum(sq(WI)))",
    "geomedian": "sqrt(sum(sq(sub(WI, gm(W)))))",
}


def seed_tree(name: str) -> gp.PrimitiveTree:
    """The tree of seed ``name`` (a key of ``SEEDS``)."""
    return parse(SEEDS[name])
