"""The MLflow tracker (``tracking = "mlflow"``, the default): one experiment and one parent run
per study, a child run per trial.

Everything in ``Tracker`` goes through an ``MlflowClient`` bound to one tracking URI (a local sqlite store or
an ``mlflow server``), never through MLflow's process-global active run, so any process on any
machine can add a child run to a study's parent run.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

from .._pause import pause_point
from ..config import RunConfig, flatten
from ..version import __version__
from ._protocol import StudyRun, TrackerBackend, param_value
from ._sqlite_store import quiet_mlflow

if TYPE_CHECKING:
    import numpy as np
    import torch
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from ._protocol import SavesMasks

P = ParamSpec("P")
R = TypeVar("R")

# mlflow (~1.6 s to import) loads when a tracker is built, not when the registry lists it
__all__ = [
    "VIEW_KEY",
    "VIEW_TAG",
    "Tracker",
    "TrialRun",
    "default_tracking_uri",
    "history_csv",
    "runs_view",
]

ROLE = "evoprune.role"
_KIND = "mlflow.experimentKind"  # the UI opens such experiments on their runs, not GenAI views
_FLUSH_SECONDS = 10.0  # per-generation metrics go out in few batches
#: the experiment's shared view of the runs table (``…/runs?viewStateShareKey=evoprune``)
VIEW_KEY = "evoprune"
VIEW_TAG = "mlflow.sharedViewState." + VIEW_KEY  # how MLflow's UI stores a view it shares
#: the short params of a trial's combination (``study._trial``), as columns
_VIEW_PARAMS = ("engine", "operator", "schedule", "probability", "amount")


def default_tracking_uri(store: Path) -> str:
    """``sqlite:///<abs store>/mlflow.db``."""
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def runs_view(objectives: Iterable[str]) -> str:
    """The runs table's columns as MLflow's UI shares a view: the objective metrics (and
    ``remaining_fraction``), the combination's short params and the duration.

    MLflow 3's runs table shows no metric or param column until one is picked by hand; a view
    shared under an experiment tag ``mlflow.sharedViewState.<key>`` is what its UI loads when
    the address carries ``viewStateShareKey=<key>`` (``evoprune ui`` prints such addresses).
    """
    metrics = list(dict.fromkeys([*objectives, "remaining_fraction"]))
    columns = [f"metrics.`{m}`" for m in metrics] + [f"params.`{p}`" for p in _VIEW_PARAMS]
    name = "attributes.`Run Name`"  # wide enough for ``t0007 coevolution magnitude/population``
    return json.dumps(
        {
            "selectedColumns": [*columns, "attributes.`Duration`"],
            "columnOrder": [name, "runDateAndNestInfo", *columns, "attributes.`Duration`"],
            "columnWidths": {name: 300},
        }
    )


def _retry(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call an MLflow write, retrying briefly when a shared sqlite store is locked."""
    for attempt in range(6):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only 'locked' is retried
            if "locked" not in str(exc).lower() or attempt == 5:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable: the last attempt returns or raises")


class Tracker(TrackerBackend):
    """``Tracking`` with MLflow: experiment, parent run, trial runs, study artifacts."""

    name: ClassVar[str] = "mlflow"
    description: ClassVar[str] = (
        "MLflow: an experiment and a parent run per study, a child run per trial"
    )

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        quiet_mlflow()
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)

    def experiment(self, name: str) -> str:
        """The experiment named ``name`` (created with artifacts under ``artifact_root``)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return str(exp.experiment_id)
        location = None
        if self.artifact_root is not None:
            location = (self.artifact_root / name).resolve().as_uri()
        try:
            return str(
                self.client.create_experiment(
                    name, artifact_location=location, tags={_KIND: "custom_model_development"}
                )
            )
        except Exception:  # another worker created it first
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def parent_run(self, experiment_id: str, study: str, params: dict[str, Any]) -> str:
        """The study's run: found again by its tags, else created."""
        return self._find_or_create(experiment_id, {ROLE: "study", "study": study}, study, params)

    def _find_or_create(
        self, experiment_id: str, key: dict[str, str], name: str, params: dict[str, Any]
    ) -> str:
        """The first run tagged with every ``key`` tag (set RUNNING again), else a new one
        named ``name`` with those tags and ``params``."""
        from mlflow.entities import Param

        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in key.items())
        found = self.client.search_runs(
            [experiment_id], filter_string=where, max_results=1,
            order_by=["attributes.start_time ASC"],
        )  # fmt: skip
        if found:
            run_id = found[0].info.run_id
            _retry(self.client.update_run, run_id, status="RUNNING")
        else:
            run_id = self.client.create_run(
                experiment_id, run_name=name, tags={**key, "evoprune_version": __version__}
            ).info.run_id
        try:  # the caller ends the run once it has its id; until then, this does
            pause_point("run-started")
            if not found:
                items = [Param(k, param_value(v)[:6000]) for k, v in sorted(params.items())]
                for i in range(0, len(items), 100):
                    _retry(self.client.log_batch, run_id, params=items[i : i + 100])
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: not left RUNNING
            _retry(self.client.set_terminated, run_id, "KILLED")
            raise
        return run_id

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        """The study's experiment and parent run (found again on resume, else created); the
        experiment shares the view of its runs table with the study's columns (``runs_view``)."""
        exp_id = self.experiment(name)
        view = runs_view(params.get("objectives") or ["val_loss"])
        _retry(self.client.set_experiment_tag, exp_id, VIEW_TAG, view)
        return StudyRun(exp_id, self.parent_run(exp_id, name, params))

    def start_trial(
        self, study: StudyRun, name: str, number: int, tags: dict[str, str]
    ) -> TrialRun:
        """A child run of the study's parent run for trial ``number``, named by the
        ``mlflow.runName`` tag if given (what ran: ``t0007 coevolution magnitude/fixed``)."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        tags = dict(tags)
        run = _retry(
            self.client.create_run,
            study.experiment_id,
            run_name=tags.pop(MLFLOW_RUN_NAME, f"t{number:04d}"),
            tags={
                MLFLOW_PARENT_RUN_ID: study.run_id,
                ROLE: "trial",
                "study": name,
                "trial_number": str(number),
                "evoprune_version": __version__,
                **tags,
            },
        )
        try:  # the caller ends the run once it holds the TrialRun; until then, this does
            pause_point("trial-started")
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): the run is not left RUNNING
            _retry(self.client.set_terminated, run.info.run_id, "KILLED")
            raise
        return TrialRun(self, run.info.run_id)

    def close_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run (e.g. one whose worker died); a run already ended is left alone."""
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            return
        if error is not None:
            _retry(self.client.set_tag, run_id, "error", error[:5000])
        _retry(self.client.set_terminated, run_id, status)

    def fail_finished_run(self, run_id: str, error: str) -> bool:
        """Mark a FINISHED run FAILED with ``error`` (its result was lost); True if it was."""
        if self.client.get_run(run_id).info.status != "FINISHED":
            return False
        _retry(self.client.set_tag, run_id, "error", error[:5000])
        _retry(self.client.set_terminated, run_id, "FAILED")
        return True

    def running_trial_runs(self, study: StudyRun, name: str) -> list[tuple[str, int]]:
        """``(run id, trial number)`` of the study's trial runs that are still RUNNING."""
        found = self.client.search_runs(
            [study.experiment_id],
            filter_string=(
                f"tags.`{ROLE}` = 'trial' and tags.study = '{name}' "
                "and attributes.status = 'RUNNING'"
            ),
            max_results=10_000,
        )
        return [(r.info.run_id, int(r.data.tags.get("trial_number", -1))) for r in found]

    def finish_study(
        self, study: StudyRun, status: str = "FINISHED", session_seconds: float | None = None
    ) -> None:
        """End the study's run. With ``session_seconds`` (how long this command ran the study)
        its duration becomes the time the study ran over all its sessions, not the time since
        it first started; tags ``active_seconds``, ``sessions`` and ``resumes`` say so."""
        if session_seconds is None:
            _retry(self.client.set_terminated, study.run_id, status)
            return
        from mlflow.entities import RunTag

        run = self.client.get_run(study.run_id)
        before = run.data.tags
        ms = int(round(float(before.get("active_seconds", "0")) * 1000 + session_seconds * 1000))
        sessions = int(before.get("sessions", "0")) + 1
        tags = [
            RunTag("active_seconds", f"{ms / 1000:.3f}"),
            RunTag("sessions", str(sessions)),
            RunTag("resumes", str(sessions - 1)),
        ]
        _retry(self.client.log_batch, study.run_id, tags=tags)
        _retry(self.client.set_terminated, study.run_id, status, run.info.start_time + ms)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """Log a local file as an artifact of the run (under ``artifact_path``, if given)."""
        _retry(self.client.log_artifact, run_id, str(path), artifact_path)

    def artifact_location(self, run_id: str, artifact_file: str) -> str:
        """Where an artifact of the run lives: a local path for a file store, else its URI."""
        from urllib.parse import unquote, urlparse

        uri = f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_file}"
        parsed = urlparse(uri)
        return unquote(parsed.path) if parsed.scheme == "file" else uri

    def start_run(self, experiment: str, role: str, name: str, params: dict[str, Any]) -> StudyRun:
        """The run tagged ``role``/``name`` in the experiment called ``experiment`` (found again
        on resume), else a new one."""
        exp_id = self.experiment(experiment)
        return StudyRun(exp_id, self.named_run(exp_id, role, name, params))

    def named_run(self, experiment_id: str, role: str, name: str, params: dict[str, Any]) -> str:
        """The run tagged ``role``/``name`` in the experiment (found again on resume), else new."""
        return self._find_or_create(
            experiment_id, {ROLE: role, "evoprune.name": name}, name, params
        )

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Numeric metrics at ``step`` (one batch)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        _retry(self.client.log_batch, run_id, metrics=batch)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            path.write_text(text, encoding="utf-8")
            parent = str(Path(artifact_file).parent)
            _retry(self.client.log_artifact, run_id, str(path), None if parent == "." else parent)


@dataclass
class TrialRun:
    """One trial's child run: per-generation metrics, final metrics, artifacts."""

    tracker: Tracker
    run_id: str
    _buffer: list[Metric] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    @property
    def client(self) -> MlflowClient:
        return self.tracker.client

    def log_config(
        self,
        cfg: RunConfig,
        seeds: Iterable[int],
        number: int,
        short: dict[str, Any] | None = None,
    ) -> None:
        """Params: the resolved configuration (dotted keys), its seeds, the trial number, and
        ``short`` (what the trial sampled under short names: operator, schedule, ...)."""
        from mlflow.entities import Param

        flat = flatten(cfg)
        flat.pop("seed", None)
        flat["seeds"] = ",".join(str(s) for s in seeds)
        flat["trial_number"] = number
        for key, value in (short or {}).items():
            flat.setdefault(key, value)
        params = [Param(k, param_value(v)[:6000]) for k, v in sorted(flat.items())]
        for i in range(0, len(params), 100):
            _retry(self.client.log_batch, self.run_id, params=params[i : i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        _retry(
            self.client.log_batch,
            self.run_id,
            tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()],
        )

    def generation(self, step: int, record: dict[str, float], prefix: str = "") -> None:
        """Buffer one generation's numeric record; flush every couple of seconds."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in record.items():
            if key == "generation" or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                self._buffer.append(Metric(prefix + key, float(value), now, step))
        if time.monotonic() - self._last_flush > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for i in range(0, len(self._buffer), 1000):
            _retry(self.client.log_batch, self.run_id, metrics=self._buffer[i : i + 1000])
        self._buffer.clear()
        self._last_flush = time.monotonic()

    def final(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        self.flush()

    def artifacts(
        self,
        cfg: RunConfig,
        seeds: Iterable[int],
        summaries: list[dict[str, Any]],
        model: torch.nn.Module,
        population: SavesMasks,
        input_example: np.ndarray,
    ) -> None:
        """Resolved config, history CSV, plots, the compact model and the masks."""
        from ._figures import layer_sparsity_figure, training_figure

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            config = cfg.model_dump(mode="json")
            config.pop("seed", None)
            config["seeds"] = list(seeds)
            (d / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
            (d / "history.csv").write_text(history_csv(summaries), "utf-8")
            training_figure(summaries).savefig(d / "training.png", dpi=72)
            layer_sparsity_figure(summaries).savefig(d / "layer_sparsity.png", dpi=72)
            for name in ("config.json", "history.csv"):
                _retry(self.client.log_artifact, self.run_id, str(d / name))
            for name in ("training.png", "layer_sparsity.png"):
                _retry(self.client.log_artifact, self.run_id, str(d / name), "plots")
            (d / "masks").mkdir()
            population.save(d / "masks" / "population.pt")
            _retry(self.client.log_artifacts, self.run_id, str(d / "masks"), "masks")
            _save_model(model, d / "model", input_example)
            _retry(self.client.log_artifacts, self.run_id, str(d / "model"), "model")

    def succeed(self) -> None:
        self.flush()
        _retry(self.client.set_terminated, self.run_id, "FINISHED")

    def fail(self, exc: BaseException, status: str = "FAILED") -> None:
        """End the run as ``status`` with the error in the ``error`` tag (traceback attached)."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the failure itself matters more
            self._buffer.clear()
        try:  # the error's tag and text may fail (a locked store); the status is still written
            _retry(self.client.set_tag, self.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.tracker.log_text(self.run_id, text, "error.txt")
        finally:
            _retry(self.client.set_terminated, self.run_id, status)


def history_csv(summaries: list[dict[str, Any]]) -> str:
    """Per-generation records of every seed as CSV (a ``seed`` column first)."""
    keys: list[str] = []
    for s in summaries:
        for rec in s["history"]:
            keys.extend(k for k in rec if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["seed", *keys], lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        for rec in s["history"]:
            writer.writerow({"seed": s["seed"], **rec})
    return buf.getvalue()


def _save_model(model: torch.nn.Module, path: Path, input_example: np.ndarray) -> None:
    """The compact model in MLflow's pytorch format (signature from the input example).

    ``save_model`` + ``log_artifacts`` rather than ``log_model``: the latter logs to the
    process-global active run and tracking URI.
    """
    import warnings

    import mlflow
    import mlflow.pytorch
    import torch

    reqs = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pytorch.save_model(
            model.eval(), str(path), input_example=input_example, pip_requirements=reqs
        )
