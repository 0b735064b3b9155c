"""`evoprune evolve`: bad input is one line and exit 2; a tiny evolution end to end, tracked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from evoprune_core.cli import main
from evoprune_core.loading import load_run_config
from tests.evolve._common import TINY_TOML

TINY = (
    TINY_TOML
    + """[transfer]
task = "bc-10-100-1000"
seeds = [1, 2]
top = 2
operators = ["random", "magnitude"]
[compute]
backend = "torch"
"""
)


def _file(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "edit, sets, message",
    [
        ("[evolution]\n", ["evolution.populaton=3"], "evolution.populaton: unknown key; allowed:"),
        ("", ["evolution.elite=20"], "elite: 20 exceeds the population (8)"),
        ("", ["evolution.mutation_height=[0, 9]"], "mutation_height: need 0 <= low <= high"),
        ("", ["evolution.max_depth=40"], "evolution.max_depth: Input should be less than"),
        ("", ['evolution.seeds=["abs_snr", "nope"]'], "seeds: unknown 'nope'; allowed: abs_snr"),
        ("", ["fitness.fractions=[0.5, 1.0]"], "fractions: each must lie in (0, 1)"),
        ("", ['fitness.tasks=["mnist"]'], "fitness.tasks: unknown dataset 'mnist'; allowed:"),
        ("", ['transfer.task="digits"'], "transfer.task: 'digits' is an evolution task"),
        ("", ['transfer.operators=["formula"]'], "transfer.operators: unknown 'formula'"),
        ("bogus = 1\n", [], "bogus: unknown key; allowed: name, description, seed"),
        ("", ['evolution.exclude=["foo"]'], "exclude: unknown primitive 'foo'; allowed: N, P, Q"),
        ("", ['evolution.exclude=["WI"]'], "seeds: 'l1' uses the excluded 'WI'"),
        (
            "",
            ["evolution.extra_seeds=[\"__import__('os').system('ls')\"]"],
            'extra_seeds[0]: position 11: unexpected character "\'"',
        ),
        ("", ['evolution.extra_seeds=["mean(Y)"]'], "extra_seeds[0]: position 5: unknown name 'Y'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, sets: list[str], message: str
) -> None:
    path = _file(tmp_path, edit + TINY if edit.startswith("bogus") else TINY)
    store = tmp_path / "store"
    args = ["evolve", str(path), "--store", str(store), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and "\n" not in err
    assert message in err
    assert not store.exists()


def test_missing_output_directory_is_refused(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    out = tmp_path / "nowhere" / "hof.json"
    assert main(["evolve", str(_file(tmp_path)), "--store", str(store), "--output", str(out)]) == 2
    assert "--output: directory" in capsys.readouterr().err
    assert not store.exists()


def test_tiny_evolution_end_to_end_outputs_tracking_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    out = tmp_path / "hof.json"
    args = ["evolve", str(_file(tmp_path)), "--store", str(store), "--output", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "fitness" in printed and "Plainly: the best evolved formula" in printed

    hof = json.loads(out.read_text())
    rows = hof["hall_of_fame"]
    assert len(rows) == 4 and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert [r["fitness"] for r in rows] == sorted(r["fitness"] for r in rows)
    assert set(rows[0]) >= {"expression", "infix", "latex", "fitness", "fitness_per_task",
                            "size", "depth"}  # fmt: skip
    assert set(rows[0]["fitness_per_task"]) == {"digits"}
    assert [h["generation"] for h in hof["history"]] == [0, 1, 2]
    table = hof["transfer"]
    assert table["held_out"] == ["bc-10-100-1000"] and table["tasks"] == [
        "digits",
        "bc-10-100-1000",
    ]
    labels = [m["label"] for m in table["methods"]]
    assert labels[:2] == [lab for lab in labels if lab.startswith("evolved #")]
    assert {"random", "magnitude", "seed symdiv"} <= set(labels)
    cells = table["val_l1"]["bc-10-100-1000"]["random"]
    assert len(cells) == 2 * 3  # seeds x fractions

    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Hall of fame: tiny") and rows[0]["expression"] in md
    run_file = out.with_name("hof-run.toml")
    cfg = load_run_config(run_file)
    assert cfg.pruning.operator == "formula"
    assert cfg.pruning.operator_params["expression"] == rows[0]["expression"]
    assert "Plainly:" in out.with_name("hof-transfer.md").read_text()
    assert out.with_name("hof-fitness.png").stat().st_size > 1000

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("evolve-tiny")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["evolution.population"] == "8"
    assert run.data.params["fitness.tasks"] == '["digits"]'
    best = client.get_metric_history(run.info.run_id, "best_fitness")
    assert [m.step for m in best] == [0, 1, 2]
    assert [m.value for m in best] == [h["best_fitness"] for h in hof["history"]]
    for key in ("median_fitness", "mean_size", "validity_rate", "cache_hits", "seconds"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 3
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"hof.json", "hof.md", "hof-run.toml", "hof-transfer.md", "plots"} <= names

    # the same command again resumes: nothing re-evaluated, the same MLflow run
    assert main(args) == 0
    again = json.loads(out.read_text())
    assert again["hall_of_fame"] == hof["hall_of_fame"] and again["history"] == hof["history"]
    assert len(client.search_runs([exp.experiment_id])) == 1
    assert len(client.get_metric_history(run.info.run_id, "best_fitness")) == 3


def test_every_phase_shows_progress_and_quiet_silences_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TINY.replace("generations = 2", "generations = 1").replace(
        "seeds = [1, 2]", "seeds = [1]"
    )
    path = _file(tmp_path, text)
    args = ["evolve", str(path), "--store", str(tmp_path / "store"), "--no-transfer"]
    assert main([*args[:-1], "--quiet"]) == 0  # with the transfer, silent
    err = capsys.readouterr().err  # (a library's deprecation warning may come once)
    assert [line for line in err.splitlines() if not line.startswith("warning: ")] == []
    loud = ["evolve", str(path), "--store", str(tmp_path / "fresh")]
    assert main(loud) == 0
    err = capsys.readouterr().err
    for phase in ("pre-train: ", "evolve tiny: ", "transfer: "):
        assert phase in err, phase
    assert "0/3 [" in err and "0/2 [" in err  # 3 networks to pre-train, generations 0 and 1
    assert "evolve tiny: re-scoring the hall of fame on fresh seeds" in err
    assert "network/s, digits seed" in err  # the pre-training says which network
    assert "bc-10-100-1000 seed 1]" in err  # the transfer says where it is
