"""The private or version-dependent APIs of Optuna and torch that evoprune relies on.

Each is used here and nowhere else, and ``tests/test_compat.py`` pins the behaviour we rely
on, so a release of Optuna or torch that changes one fails one named test instead of a study
in the middle of the night.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    import optuna
    import sqlalchemy
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "enqueued_params",
    "fused_adam_",
    "rdb_engine",
    "rdb_stale_callback_kwarg",
    "storage_of",
    "trial_id",
]


def trial_id(trial: optuna.Trial) -> int:
    """The storage key of an ask/tell trial (Optuna keeps it private: ``Trial._trial_id``)."""
    return int(trial._trial_id)


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a loaded study reads and writes (``Study._storage``)."""
    return study._storage


def rdb_engine(storage: BaseStorage) -> sqlalchemy.engine.Engine:
    """The SQLAlchemy engine of an RDB storage, also when a loaded study wraps it.

    ``optuna.load_study`` wraps an ``RDBStorage`` in its private ``_CachedStorage``
    (``._backend``), which has no ``engine`` of its own.
    """
    rdb: Any = getattr(storage, "_backend", storage)
    engine: sqlalchemy.engine.Engine = rdb.engine
    return engine


def enqueued_params(trial: FrozenTrial, design_key: str) -> dict[str, Any]:
    """The parameters a trial was enqueued with, before it has sampled them.

    Studies since this version record them in the user attribute ``design_key``; trials
    enqueued by earlier versions only have Optuna's private ``system_attrs["fixed_params"]``.
    """
    design = trial.user_attrs.get(design_key)
    if isinstance(design, dict):
        return design
    return dict(trial.system_attrs.get("fixed_params", {}))


def rdb_stale_callback_kwarg() -> str:
    """``RDBStorage``'s keyword for the stale-trial callback (renamed in Optuna 5)."""
    params = inspect.signature(_rdb_init()).parameters
    if "heartbeat_stale_trial_callback" in params:
        return "heartbeat_stale_trial_callback"
    return "failed_trial_callback"


def _rdb_init() -> Callable[..., Any]:
    import optuna

    return optuna.storages.RDBStorage.__init__


def fused_adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> None:
    """One in-place Adam step of each tensor (the fused CPU kernel ``torch.optim.Adam`` uses).

    ``steps`` are float scalar tensors, incremented by the caller before the call.
    """
    torch._fused_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        lr=lr,
        beta1=betas[0],
        beta2=betas[1],
        weight_decay=0.0,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )
