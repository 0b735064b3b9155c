"""Trustworthy fitness and equal-budget search: several networks per task, fresh re-scoring,
fitness_reliability, gp / random / mutation at equal budgets, ``--compare`` and its tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evoprune_core.cli import main
from evoprune_core.engines.runtime import cpu_numerics, resolve_compute
from evoprune_core.evolve.config import EvolveFile, selection_seeds
from evoprune_core.evolve.fitness import prepare_task
from evoprune_core.evolve.fresh import spread
from evoprune_core.evolve.loop import Entry, Evolution, EvolutionState, fitness_reliability
from evoprune_core.evolve.paired import holm, paired_tests
from evoprune_core.evolve.primitives import Scalar
from evoprune_core.plugins import Registry
from tests.evolve._common import TINY_FITNESS, TINY_TOML

TINY = (
    TINY_TOML
    + """pretrain_seeds = 2
fresh_seeds = [101, 102, 103]
[transfer]
enabled = false
operators = ["magnitude"]
[compare]
seeds = [1, 2]
[compute]
backend = "torch"
"""
)


def _cfg(method: str = "gp", **fitness: object) -> EvolveFile:
    return EvolveFile.model_validate(
        {
            "name": "t",
            "seed": 5,
            "evolution": {
                "population": 8,
                "generations": 2,
                "elite": 3,
                "seeds": ["abs_snr", "l1"],
                "seed_copies": 1,
            },  # fmt: skip
            "search": {"method": method},
            "fitness": {**TINY_FITNESS, **fitness},
            "transfer": {"enabled": False},
            "compute": {"backend": "torch"},
        }
    )


@pytest.fixture(scope="module")
def nets() -> list:
    """Two pre-trained networks of digits (the fitness averages over them)."""
    cfg = _cfg()
    compute = resolve_compute(cfg.compute)
    with cpu_numerics():
        return [
            prepare_task("digits", cfg.fitness, s, compute, Registry.load(), None)
            for s in selection_seeds(cfg.seed, 2)
        ]


def _run(cfg: EvolveFile, nets: list) -> EvolutionState:
    with cpu_numerics():
        return Evolution(cfg, nets, resolve_compute(cfg.compute), None).run()


def test_selection_seeds_are_fixed_distinct_and_apart_from_small_fresh_seeds() -> None:
    a = selection_seeds(5, 3)
    assert a == selection_seeds(5, 3) and len(set(a)) == 3
    assert selection_seeds(5, 2) == a[:2]  # more networks extend the same list
    assert set(a).isdisjoint(selection_seeds(6, 3))
    assert min(a + selection_seeds(6, 3)) >= 1000


def test_fitness_is_the_mean_over_the_pretrained_networks(nets) -> None:
    state = _run(_cfg(), nets)
    for e in state.cache.values():
        vals = e.per_seed["digits"]
        assert len(vals) == 2
        if all(map(math.isfinite, vals)):
            assert e.tasks["digits"] == pytest.approx((vals[0] + vals[1]) / 2, rel=1e-12)
            assert e.fitness == pytest.approx(e.tasks["digits"], rel=1e-12)
    # the two networks disagree on some formula (they are different networks)
    assert any(e.per_seed["digits"][0] != e.per_seed["digits"][1] for e in state.cache.values())


def test_every_method_spends_the_same_budget_and_shares_generation_0(nets) -> None:
    states = {m: _run(_cfg(m), nets) for m in ("gp", "random", "mutation")}
    gen0 = {m: s.history[0]["evaluated"] for m, s in states.items()}
    assert len(set(gen0.values())) == 1
    first = {m: s.cache for m, s in states.items()}
    keys0 = {m: {k for k, e in c.items() if e.generation == 0} for m, c in first.items()}
    assert keys0["gp"] == keys0["random"] == keys0["mutation"]
    for s in states.values():
        # population 8, elite 3: five new formulas per generation, never one already seen
        assert [h["evaluated"] for h in s.history[1:]] == [5, 5]
        assert [h["cache_hits"] for h in s.history[1:]] == [3, 3]
        assert len(s.cache) == gen0["gp"] + 10
    pops = [tuple(s.population) for s in states.values()]
    assert len(set(pops)) == 3  # the methods search differently


def test_random_search_draws_trees_of_the_initial_heights(nets) -> None:
    state = _run(_cfg("random"), nets)
    from evoprune_core.evolve.grammar import parse

    new = [e for e in state.cache.values() if e.generation > 0]
    assert len(new) == 10
    assert all(parse(e.text).height <= 4 for e in new)  # init_height (1, 4)
    assert Scalar  # the root type of every drawn tree is checked by parse + shapes


def _entry(key: str, a: float, b: float, c: float, d: float) -> Entry:
    return Entry(key, key, (a + b + c + d) / 4, {"t": (a + b + c + d) / 4}, 1, 0, 0,
                 {"t": [a, b, c, d]})  # fmt: skip


def test_fitness_reliability_is_the_spearman_between_the_halves() -> None:
    # formulas (texts are terminals, their own canonical keys): halves (1st+2nd) vs (3rd+4th)
    from evoprune_core.evolve.grammar import parse
    from evoprune_core.evolve.simplify import cache_key

    names = ["mX", "mP", "mQ", "N"]
    same = [(1, 1, 1, 1), (2, 2, 3, 3), (3, 3, 5, 5), (4, 4, 6, 7)]
    cache = {}
    for n, v in zip(names, same):
        e = _entry(cache_key(parse(n)), *v)
        e.text = n
        cache[e.key] = e
    state = EvolutionState("x", 0, names, [], cache)
    assert fitness_reliability(state, _cfg().fitness) == pytest.approx(1.0)
    for e, v in zip(cache.values(), [(1, 1, 4, 4), (2, 2, 3, 3), (3, 3, 2, 2), (4, 4, 1, 1)]):
        e.per_seed = {"t": list(v)}
    assert fitness_reliability(state, _cfg().fitness) == pytest.approx(-1.0)
    for e in cache.values():
        e.per_seed = {"t": e.per_seed["t"][:1]}
    assert (
        fitness_reliability(state, _cfg().fitness) is None
    )  # one network per task: nothing to split


def test_holm_and_paired_tests_on_a_hand_built_case() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    ours = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    theirs = [x + d for x, d in zip(ours, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])]
    rows = paired_tests([("a", "b", ours, theirs), ("a", "c", ours, ours)], lower_is_better=True)
    assert rows[0]["wins"] == 6 and rows[0]["losses"] == 0
    assert rows[0]["p"] == pytest.approx(1 / 64)  # exact signed-rank null, all six below
    assert rows[0]["p_holm"] == pytest.approx(2 / 64)
    assert rows[0]["verdict"] == "better"
    assert rows[1]["p"] == 1.0 and rows[1]["verdict"] == "no significant difference"
    flipped = paired_tests([("a", "b", ours, theirs)], lower_is_better=False)
    assert flipped[0]["verdict"] == "worse" and flipped[0]["wins"] == 0


def test_spread_reports_median_iqr_and_divergence() -> None:
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == {"median": 3.0, "iqr": 2.0, "n": 5}
    assert spread([1.0, math.inf]) == {"median": 1.0, "iqr": 0.0, "n": 1, "diverged": 1}
    assert spread([math.inf])["median"] is None


def _file(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "sets, message",
    [
        (['search.method="anneal"'], "search.method: allowed: gp, random, mutation (got 'anneal')"),
        (["fitness.pretrain_seeds=0"], "fitness.pretrain_seeds: Input should be greater than"),
        (["fitness.fractions=[0.4, 0.0]"], "fractions: each must lie in (0, 1)"),
        (
            ['compare.methods=["gp", "hill"]'],
            "compare.methods: allowed: gp, random, mutation; 'hill' is none of them (got [",
        ),
        (["fitness.fresh_seeds=[101, 101]"], "fresh_seeds: must be distinct"),
    ],
)
def test_bad_search_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], message: str
) -> None:
    store = tmp_path / "store"
    args = ["evolve", str(_file(tmp_path)), "--store", str(store), "--quiet", "--compare"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert err.count("(got ") <= 1  # the input is shown once at most
    assert not store.exists()


def test_a_fresh_seed_used_in_selection_is_refused(tmp_path: Path, capsys) -> None:
    clash = selection_seeds(8, 2)[1]
    path = _file(tmp_path)
    args = ["evolve", str(path), "--store", str(tmp_path / "s"), "--quiet",
            "--set", f"fitness.fresh_seeds=[101, {clash}]"]  # fmt: skip
    assert main(args) == 2
    assert f"fitness.fresh_seeds: {clash} is a selection seed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_compare_end_to_end_json_keys_equal_budgets_and_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hof.json"
    args = ["evolve", str(_file(tmp_path)), "--store", str(tmp_path / "store"),
            "--output", str(out), "--quiet", "--compare"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "Did GP beat random search at equal budget?" in printed.out
    assert "fitness_reliability:" in printed.out
    hof = json.loads(out.read_text())
    assert hof["method"] == "gp"
    assert isinstance(hof["fitness_reliability"], float)
    assert -1.0 <= hof["fitness_reliability"] <= 1.0
    assert hof["fresh_seeds"] == [101, 102, 103]
    assert hof["selection_seeds"] == selection_seeds(8, 2)
    rows = hof["hall_of_fame"]
    assert [r["fitness"] for r in rows] == sorted(r["fitness"] for r in rows)  # fresh ranking
    for r in rows:
        fresh = r["fitness_fresh"]["digits"]
        assert set(fresh) == {"median", "iqr", "n"} and fresh["n"] == 3
        assert r["method"] == "gp" and "fitness_selection" in r
    cmp = hof["compare"]
    assert cmp["evolution_seeds"] == [1, 2] and cmp["budget"] == 8 + 2 * 5
    assert set(cmp["methods"]) == {"gp", "random", "mutation"}
    evaluated = {m: [w["evaluated"] for w in d["winners"]] for m, d in cmp["methods"].items()}
    assert evaluated["gp"] == evaluated["random"] == evaluated["mutation"]
    for d in cmp["methods"].values():
        assert len(d["winners"]) == 2 and d["fitness_fresh"]["n"] == 6  # 2 seeds x 3 fresh
    assert {"seed symdiv", "seed l1", "random units", "operator magnitude"} <= set(
        cmp["comparators"]
    )
    tests = {(t["method"], t["against"]): t for t in cmp["tests"]}
    assert tests[("gp", "random")]["cells"] == 6
    assert tests[("gp", "seed l2")]["verdict"] in {"better", "worse", "no significant difference"}
    assert any(v.startswith("Did GP beat random search") for v in cmp["verdict"])
    assert "Plainly:" in out.with_name("hof-compare.md").read_text()
    md = out.with_suffix(".md").read_text()
    assert "Method `gp`" in md and "fitness_reliability" in md and "| infix | LaTeX |" in md
    assert f"`{rows[0]['infix']}`" in md and f"{rows[0]['fitness']:.4f}" in md


def test_one_network_per_task_warns_that_reliability_is_unmeasurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hof.json"
    args = ["evolve", str(_file(tmp_path)), "--store", str(tmp_path / "store"),
            "--output", str(out), "--quiet", "--set", "fitness.pretrain_seeds=1",
            "--set", "evolution.generations=0"]  # fmt: skip
    assert main(args) == 0
    assert "warning: fitness_reliability unmeasurable" in capsys.readouterr().err
    assert json.loads(out.read_text())["fitness_reliability"] is None
