"""The MLflow runs say what ran: trial run names, short params, the study's active time."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from evoprune_core.cli import main
from evoprune_core.study._trial import run_name
from evoprune_core.tracking import VIEW_TAG
from tests.conftest import Project

SPACE = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'


def test_run_name_says_engine_operator_and_schedule() -> None:
    combo = {"engine": "coevolution", "operator": "magnitude", "schedule": "population"}
    assert run_name(7, combo, False) == "t0007 coevolution magnitude/population"
    assert run_name(0, {**combo, "operator": "none", "schedule": "-"}, True) == (
        "t0000 coevolution baseline"
    )
    assert run_name(12, None, False) == "t0012"


def _runs(project: Project) -> tuple[object, list[object]]:
    client = MlflowClient(project.tracking_uri)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags["evoprune.role"] == "study")
    trials = sorted(
        (r for r in runs if r.data.tags["evoprune.role"] == "trial"),
        key=lambda r: int(r.data.tags["trial_number"]),
    )
    return parent, trials


def test_trial_runs_are_named_and_the_study_run_lasts_its_active_time(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(n_trials=2, space=SPACE)
    assert main(project.args(path)) == 0
    parent, trials = _runs(project)
    names = [r.info.run_name for r in trials]
    op = trials[1].data.params["pruning.operator"]
    sched = trials[1].data.params["pruning.schedule"]
    assert names == ["t0000 canonical baseline", f"t0001 canonical {op}/{sched}"]
    assert (trials[1].data.params["operator"], trials[1].data.params["schedule"]) == (op, sched)
    assert trials[1].data.params["engine"] == "canonical"
    assert trials[0].data.params["schedule"] == "-"  # a baseline has no schedule
    assert set(trials[1].data.metrics) >= {"val_loss", "remaining_fraction"}
    tags = parent.data.tags
    assert (tags["sessions"], tags["resumes"]) == ("1", "0")
    first = float(tags["active_seconds"])
    assert parent.info.end_time - parent.info.start_time == round(first * 1000)

    project.study_file(n_trials=3, space=SPACE)
    assert main(project.args(path)) == 0  # resumed: one more trial
    parent, trials = _runs(project)
    tags = parent.data.tags
    assert (tags["sessions"], tags["resumes"], len(trials)) == ("2", "1", 3)
    total = float(tags["active_seconds"])
    assert total > first
    assert parent.info.end_time - parent.info.start_time == round(total * 1000)


def test_help_is_plain_text_and_ui_documents_host_and_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args in ([], ["study"], ["report"], ["ui"], ["evolve"], ["run"], ["plugins"]):
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        out = capsys.readouterr().out
        assert "``" not in out and ":class:" not in out, args
    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--host HOST address to listen on (default 127.0.0.1: this machine only;" in out
    assert "--port PORT port to listen on (default 5000)" in out


def test_ui_refuses_a_bad_host(stored_project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(stored_project.store)
    assert main(["ui", "--store", store, "--host", "not a host"]) == 2
    assert capsys.readouterr().err == (
        "error: --host: expected an IP address or a host name, got 'not a host'\n"
    )


def test_the_experiment_shares_a_runs_view_with_the_study_columns(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """The view the printed address opens (``viewStateShareKey=evoprune``): the objectives'
    metrics first, the short params, every one a key the trial runs log."""
    project = stored_project
    path = project.study_file(
        n_trials=2, space=SPACE, header='objectives = ["val_loss", "remaining_fraction"]'
    )
    assert main(project.args(path)) == 0
    client = MlflowClient(project.tracking_uri)
    exp = client.get_experiment_by_name("tiny")
    view = json.loads(exp.tags[VIEW_TAG])
    columns = [
        "metrics.`val_loss`", "metrics.`remaining_fraction`", "params.`engine`",
        "params.`operator`", "params.`schedule`", "params.`probability`", "params.`amount`",
    ]  # fmt: skip
    assert view == {
        "selectedColumns": [*columns, "attributes.`Duration`"],
        "columnOrder": [
            "attributes.`Run Name`",
            "runDateAndNestInfo",
            *columns,
            "attributes.`Duration`",
        ],  # fmt: skip
        "columnWidths": {"attributes.`Run Name`": 300},
    }
    _, trials = _runs(project)
    logged = set(trials[1].data.metrics) | {f"params.`{k}`" for k in trials[1].data.params}
    for col in columns:
        kind, key = col.split(".", 1)
        assert (key.strip("`") if kind == "metrics" else col) in logged, col
    out = capsys.readouterr().out
    assert (
        f"/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
        + ("&viewStateShareKey=evoprune\n")
        in out
    )
