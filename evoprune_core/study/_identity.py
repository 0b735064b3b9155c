"""A study's identity is its content: a canonical hash of the resolved study, kept in its
Optuna storage.

What a trial means is the resolved base run, the space, the objectives, the seeds, the sampler,
whether baselines run and whether declared plugin parameters are tuned; ``n_trials`` is not
part of it (a study may grow) and neither are ``name``, ``description`` or ``sampler_seed``.
Resuming a study whose file now says something else is refused with the keys that changed;
``--fork NAME`` runs the edited file as a new study. A study stored by an earlier evoprune
without a hash is adopted once, with a notice.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .._identity import changes, content_hash
from ..config import flatten
from ..errors import ConfigError
from ..reporting import Attr
from ._config import Dist, StudyConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["check_identity", "study_content"]


def _dist(d: Dist) -> Any:
    if d.kind == "categorical":
        return {"choices": list(d.choices)}
    out: dict[str, Any] = {"kind": d.kind, "low": d.low, "high": d.high, "log": d.log}
    if d.step is not None:
        out["step"] = d.step
    return out


def study_content(cfg: StudyConfig) -> dict[str, Any]:
    """The flat content that makes the study what it is (dotted keys, JSON values)."""
    out: dict[str, Any] = {
        "objectives": list(cfg.objectives),
        "seeds": list(cfg.seeds),
        "sampler": cfg.sampler,
        "baseline": cfg.baseline,
        "tune_plugin_params": cfg.tune_plugin_params,
    }
    out.update({f"base.{k}": v for k, v in flatten(cfg.base).items() if k != "seed"})
    out.update({f"space.{k}": _dist(d) for k, d in cfg.space.items()})
    return out


def check_identity(study: optuna.Study, cfg: StudyConfig, adopt: bool) -> None:
    """Refuse to run ``cfg`` in a stored study of other content (one line naming the changed
    keys, their old and new values); record the content of a new study, or (``adopt``) of
    one an earlier evoprune stored without it."""
    content = study_content(cfg)
    digest = content_hash(content)
    stored = study.user_attrs.get(Attr.IDENTITY)
    if stored == digest:
        return
    if stored is not None:
        before = study.user_attrs.get(Attr.CONTENT) or {}
        what = changes(before, content) or f"content hash {stored} -> {digest}"
        raise ConfigError(
            f"{cfg.path}: study {cfg.name!r} was run with other content ({what}); restore "
            f"the file, or run the edited file as a new study with --fork NAME"
        )
    if not adopt:
        raise ConfigError(f"{cfg.path}: study {cfg.name!r} has no content hash yet")
    existed = Attr.PARENT_RUN_ID in study.user_attrs or bool(study.get_trials(deepcopy=False))
    study.set_user_attr(Attr.CONTENT, content)
    study.set_user_attr(Attr.IDENTITY, digest)
    if existed:
        warnings.warn(
            f"{cfg.path}: study {cfg.name!r} was stored by an earlier evoprune without a "
            f"content hash; adopted with this file's content (hash {digest})",
            stacklevel=2,
        )
