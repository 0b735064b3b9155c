"""Study workers: one in this process (``work``) or K worker processes, and stopping them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._compat import trial_id
from .._parent import PARENT_ENV, parent_gone
from ..reporting import Attr
from ..tracking import StudyRun
from ._config import StudyConfig
from ._identity import check_identity
from ._reconcile import fail_reaped_run
from ._setup import make_sampler, open_study, target_trials, tracker_for
from ._storage import Store, heartbeat, process_identity, reap_dead_trials, study_lock
from ._trial import run_trial

if TYPE_CHECKING:
    from ..data import Dataset
    from ..plugins import Registry

__all__ = ["work"]


def work(
    cfg: StudyConfig,
    store: Store,
    registry: Registry,
    n_trials: int | None = None,
    worker: int = 0,
    on_progress: Callable[[int], None] | None = None,
    poll: float = 1.0,
) -> int:
    """One worker: ask and run trials until the study has its COMPLETE trials. Returns the
    number of trials this worker ran."""
    from optuna.trial import TrialState

    target = target_trials(cfg, registry, n_trials)
    tracker = tracker_for(cfg, store, registry)
    storage, study = open_study(cfg, store, tracker, make_sampler(cfg, target, worker))
    check_identity(study, cfg, adopt=False)  # the file was edited after the study started
    ids = StudyRun(study.user_attrs[Attr.EXPERIMENT_ID], study.user_attrs[Attr.PARENT_RUN_ID])
    finite = cfg.sampler == "grid"
    ran = failures = 0
    datasets: dict[tuple[str, str, int], Dataset] = {}  # built once per worker, name and seed
    while True:
        trial = None
        if parent_gone():
            print(
                f"evoprune: worker {worker}: the study process is gone; stopping", file=sys.stderr
            )
            break
        with study_lock(store, storage, cfg.name):
            reap_dead_trials(study, lambda run, why: fail_reaped_run(tracker, run, why))
            states = [t.state for t in study.get_trials(deepcopy=False)]
            complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
            if on_progress is not None:
                on_progress(complete)
            if complete >= target:
                break
            waiting = states.count(TrialState.WAITING)
            if complete + running < target and (waiting or not finite):
                try:
                    trial = study.ask()
                    for key, value in process_identity().items():
                        trial.set_user_attr(key, value)
                except BaseException:
                    if trial is not None:  # interrupted between ask and run: no RUNNING left
                        study.tell(trial, state=TrialState.FAIL)
                    raise
            elif running == 0:
                break  # a finite design is used up (some of it failed)
        if trial is None:
            time.sleep(poll)
            continue
        with heartbeat(storage, trial_id(trial)):
            ok = run_trial(
                cfg, registry, study, trial, tracker, ids, datasets,
                store.artifact_state(cfg.name),
            )  # fmt: skip
        ran += 1
        failures += not ok
        if failures >= max(3, target):
            print(f"evoprune: worker {worker}: {failures} trials failed; stopping", file=sys.stderr)
            break
    return ran


def _spawn(
    cfg: StudyConfig, store: Store, n_trials: int, workers: int
) -> list[subprocess.Popen[bytes]]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    for i in range(workers):
        cmd = [
            sys.executable, "-m", "evoprune_core.cli", "study", str(cfg.path),
            "--store", str(store.root), "--storage", store.storage,
            "--tracking-uri", store.tracking_uri, "--n-trials", str(n_trials),
            "--quiet", "--worker-index", str(i), "--worker-threads", str(threads),
            "--fork", cfg.name,
        ]  # fmt: skip
        # Their own process group: a terminal's Ctrl-C reaches the parent, which passes exactly
        # one SIGTERM on to each worker (see _stop_workers).
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        procs.append(
            subprocess.Popen(
                cmd, env=env, preexec_fn=_die_with_parent(os.getpid()), start_new_session=True
            )
        )
    return procs


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """Linux: a worker gets SIGTERM when the process that started it dies, even by SIGKILL.

    Armed in the forked child before it executes Python (the request survives ``exec``), so
    it holds while the worker imports; ``prctl`` is looked up here, in the parent, so that the
    child imports nothing between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(1, term)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request was armed
            os.kill(os.getpid(), term)

    return arm


def _stop_workers(procs: list[subprocess.Popen[bytes]], grace: float = 60.0) -> None:
    """Pass an interruption on to the workers (their trials fail, runs end KILLED); wait."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
