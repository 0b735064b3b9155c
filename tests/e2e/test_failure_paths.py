"""Failure paths found by fault injection: each ends as one ``error:`` line, nothing half-written.

A lying ``.npy`` header, too many workers, a worker whose study process died, a full disk,
non-finite numbers in every float key, an unreachable database.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from evoprune_core._fs import write_output
from evoprune_core.config import RunConfig
from evoprune_core.data import from_file
from evoprune_core.errors import ConfigError, DataError
from evoprune_core.evolve.config import EvolveFile, load_evolve_config
from evoprune_core.loading import load_run
from evoprune_core.plugins import Registry
from tests._processes import pid_gone, wait_for
from tests.conftest import Project

ROOT = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "evoprune_core.cli", *args],
        cwd=cwd,
        stdout=kw.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        env=env,
        **kw,
    )


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _lying_npy(path: Path, shape: tuple[int, ...], data: bytes) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    path.write_bytes(buf.getvalue() + data)


# -- a .npy whose header lies ------------------------------------------------------------------
def test_a_npy_header_promising_far_more_data_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    _lying_npy(path, (10**9, 10**9), np.zeros(12).tobytes())
    with pytest.raises(DataError) as info:
        from_file(path)
    assert str(info.value) == (
        f"data.path: {path}: the .npy header promises shape (1000000000, 1000000000) of "
        "float64 (8000000000000000000 bytes) but the file holds 96 bytes of data"
    )


def test_a_truncated_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, np.zeros((4, 3)))
    whole = path.read_bytes()
    path.write_bytes(whole[:-8])
    with pytest.raises(DataError, match=r"promises shape \(4, 3\) of float64 \(96 bytes\) but "
                       r"the file holds 88 bytes of data$"):  # fmt: skip
        from_file(path)
    path.write_bytes(whole[:20])  # the header itself cut
    with pytest.raises(DataError, match=r"cannot read \.npy file \(EOF: reading array header"):
        from_file(path)


def test_a_lying_npy_through_the_cli_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    _lying_npy(path, (10**9, 10**9), np.zeros(12).tobytes())
    run = tmp_path / "run.toml"
    run.write_text(f'generations = 1\n[data]\nname = "file"\nparams = {{ path = "{path}" }}\n')
    proc = cli(tmp_path, "run", str(run), "--quiet")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert "the .npy header promises shape (1000000000, 1000000000)" in line
    assert str(path) in line and proc.stdout == ""


# -- too many workers --------------------------------------------------------------------------
def test_workers_above_four_times_the_cores_are_refused(project: Project) -> None:
    path = project.study_file()
    cores = len(os.sched_getaffinity(0))
    proc = cli(project.root, *project.args(path, "--workers", "100000"))
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        f"error: --workers: at most {4 * cores} (4 x the {cores} cores this process may use), "
        "got 100000"
    )
    assert not project.store.exists()  # nothing created


# -- a worker whose study process is gone ------------------------------------------------------
def test_a_worker_started_after_its_study_died_exits_before_importing(project: Project) -> None:
    path = project.study_file()
    env = {**os.environ, "EVOPRUNE_STUDY_PARENT": "1"}  # not this worker's parent
    proc = cli(project.root, *project.args(path, "--worker-index", "0"), env=env)
    assert proc.returncode == 1
    assert proc.stderr == "evoprune: worker: the study process is gone; exiting\n"
    assert not project.store.exists()


_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from evoprune_core.cli._signals import interruptible
try:
    with interruptible(insist=False):
        import blocker  # never finishes: a signal is held back while a module imports
except KeyboardInterrupt as exc:  # as evoprune's main() ends an interrupted command
    print(f"interrupted ({exc})", file=sys.stderr)
    sys.exit(143)
"""

_BLOCKER = """
import time
from pathlib import Path
Path({marker!r}).write_text("importing")
while True:
    time.sleep(0.05)
"""

_MIDDLE = """
import os, subprocess, sys, time
from pathlib import Path
from evoprune_core._parent import PARENT_ENV
from evoprune_core.study._workers import _die_with_parent
child, mods, marker, pidfile, log = sys.argv[1:6]
env = {{**os.environ, PARENT_ENV: str(os.getpid())}}
proc = subprocess.Popen(
    [sys.executable, child, mods], env=env, stderr=open(log, "w"),
    preexec_fn=_die_with_parent(os.getpid()), start_new_session=True,
)
Path(pidfile).write_text(str(proc.pid))
deadline = time.monotonic() + {deadline}
while not Path(marker).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
os._exit(0)  # the study process dies while its worker is still importing
"""


def test_a_worker_whose_study_died_during_its_imports_exits_at_once(tmp_path: Path) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    marker, pidfile, log = tmp_path / "marker", tmp_path / "pid", tmp_path / "child.log"
    (mods / "blocker.py").write_text(_BLOCKER.format(marker=str(marker)))
    (tmp_path / "child.py").write_text(_CHILD)
    (tmp_path / "middle.py").write_text(_MIDDLE.format(deadline=120))
    middle = subprocess.run(
        [sys.executable, str(tmp_path / "middle.py"), str(tmp_path / "child.py"), str(mods),
         str(marker), str(pidfile), str(log)],
        cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert middle.returncode == 0 and marker.exists()
    child = int(pidfile.read_text())
    try:
        wait_for(lambda: pid_gone(child), 60, "the orphaned worker to exit")
    finally:
        if not pid_gone(child):
            os.kill(child, signal.SIGKILL)
    assert log.read_text() == "interrupted (SIGTERM)\n"  # raised inside the import


# -- a full disk -------------------------------------------------------------------------------
@pytest.fixture
def full_disk() -> Iterator[Path]:
    dev = Path("/dev/full")
    if not dev.exists():
        pytest.skip("no /dev/full on this system")
    yield dev
    assert stat.S_ISCHR(dev.stat().st_mode)  # still the device: never renamed over


@pytest.mark.parametrize("option", ["--output", "--save-model"])
def test_a_run_writing_to_a_full_disk_exits_1_with_one_line(
    tmp_path: Path, full_disk: Path, option: str
) -> None:
    proc = cli(
        tmp_path, "run", str(ROOT / "studies/runs/canonical.toml"), "--set", "generations=1",
        "--quiet", option, str(full_disk),
    )  # fmt: skip
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == (
        f"error: {option}: /dev/full: cannot write (No space left on device); nothing written"
    )
    assert proc.stdout == ""  # no summary of a result that was not saved


def test_standard_output_on_a_full_disk_exits_1_with_one_line(
    tmp_path: Path, full_disk: Path
) -> None:
    with full_disk.open("w") as out:
        proc = cli(tmp_path, "plugins", stdout=out)
    assert proc.returncode == 1
    assert proc.stderr == "error: standard output: cannot write (No space left on device)\n"


def test_write_output_replaces_a_file_whole_or_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(TypeError):  # fails half-way (a bug, not a full disk): propagates
        write_output("--output", target, object())  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert target.read_text() == "old"
    assert write_output("--output", target, "new\n") == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert target.read_text() == "new\n"


# -- non-finite numbers ------------------------------------------------------------------------
def _float_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, TOML value with an infinity) for every float field of ``model``."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _float_keys(ann, f"{prefix}{name}.")
        elif ann is float or (isinstance(ann, types.UnionType) and args == [float]):
            yield f"{prefix}{name}", "{}"
        elif typing.get_origin(ann) in (list, tuple) and float in args:
            yield f"{prefix}{name}", "[{}" + ", 0.5" * (len(args) - 1) + "]"


RUN_FLOATS = sorted(_float_keys(RunConfig))
EVOLVE_FLOATS = sorted(_float_keys(EvolveFile))


def test_the_float_key_walk_finds_the_known_keys() -> None:
    keys = {k for k, _ in RUN_FLOATS}
    assert {"coevolution.lr_max", "training.lr", "training.betas", "pruning.amount"} <= keys
    assert len(RUN_FLOATS) >= 10  # (more as keys are added: each is tested below)
    assert {"fitness.fractions", "fitness.lr", "evolution.crossover"} <= {
        k for k, _ in EVOLVE_FLOATS
    }


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(("key", "shape"), RUN_FLOATS)
def test_every_run_float_key_refuses_non_finite_numbers(key: str, shape: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_run(None, [f"{key}={shape.format(value)}"])
    assert str(info.value).startswith(f"<defaults>: {key}")
    assert "Input should be a finite number" in str(info.value)


@pytest.mark.parametrize(("key", "shape"), EVOLVE_FLOATS)
def test_every_evolution_float_key_refuses_infinity(tmp_path: Path, key: str, shape: str) -> None:
    path = tmp_path / "evo.toml"
    path.write_text('name = "e"\n')
    with pytest.raises(ConfigError) as info:
        load_evolve_config(path, [f"{key}={shape.format('inf')}"], Registry.load())
    assert str(info.value).startswith(f"{path}: {key}")
    assert "Input should be a finite number" in str(info.value)


def test_the_cli_refuses_an_infinite_learning_rate_bound(tmp_path: Path) -> None:
    proc = cli(
        tmp_path, "run", str(ROOT / "studies/runs/coevolution.toml"),
        "--set", "coevolution.lr_max=inf",
    )  # fmt: skip
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        f"error: {ROOT / 'studies/runs/coevolution.toml'}: coevolution.lr_max: Input should be "
        "a finite number (got inf)"
    )


def test_a_space_range_refuses_non_finite_bounds(project: Project) -> None:
    space = '[space]\n"pruning.amount" = { low = 0.1, high = inf }\n'
    path = project.study_file(space=space)
    proc = cli(project.root, *project.args(path))
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        f"error: {path}: space.pruning.amount: low and high must be finite numbers (got 0.1, inf)"
    )
    assert not project.store.exists()


# -- an unreachable database -------------------------------------------------------------------
def test_an_unreachable_postgresql_storage_is_one_line(project: Project) -> None:
    pytest.importorskip("psycopg")
    path = project.study_file()
    url = "postgresql://u:p@127.0.0.1:1/db"
    for args in (project.args(path, "--storage", url), ["report", str(path), "--storage", url]):
        proc = cli(project.root, *args)
        assert proc.returncode == 2
        assert one_error_line(proc.stderr) == (
            "error: --storage: postgresql://u:***@127.0.0.1:1/db: cannot connect (connection to "
            'server at "127.0.0.1", port 1 failed: Connection refused); check that the database '
            "server runs and accepts connections"
        )
    assert not project.store.exists()  # nothing written (the password is not shown either)


def test_a_silent_database_server_times_out(project: Project) -> None:
    """A server that accepts the connection and never answers: the connect timeout ends it."""
    pytest.importorskip("psycopg")
    path = project.study_file()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://u:p@127.0.0.1:{port}/db"
        proc = cli(project.root, *project.args(path, "--storage", url))
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        f"error: --storage: postgresql://u:***@127.0.0.1:{port}/db: cannot connect (connection "
        "timeout expired); check that the database server runs and accepts connections"
    )


def test_the_connect_timeout_is_bounded() -> None:
    from evoprune_core.study._storage import CONNECT_TIMEOUT

    assert CONNECT_TIMEOUT == 10
