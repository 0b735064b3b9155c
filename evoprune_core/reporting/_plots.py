"""Plots of a study: Optuna's plotly figures (a trial's figures are in ``tracking``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ._attrs import Attr

__all__ = ["study_figures"]


def study_figures(study: Any, objectives: tuple[str, ...], out: Path) -> list[Path]:
    """Optimisation history, parameter importances and (two objectives) the Pareto front as
    self-contained HTML files in ``out``; a plot that cannot be drawn is skipped."""
    import optuna
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not t.user_attrs.get(Attr.BASELINE)
    ]
    if not done:
        return []
    pruned = optuna.create_study(directions=study.directions)
    pruned.add_trials(done)
    vis = optuna.visualization
    multi = len(objectives) > 1
    first: dict[str, Any] = (
        {"target": lambda t: t.values[0], "target_name": objectives[0]} if multi else {}
    )
    jobs = {
        "optimization_history.html": lambda: vis.plot_optimization_history(study, **first),
        "param_importances.html": lambda: vis.plot_param_importances(pruned, **first),
    }
    if multi:
        jobs["pareto_front.html"] = lambda: vis.plot_pareto_front(
            study, target_names=list(objectives)
        )
    written = []
    for name, make in jobs.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make()
        except Exception as exc:  # noqa: BLE001 - e.g. too few trials for importances
            warnings.warn(f"evoprune: {name} skipped: {exc}", stacklevel=2)
            continue
        path = out / name
        fig.write_html(str(path), include_plotlyjs=True)
        written.append(path)
    return written
