"""User mistakes and environment faults: one line, exit status 2, nothing written; a study short of
its target exits 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from evoprune_core import LayerMask, Operator, hookimpl
from evoprune_core.cli import main
from evoprune_core.plugins import Registry
from tests._processes import SMALL_SPACE, load, mlflow_runs, one_error_line, tree
from tests.conftest import TINY_BASE, Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


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
