"""Fault injection: processes killed by PID at chosen moments, torn journals, damaged and
read-only stores, concurrent first starts, bad input and the exit status.

Every study that survives a fault is checked against the same invariants (``assert_intact``):
exactly the target number of COMPLETE trials, no completed trial lost or duplicated, no
MLflow run left RUNNING, and Optuna and MLflow agree run for run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import TINY_BASE, Project
from mlflow import MlflowClient
from optuna.trial import TrialState

from evoprune_core import LayerMask, Operator, hookimpl
from evoprune_core._pause import ENV as PAUSE_ENV
from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.loading import load_run_config
from evoprune_core.plugins import Registry
from evoprune_core.study import load_study_config
from evoprune_core.study._journal import whole_records

optuna.logging.set_verbosity(optuna.logging.WARNING)

SLOW_BASE = TINY_BASE.replace("generations = 2", "generations = 2000")  # killed long before
SMALL_SPACE = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'


# -- helpers --------------------------------------------------------------------------------
def journal(project: Project, name: str) -> Path:
    return project.journal / f"{name}.journal"


def load(project: Project, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(journal(project, name)))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


def mlflow_runs(project: Project, name: str) -> list[Any]:
    client = MlflowClient(project.tracking_uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def assert_intact(project: Project, name: str, target: int) -> optuna.Study:
    """The invariants every surviving study keeps."""
    study = load(project, name)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    runs = mlflow_runs(project, name)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    parents = [r for r in runs if r.data.tags.get("evoprune.role") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = {r.info.run_id: r for r in runs if r.data.tags.get("evoprune.role") == "trial"}
    owned = {t.user_attrs["evoprune.mlflow_run_id"]: t for t in trials}
    assert set(owned) == set(children)  # one run per trial, none without its trial
    for run_id, t in owned.items():
        run = children[run_id]
        assert run.data.tags["trial_number"] == str(t.number)
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert (run.info.status == "FINISHED") == (t.state == TrialState.COMPLETE), t.number
        if t.state == TrialState.COMPLETE:
            assert run.data.metrics["val_loss"] == pytest.approx(t.value)
    finished = [r for r in children.values() if r.info.status == "FINISHED"]
    assert len(finished) == target  # no completed trial counted twice
    return study


def evoprune(project: Project, *args: str, **kw: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "evoprune_core.cli", *args]
    return subprocess.Popen(
        cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 600.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy; the deadline is generous (a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def until_interrupted(timeout: float = 120.0) -> None:
    """Run Python code until a signal's handler raises (a generous deadline, then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise AssertionError(f"no interruption within {timeout} s")


def running_trials(project: Project, name: str) -> list[Any]:
    if not journal(project, name).exists():
        return []
    try:
        trials = load(project, name).trials
    except (KeyError, ValueError):
        return []
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING and "evoprune.mlflow_run_id" in t.user_attrs
    ]


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return stat[0] in ("Z", "X")


def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size (to show that nothing was written)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


# -- 1. creating the store --------------------------------------------------------------------
def test_sigkill_while_the_store_is_created_then_rerun(project: Project) -> None:
    path = project.study_file(name="first", n_trials=2, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path))
    try:  # the chosen moment: the schema is being built in its temporary file
        wait_for(lambda: list(project.store.glob("mlflow.db.creating-*")), what="the build")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc)
    assert not (project.store / "mlflow.db").exists()  # never a half-made store in place
    assert main(project.args(path)) == 0
    assert not list(project.store.glob("mlflow.db.creating-*"))
    assert_intact(project, "first", 2)


def _half_migrated(db: Path, empty_db: Path, with_run: bool) -> None:
    """The state an interrupted migration left (older evoprune): an earlier schema version and
    alembic's scratch table."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_db, db)
    if with_run:
        client = MlflowClient(f"sqlite:///{db}")
        client.create_run(client.create_experiment("earlier work"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '4465047574b1'")
        conn.execute("CREATE TABLE _alembic_tmp_experiments (x INTEGER)")


def test_half_created_store_from_an_older_crash_is_rebuilt(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    _half_migrated(db, empty_mlflow_db, with_run=False)
    path = project.study_file(name="healed", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {db}: an MLflow store left half-created" in err, err
    backups = list(project.store.glob("mlflow.db.broken-*"))
    assert len(backups) == 1
    assert_intact(project, "healed", 1)


def test_half_migrated_store_with_runs_is_reported_with_its_fix(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    _half_migrated(db, empty_mlflow_db, with_run=True)
    before = tree(project.store)
    path = project.study_file(name="kept", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 2
    err = one_error_line(capsys.readouterr().err)
    assert f"error: {db}: MLflow schema version 4465047574b1" in err
    assert f"sqlite3 {db} 'DROP TABLE _alembic_tmp_experiments;' && mlflow db upgrade" in err
    assert {k: v for k, v in tree(project.store).items() if "lock" not in k} == before


def test_current_store_with_a_leftover_scratch_table_is_used_with_a_note(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_mlflow_db, db)
    client = MlflowClient(f"sqlite:///{db}")
    kept = client.create_run(client.create_experiment("earlier work")).info.run_id
    with sqlite3.connect(db) as conn:  # the schema is current; only the scratch table is left
        conn.execute("CREATE TABLE _alembic_tmp_latest_metrics (x INTEGER)")
    path = project.study_file(name="used", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {db}: holds _alembic_tmp_latest_metrics, scratch of an interrupted" in err, (
        err
    )
    assert f"sqlite3 {db} 'DROP TABLE _alembic_tmp_latest_metrics;'" in err
    assert not list(project.store.glob("mlflow.db.broken-*"))  # not rebuilt
    assert MlflowClient(f"sqlite:///{db}").get_run(kept).info.run_id == kept
    assert_intact(project, "used", 1)


def test_two_first_starts_at_once_share_one_store(project: Project) -> None:
    path = project.study_file(name="race", n_trials=2, space=SMALL_SPACE)
    procs = [evoprune(project, *project.args(path)) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert all("Traceback" not in err for _, err in results)
    assert_intact(project, "race", 2)


# -- 2. a torn journal ------------------------------------------------------------------------
def test_torn_journal_tail_is_cut_backed_up_reported_and_rerun(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(name="torn", n_trials=2, space=SMALL_SPACE)
    rc, err = finish(evoprune(project, *project.args(path)))
    assert rc == 0, err
    before = {t.number: t.value for t in load(project, "torn").trials}
    j = journal(project, "torn")
    whole = j.read_bytes()
    os.truncate(j, len(whole) - 5)  # what a crash in the middle of a write leaves

    assert main(["report", "torn", "--store", str(project.store)]) == 0
    out = capsys.readouterr()
    assert out.err.count("\n") == 1, out.err
    assert out.err.startswith(f"warning: {j}: the last 1 journal record(s)")
    backup = next(project.journal.glob("torn.journal.torn-*"))
    assert backup.read_bytes() == whole[:-5]
    assert j.read_bytes() == whole[: whole.rstrip(b"\n").rfind(b"\n") + 1]
    lost = [t for t in load(project, "torn").trials if t.state == TrialState.RUNNING]
    assert len(lost) == 1  # the record that finished it was the torn one

    assert main(project.args(path)) == 0
    study = assert_intact(project, "torn", 2)
    assert study.trials[lost[0].number].state == TrialState.FAIL  # failed, then re-run
    for number, value in before.items():
        if number != lost[0].number:
            assert study.trials[number].value == value
    assert whole_records(j.read_bytes())[1] == 0
    assert all(json.loads(line) for line in j.read_bytes().splitlines())


def test_journal_damaged_inside_is_an_error_not_a_repair(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    j = journal(project, "inner")
    j.parent.mkdir(parents=True)
    j.write_bytes(b'{"op_code": 0}\nnot json\n{"op_code": 1}\n{"op_co')
    assert main(["report", "inner", "--store", str(project.store)]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert f"{j}: line 2: not a journal record" in err
    assert not list(project.journal.glob("*.torn-*"))


# -- 3. signals -------------------------------------------------------------------------------
def test_sigterm_mid_trial_fails_it_kills_the_runs_and_exits_143(stored_project: Project) -> None:
    project = stored_project
    path = project.study_file(name="term", n_trials=2, base=SLOW_BASE, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path))
    try:
        victim = wait_for(lambda: running_trials(project, "term"), what="a running trial")[0]
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        rc, err = finish(proc)
    assert rc == 143
    assert err.strip().splitlines()[-1] == "interrupted (SIGTERM)" and "Traceback" not in err
    study = load(project, "term")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert not running_trials(project, "term")
    runs = {r.info.run_id: r for r in mlflow_runs(project, "term")}
    assert runs[victim.user_attrs["evoprune.mlflow_run_id"]].info.status == "KILLED"
    parent = next(r for r in runs.values() if r.data.tags.get("evoprune.role") == "study")
    assert parent.info.status == "KILLED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_the_parent_stops_its_workers(stored_project: Project, sig: int) -> None:
    project = stored_project
    path = project.study_file(name="crew", n_trials=4, base=SLOW_BASE, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path, "--workers", "2"))
    try:
        busy = wait_for(
            lambda: len(running_trials(project, "crew")) == 2 and running_trials(project, "crew"),
            what="two running trials",  # two workers start and import torch: minutes if loaded
        )
        os.kill(proc.pid, sig)
    finally:
        rc, err = finish(proc)
    assert rc == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[sig], err
    workers = {t.user_attrs["evoprune.pid"] for t in busy}
    assert len(workers) == 2 and proc.pid not in workers
    wait_for(lambda: all(pid_gone(p) for p in workers), what="the workers to stop")
    study = load(project, "crew")
    assert [study.trials[t.number].state for t in busy] == [TrialState.FAIL] * 2, err
    runs = {r.info.run_id: r for r in mlflow_runs(project, "crew")}
    statuses = {runs[t.user_attrs["evoprune.mlflow_run_id"]].info.status for t in busy}
    assert statuses <= {"KILLED", "FAILED"}, err  # FAILED: ended by the other worker's reaping
    if sig != signal.SIGKILL:  # the parent run too is KILLED; after SIGKILL the next start ends it
        assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.parametrize("point", ["import", "run-started", "study-set-up", "trial"])
def test_ctrl_c_at_any_moment_ends_interrupted(project: Project, point: str) -> None:
    """Ctrl-C held at a chosen point (``EVOPRUNE_TEST_PAUSE``), however slow the machine:
    inside an import (held until it is over: numpy and scipy swallow an exception raised inside
    their imports), the parent run just created (before set-up has its id), set-up, a trial."""
    path = project.study_file(name="intr", n_trials=2, base=SLOW_BASE, space=SMALL_SPACE)
    marker = project.root / "paused"
    env = dict(os.environ)
    if point != "trial":
        env[PAUSE_ENV] = f"{point}:{marker}"
    proc = evoprune(project, *project.args(path), env=env)
    try:
        if point == "trial":
            wait_for(lambda: running_trials(project, "intr"), what="a running trial")
        else:
            wait_for(marker.exists, what=f"the start to reach {point}")
        proc.send_signal(signal.SIGINT)
        marker.unlink(missing_ok=True)
    finally:
        rc, err = finish(proc)
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    if point == "import":
        assert not project.store.exists()  # stopped before anything was written
        return
    runs = mlflow_runs(project, "intr")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if r.data.tags.get("evoprune.role") == "study"]
    assert parent.info.status == "KILLED"
    assert not running_trials(project, "intr")
    if point == "trial":
        assert [t.state for t in load(project, "intr").trials][:1] == [TrialState.FAIL]


# -- 4. user mistakes and environment faults: one line, exit 2, nothing written ---------------
def test_non_utf8_files_are_one_line(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project.root / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    for argv in (
        ["run", str(bad)],
        project.args(bad),
        ["report", str(bad), "--store", str(project.store)],
    ):
        assert main(argv) == 2
        err = one_error_line(capsys.readouterr().err)
        assert (
            err
            == f"error: {bad}: not UTF-8 text (byte 0xe9 at offset 11); save the file as UTF-8\n"
        )
    assert not project.store.exists()


def test_store_that_is_a_file_or_a_corrupt_db(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.study_file(name="s", n_trials=1, space=SMALL_SPACE)
    afile = project.root / "afile"
    afile.write_text("x")
    assert main(["study", str(path), "--store", str(afile), "--quiet"]) == 2
    assert one_error_line(capsys.readouterr().err) == f"error: --store: {afile}: not a directory\n"
    project.store.mkdir()
    (project.store / "mlflow.db").write_bytes(b"this is not sqlite" * 100)
    assert main(project.args(path)) == 2
    err = one_error_line(capsys.readouterr().err)
    assert err.startswith(f"error: {project.store / 'mlflow.db'}: not a usable MLflow sqlite")
    assert f"mv {project.store / 'mlflow.db'} " in err
    assert tree(project.store) == {"mlflow.db": 1800}


def test_bad_data_path_is_refused_before_the_store_exists(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    base = TINY_BASE.replace(
        'name = "bc-10-100-1000"', 'name = "file"\nparams = { path = "missing.npy" }'
    )
    path = project.study_file(name="nodata", n_trials=1, base=base, space=SMALL_SPACE)
    assert main(project.args(path)) == 2
    err = one_error_line(capsys.readouterr().err)
    assert err == f"error: {path}: data.path: missing.npy: no such file\n"
    assert not project.store.exists()


def test_run_outputs_are_checked_before_the_run(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = project.root / "run.toml"
    cfg.write_text("generations = 1\n[network]\nencoder = [8, 4]\n", encoding="utf-8")
    adir = project.root / "adir"
    adir.mkdir()
    missing = project.root / "nodir" / "m.pt"
    cases = [
        (["--output", str(adir)], f"error: --output: {adir}: is a directory; give a file name"),
        (["--save-model", str(adir)], f"error: --save-model: {adir}: is a directory; give a"),
        (["--save-model", str(missing)], f"error: --save-model: directory {missing.parent} does"),
        (["--output", str(missing)], f"error: --output: directory {missing.parent} does not"),
    ]
    for extra, message in cases:
        assert main(["run", str(cfg), "--quiet", *extra]) == 2
        out = capsys.readouterr()
        assert one_error_line(out.err).startswith(message)
        assert out.out == ""  # refused before the run, not after it
    assert list(project.root.rglob("*.tmp")) == [] and list(adir.iterdir()) == []


def _read_only(directory: Path) -> list[str]:
    """A command prefix under which ``directory`` is read-only, also for root.

    chmod does not stop root; a read-only bind mount in a private user+mount namespace does.
    """
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to make a directory read-only for root")
    d = str(directory)
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && ! touch {d}/.probe"],
        capture_output=True,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("this machine does not allow a user namespace with a read-only bind mount")
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec "$0" "$@"']  # fmt: skip


def test_read_only_store_is_one_line(stored_project: Project) -> None:
    project = stored_project
    path = project.study_file(name="ro", n_trials=1, space=SMALL_SPACE)
    before = tree(project.store)
    prefix = _read_only(project.store)
    try:
        cmd = [*prefix, sys.executable, "-m", "evoprune_core.cli", *project.args(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=project.root, timeout=120)
    finally:
        project.store.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    err = one_error_line(proc.stderr)
    assert err.startswith(f"error: --store: {project.store}: not writable (")
    assert tree(project.store) == before


# -- 5. strict types --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ('generations = "5"', [], "generations: Input should be a valid integer (got '5')"),
        ("", ["generations=true"], "generations: Input should be a valid integer (got True)"),
        ('[training]\nlr = "0.01"', [], "training.lr: Input should be a valid number (got '0.01')"),
        ("[network]\nencoder = [8, true]", [], "network.encoder.1: Input should be a valid int"),
    ],
)
def test_strict_run_types(tmp_path: Path, text: str, overrides: list[str], message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    assert message in str(info.value)


def test_strict_types_keep_what_toml_means(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[training]\nlr = 1\nbetas = [0, 0.5]\n", encoding="utf-8")
    cfg = load_run_config(path, ["generations=5", "data.name=digits", "network.encoder=[9, 3]"])
    assert (cfg.generations, cfg.training.lr, cfg.training.betas) == (5, 1.0, (0.0, 0.5))
    assert isinstance(cfg.training.lr, float) and cfg.network.encoder == (9, 3)
    assert cfg.data.name == "digits"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('n_trials = "3"', "n_trials: Input should be a valid integer (got '3')"),
        ('baseline = "no"', "baseline: Input should be a valid boolean (got 'no')"),
        ("seeds = [1.0]", "seeds.0: Input should be a valid integer (got 1.0)"),
    ],
)
def test_strict_study_types(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "st.toml"
    path.write_text(f'name = "st"\n{header}\n' + TINY_BASE + SMALL_SPACE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_study_config(path, Registry.load(env={"EVOPRUNE_PLUGINS": "none"}))
    assert message in str(info.value)


def test_empty_space_and_oversized_batch_warn(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    base = TINY_BASE.replace("batch_size = 50", "batch_size = 5000")
    path = project.study_file(name="flat", n_trials=1, base=base, space="")
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: space: empty; every trial runs the [base] configuration" in err, err
    assert "warning: training.batch_size 5000 exceeds the 1000 training rows" in err
    assert_intact(project, "flat", 1)


# -- 6. honest exit status --------------------------------------------------------------------
class _Boom(Operator):
    name = "boom"

    def prune(self, ctx: Any) -> list[LayerMask]:
        raise RuntimeError("boom operator exploded")


class _BoomPlugin:
    @hookimpl
    def evoprune_register_operators(self) -> list[Any]:
        return [_Boom]


def test_a_study_short_of_its_target_exits_1_and_says_why(
    stored_project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    load_registry = Registry.load
    monkeypatch.setattr(
        Registry,
        "load",
        classmethod(lambda cls, **kw: load_registry(extra=[(_BoomPlugin(), "boom-ops")])),
    )
    space = '[space]\n"pruning.operator" = { choices = ["boom"] }\n'
    base = TINY_BASE + "[base.pruning]\nprobability = 1.0\n"
    path = project.study_file(
        name="short", n_trials=2, header="baseline = false", base=base, space=space
    )
    assert main(project.args(path)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "error: study 'short' ended short of its target: 0/2 trials complete, 3 failed; most "
        "frequent error (3x): RuntimeError: boom operator exploded; fix the cause and run the "
        "same command again to resume"
    )
    study = load(project, "short")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    runs = mlflow_runs(project, "short")
    assert sorted(r.info.status for r in runs) == ["FAILED"] * 4  # 3 trials and the study


def test_a_worker_lets_repeated_signals_pass_during_its_clean_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker's parent-death signal comes once per thread of the dying parent: after the
    first, none may end the worker's clean-up (a user's process would exit at the third)."""
    from evoprune_core.cli._signals import Terminated, interruptible

    with interruptible(insist=False):
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            until_interrupted()
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    assert capsys.readouterr().err == ""


def test_a_signal_while_sqlalchemy_closes_a_connection_waits_for_the_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy's pool logs an interruption of a connection's close with its traceback (the
    user saw one under "interrupted"): the signal is raised once the close is over."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from evoprune_core.cli._signals import interruptible

    closed: list[bool] = []

    class SlowToClose:
        """A sqlite3 connection whose close receives Ctrl-C half-way."""

        def __init__(self) -> None:
            self._conn = sqlite3.connect(tmp_path / "db.sqlite")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def close(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
            self._conn.close()
            closed.append(True)

    engine = sqlalchemy.create_engine("sqlite://", creator=SlowToClose, poolclass=NullPool)
    with interruptible(), pytest.raises(KeyboardInterrupt):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar() == 1
        until_interrupted()  # the held signal is raised here, 50 ms after the close
    assert closed == [True]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_signal_during_a_write_waits_for_it_and_leaves_the_store_unlocked(
    tmp_path: Path,
) -> None:
    """A worker's SIGTERM arrived in the middle of an MLflow write (inside SQLAlchemy's
    INSERT, seen under load in `test_a_signal_to_the_parent_stops_its_workers[9]`): the
    clean-up's own writes then found the store locked and the run stayed RUNNING. The signal
    now waits until SQLAlchemy is done: the write completes (without the hold it is cut and its
    row lost) and the store takes the next write."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from evoprune_core.cli._signals import Terminated, interruptible

    db = tmp_path / "db.sqlite"

    class SlowInsert:
        """A sqlite3 cursor whose INSERT receives SIGTERM half-way."""

        def __init__(self, cursor: sqlite3.Cursor) -> None:
            self._cursor = cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)  # the slow moment: the statement is still running
            return self._cursor.execute(sql, *args)

    class Connection:
        def __init__(self) -> None:
            self._conn = sqlite3.connect(db, timeout=0.1)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def cursor(self) -> SlowInsert:
            return SlowInsert(self._conn.cursor())

    engine = sqlalchemy.create_engine("sqlite://", creator=Connection, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tags (k TEXT)")
    with interruptible(insist=False), pytest.raises(Terminated):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tags VALUES ('error')")
        until_interrupted()  # raised here, once SQLAlchemy has committed
    with sqlite3.connect(db, timeout=0.1) as other:  # the clean-up's write: not locked
        other.execute("INSERT INTO tags VALUES ('KILLED')")
    with sqlite3.connect(db) as other:
        assert [r[0] for r in other.execute("SELECT k FROM tags")] == ["error", "KILLED"]
