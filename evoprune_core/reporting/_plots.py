"""Plots of a study: Optuna's plotly figures (a trial's figures are in ``tracking``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._attrs import Attr

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["study_figures"]


def study_figures(study: optuna.Study, objectives: tuple[str, ...], out: Path) -> list[Path]:
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
    jobs: dict[str, Callable[[], Any]]  # plotly figures (plotly has no type information)
    if len(objectives) > 1:

        def first(t: FrozenTrial) -> float:
            return float(t.values[0])

        name = objectives[0]
        jobs = {
            "optimization_history.html": lambda: vis.plot_optimization_history(
                study, target=first, target_name=name
            ),
            "param_importances.html": lambda: vis.plot_param_importances(
                pruned, target=first, target_name=name
            ),
            "pareto_front.html": lambda: vis.plot_pareto_front(
                study, target_names=list(objectives)
            ),
        }
    else:
        jobs = {
            "optimization_history.html": lambda: vis.plot_optimization_history(study),
            "param_importances.html": lambda: vis.plot_param_importances(pruned),
        }
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
