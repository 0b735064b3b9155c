"""A tiny CNN-classifier evolution end to end: fresh scores, transfer to a held-out dense
autoencoder and a held-out CNN, ``--compare`` of the search methods on the classifier, and the
winner run through the ``formula`` operator on a conv autoencoder in both engines and in a
study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoprune_core.cli import main
from evoprune_core.evolve.config import selection_seeds

TINY = """
name = "tinycnn"
seed = 3
[evolution]
population = 6
generations = 1
elite = 3
seeds = ["l1", "symdiv"]
seed_copies = 1
hall_of_fame = 3
[fitness]
tasks = ["vgg-small:digits"]
fractions = [0.4]
pretrain_epochs = 1
finetune_epochs = 1
finetune_batches = 2
batch_size = 32
calibration_rows = 60
pretrain_seeds = 2
fresh_seeds = [101, 102]
network = { encoder = [12, 4] }
[transfer]
task = "digits"
more_tasks = ["cnn3:digits"]
seeds = [1, 2]
fractions = [0.4]
evolution_tasks = false
top = 1
operators = []
[compare]
seeds = [1, 2]
[compute]
backend = "torch"
"""


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cnn")
    path = tmp / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    out = tmp / "hof.json"
    args = ["evolve", str(path), "--store", str(tmp / "store"), "--output", str(out), "--quiet",
            "--compare"]  # fmt: skip
    assert main(args) == 0
    return out


def test_classifier_evolution_records_fresh_scores_and_pretrained_accuracy(evolved: Path) -> None:
    hof = json.loads(evolved.read_text())
    assert hof["method"] == "gp"
    acc = hof["pretrained_test_accuracy"]
    compared = [s for e in (1, 2) for s in selection_seeds(e, 2)]  # the --compare runs' own
    want = {f"vgg-small:digits seed {s}" for s in [*hof["selection_seeds"], *compared, 101, 102]}
    want |= {f"cnn3:digits seed {s}" for s in (1, 2)}  # the held-out CNN's networks too
    assert set(acc) == want
    assert all(0.1 < v <= 1.0 for v in acc.values())
    rows = hof["hall_of_fame"]
    assert [r["fitness"] for r in rows] == sorted(r["fitness"] for r in rows)
    for r in rows:
        fresh = r["fitness_fresh"]["vgg-small:digits"]
        assert fresh["n"] == 2 and 0.0 <= fresh["median"] <= 1.0  # validation error
        # one task: the fitness is 1 - accuracy, the mean error over the fresh networks
        assert r["fitness"] == pytest.approx(r["fitness_per_task"]["vgg-small:digits"])
        assert {"infix", "latex", "size", "depth", "fitness_selection"} <= set(r)
    table = hof["transfer"]
    assert table["tasks"] == table["held_out"] == ["digits", "cnn3:digits"]
    labels = [m["label"] for m in table["methods"]]
    assert labels[0].startswith("evolved #1") and "random units" in labels
    assert len(table["val_l1"]["digits"]["seed l1"]) == 2  # 2 seeds x 1 fraction
    # the held-out CNN (another architecture): validation errors, channels removed
    errors = [v for cells in table["val_l1"]["cnn3:digits"].values() for v in cells]
    assert len(errors) == len(labels) * 2 and all(0.0 <= v <= 1.0 for v in errors)
    assert all(r < 1.0 for r in table["remaining_fraction"]["cnn3:digits"]["seed l1"])
    rows = {r["method"]: r for r in table["comparisons"]["cnn3:digits"]}
    assert set(rows) == set(labels[1:]) and all(r["cells"] == 2 for r in rows.values())
    assert "fitness_reliability" in hof


def test_compare_on_the_classifier_scores_every_method_on_the_fresh_cnns(evolved: Path) -> None:
    """``--compare`` on a CNN-classifier task: each method's winners of the two evolution seeds
    at the same budget, their validation error on the fresh networks (2 seeds x 2 fresh), and
    the hand-made comparators pruning channels of the same networks."""
    cmp = json.loads(evolved.read_text())["compare"]
    assert cmp["evolution_seeds"] == [1, 2] and cmp["fresh_seeds"] == [101, 102]
    assert cmp["budget"] == 6 + 1 * (6 - 3)  # population + generations x (population - elite)
    for method, d in cmp["methods"].items():
        assert [w["evolution_seed"] for w in d["winners"]] == [1, 2], method
        assert [w["evaluated"] for w in d["winners"]] == [9, 9], method
        assert d["fitness_fresh"]["n"] == 4  # 2 evolution seeds x 2 fresh networks
        for w in d["winners"]:
            fresh = w["fitness_fresh"]["vgg-small:digits"]
            assert fresh["n"] == 2 and 0.0 <= fresh["median"] <= 1.0  # a validation error
    assert set(cmp["methods"]) == {"gp", "random", "mutation"}
    seeds = ["abs_snr", "fdr", "symdiv", "t_stat", "l1", "l2", "geomedian"]
    assert list(cmp["comparators"]) == [*(f"seed {s}" for s in seeds), "random units"]
    errors = {
        name: c["fitness_fresh"]["vgg-small:digits"] for name, c in cmp["comparators"].items()
    }
    assert all(e["n"] == 2 and 0.0 <= e["median"] <= 1.0 for e in errors.values())
    # each comparator removes its own 40% of the channels: a comparator that pruned nothing, or
    # the same channels as the others, would leave the errors alike
    assert len({round(e["median"], 6) for e in errors.values()}) >= 5
    tests = {(t["method"], t["against"]): t for t in cmp["tests"]}
    assert len(tests) == 3 * (2 + 8)  # each method against the other two and the 8 comparators
    assert {t["cells"] for t in tests.values()} == {4}
    assert {t["verdict"] for t in tests.values()} <= {
        "better", "worse", "no significant difference"
    }  # fmt: skip
    assert cmp["verdict"][0].startswith("Did GP beat random search at equal budget?")
    assert "Plainly:" in evolved.with_name("hof-compare.md").read_text()


@pytest.mark.parametrize("kind", ["run", "run-coevolution"])
def test_the_winner_prunes_a_conv_autoencoder_in_both_engines(
    evolved: Path, kind: str, tmp_path: Path
) -> None:
    best = json.loads(evolved.read_text())["hall_of_fame"][0]["expression"]
    run_file = evolved.with_name(f"hof-{kind}.toml")
    text = run_file.read_text()
    assert 'preset = "conv-small"' in text and json.dumps(best) in text
    out = tmp_path / "r.json"
    args = ["run", str(run_file), "--output", str(out), "--quiet",
            "--set", "generations=2", "--set", "pruning.schedule=fixed",
            "--set", "pruning.probability=1.0"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["engine"] == ("canonical" if kind == "run" else "coevolution")
    assert result["remaining_fraction"] < 0.9  # the formula removed conv channels


def test_the_study_file_samples_the_hall_of_fame(evolved: Path, tmp_path: Path) -> None:
    study = evolved.with_name("hof-study.toml")
    text = study.read_text().replace("generations = 20", "generations = 2")
    local = tmp_path / "study.toml"
    local.write_text(text, encoding="utf-8")
    rows = json.loads(evolved.read_text())["hall_of_fame"]
    assert json.dumps([r["expression"] for r in rows[:3]]) in text
    store = tmp_path / "store"
    args = ["study", str(local), "--n-trials", "2", "--store", str(store), "--quiet"]
    assert main(args) == 0
    import optuna

    from evoprune_core.study import resolve_store

    resolved = resolve_store("tinycnn-formulas", store, None, None)
    assert resolved.journal is not None and resolved.journal.is_file()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(resolved.journal))
    )
    names = optuna.get_all_study_names(storage)
    trials = [t for n in names for t in optuna.load_study(study_name=n, storage=storage).trials]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 2
    assert all(t.params["operator.formula.expression"] in text for t in done)
