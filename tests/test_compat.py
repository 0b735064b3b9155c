"""The private Optuna and torch behaviour evoprune relies on (``evoprune_core._compat``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import torch

from evoprune_core._compat import (
    enqueued_params,
    fused_adam_,
    rdb_engine,
    rdb_stale_callback_kwarg,
    storage_of,
    trial_id,
)


def _journal(tmp_path: Path) -> optuna.storages.JournalStorage:
    backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.journal"))
    return optuna.storages.JournalStorage(backend)


def test_fused_adam_is_torch_adam_step_for_step() -> None:
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=gen)
    grads = [torch.randn(50, generator=gen) for _ in range(4)]
    ref = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.01, betas=(0.5, 0.999), eps=1e-8, fused=True)
    p, m, v, step = start.clone(), torch.zeros(50), torch.zeros(50), torch.zeros(())
    for g in grads:
        ref.grad = g.clone()
        opt.step()
        step.add_(1)
        fused_adam_([p], [g.clone()], [m], [v], [step], 0.01, (0.5, 0.999), 1e-8)
        assert torch.equal(p, ref.detach())
    state = opt.state[ref]
    assert torch.equal(m, state["exp_avg"]) and torch.equal(v, state["exp_avg_sq"])
    assert float(step) == 4.0


def test_fused_adam_leaves_an_entry_with_infinite_second_moment_in_place() -> None:
    # pruned entries are frozen this way (Population.prune): Adam's update there is exactly 0
    p, g = torch.tensor([0.0, 0.5]), torch.tensor([3.0, 3.0])
    m, v = torch.zeros(2), torch.tensor([float("inf"), 0.0])
    fused_adam_([p], [g], [m], [v], [torch.ones(())], 0.1, (0.5, 0.999), 1e-8)
    assert p[0].item() == 0.0 and p[1].item() != 0.5


def test_trial_id_and_storage_of_an_ask_tell_trial(tmp_path: Path) -> None:
    storage = _journal(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask()
    trial = study.ask()
    assert storage_of(study) is storage
    assert storage.get_trial(trial_id(trial)).number == trial.number == 1


def test_rdb_engine_unwraps_the_storage_a_loaded_study_holds(tmp_path: Path) -> None:
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    optuna.create_study(study_name="s", storage=rdb)
    loaded = optuna.load_study(study_name="s", storage=rdb)
    assert not hasattr(storage_of(loaded), "engine")  # Optuna's cache wraps the RDB storage
    assert rdb_engine(storage_of(loaded)) is rdb.engine
    assert rdb_engine(rdb) is rdb.engine


def test_enqueued_params_from_our_attribute_or_optunas_private_one(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=_journal(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.enqueue_trial({"x": 1}, user_attrs={"evoprune.design": {"x": 1}})
        study.enqueue_trial({"x": 2})  # as studies of earlier versions did
    first, second = study.get_trials(deepcopy=False)
    assert enqueued_params(first, "evoprune.design") == {"x": 1}
    assert enqueued_params(second, "evoprune.design") == {"x": 2}


def test_rdb_storage_takes_the_stale_trial_callback_under_that_keyword(tmp_path: Path) -> None:
    def on_stale(study: object, trial: object) -> None:
        return None

    kwarg = rdb_stale_callback_kwarg()
    assert kwarg == "heartbeat_stale_trial_callback"  # Optuna 5; 4.x called it failed_trial_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / 'o.db'}",
            heartbeat_interval=5,
            grace_period=20,
            **{kwarg: on_stale},
        )
    assert storage.get_heartbeat_interval() == 5
    assert storage.get_heartbeat_stale_trial_callback() is on_stale
