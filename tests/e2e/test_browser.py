"""The study in a real browser: the MLflow UI shows the trials as child runs, named by what ran,
with the objective metrics and the combination's params as columns of the runs table.

Needs ``chromium`` on PATH (Debian's ``chromium`` package) and Playwright's Python package;
the browser is driven headless with no network access beyond the loopback MLflow server.
Without them the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import mlflow
import pytest

from evoprune_core.cli import main
from evoprune_core.cli._study import runs_page
from tests.conftest import Project, require_service, start_mlflow_server, stop_server

#: found on PATH as ``.ci/services.sh`` finds it (``command -v chromium``)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


#: the runs table's columns that ``evoprune ui`` opens with (col-id: header)
COLUMNS = {
    "metrics.`val_loss`": "val_loss",
    "metrics.`remaining_fraction`": "remaining_fraction",
    "params.`engine`": "engine",
    "params.`operator`": "operator",
    "params.`schedule`": "schedule",
}


def _shown(run: mlflow.entities.Run, col: str) -> str:
    """A cell as the UI writes it: a metric as JavaScript prints the number, a param as is."""
    kind, key = col.split(".", 1)
    key = key.strip("`")
    if kind == "params":
        return run.data.params.get(key, "-")
    value = run.data.metrics[key]
    return str(int(value)) if value.is_integer() else repr(value)


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_service(CHROMIUM is not None, "chromium is not on PATH (apt-get install -y chromium)")


def test_trials_are_child_runs_of_the_study_run_in_the_mlflow_ui(
    stored_project: Project, free_port: Callable[[], int]
) -> None:
    try:
        from playwright import sync_api
    except ImportError:
        require_service(False, "playwright is not installed (pip install -e '.[dev]')")
    project = stored_project
    path = project.study_file(name="browser", n_trials=2)
    assert main(project.args(path)) == 0
    mlflow.set_tracking_uri(project.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["browser"], output_format="list")
    parent = next(r for r in runs if r.data.tags["evoprune.role"] == "study")
    child = next(
        r
        for r in runs
        if r.data.tags["evoprune.role"] == "trial" and r.data.tags["trial_number"] == "1"
    )
    exp = parent.info.experiment_id

    port = free_port()
    server = start_mlflow_server(
        project.store / "mlflow.db", project.store / "artifacts", port, project.root / "ui.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 2400, "height": 1000})
            # without the shared view MLflow shows no metric or param column (its default)
            page.goto(f"{base}{runs_page(exp, view=False)}", wait_until="domcontentloaded")
            page.get_by_text("3 matching runs").wait_for(timeout=90_000)
            page.locator('.ag-header-cell[col-id="attributes.`Run Name`"]').wait_for()
            assert page.locator('.ag-header-cell[col-id^="metrics."]').count() == 0
            assert page.locator('.ag-header-cell[col-id^="params."]').count() == 0
            # the experiment's runs table lists the study run; expanding it shows the trials
            page.goto(f"{base}{runs_page(exp)}", wait_until="domcontentloaded")
            page.get_by_text("3 matching runs").wait_for(timeout=90_000)
            expander = page.locator(".ag-row", has_text="browser").locator(
                "button[data-component-id*='runnamecellrenderer']"
            )
            expander.first.wait_for(timeout=30_000)
            names = sorted(r.info.run_name for r in runs if r.data.tags["evoprune.role"] == "trial")
            # the run names say what ran: engine, operator/schedule, or baseline
            assert names[0] == "t0000 canonical baseline"
            assert re.fullmatch(r"t0001 canonical [a-z_]+/[a-z_]+", names[1]), names
            assert page.get_by_text(names[1]).count() == 0  # nested under the study run
            expander.first.click()
            for name in names:  # read off the rendered runs page
                page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            # the shared view (tracking.runs_view) shows the objective metric, remaining_fraction
            # and the combination's params as columns, without any column picked by hand
            trials = [r for r in runs if r.data.tags["evoprune.role"] == "trial"]
            for col, label in COLUMNS.items():
                header = page.locator(f'.ag-header-cell[col-id="{col}"]').first
                header.wait_for(timeout=30_000)
                assert header.inner_text().strip() == label, col
                for run in trials:
                    cell = page.locator(f'.ag-row[row-id="{run.info.run_id}"] [col-id="{col}"]')
                    assert cell.first.inner_text().strip() == _shown(run, col), (col, run.info)
            # a trial's page names the study run as its parent and lists its params
            page.goto(
                f"{base}/#/experiments/{exp}/runs/{child.info.run_id}",
                wait_until="domcontentloaded",
            )
            page.get_by_text("Parent run", exact=True).wait_for(timeout=60_000)
            page.get_by_text("Parameters (", exact=False).first.wait_for(timeout=30_000)
            deadline = time.monotonic() + 30
            text = ""
            while time.monotonic() < deadline and not re.search(r"Parent run\s+browser\s", text):
                page.wait_for_timeout(500)
                text = page.locator("body").inner_text()
            assert re.search(r"Parent run\s+browser\s", text), text[:3000]
            for key in ("pruning.operator", "pruning.schedule", "trial_number", "generations"):
                assert f"\n{key}\n{child.data.params[key]}\n" in text, key
            browser.close()
    finally:
        stop_server(server)


def test_chromium_binary_runs() -> None:
    out = subprocess.run(
        [str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and "Chromium" in out.stdout, out.stderr
    assert shutil.which(sys.executable)
