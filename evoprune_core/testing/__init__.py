"""Conformance kits for plugin components, like scikit-learn's ``check_estimator``.

``check_operator(op)``, ``check_schedule(schedule)``, ``check_dataset(spec)`` and
``check_tracker(cls, tracking_uri)`` run every check of their kind and raise ``AssertionError`` naming the first that fails.
``parametrize_with_checks([...])`` turns the operator checks into one pytest case per operator
and check::

    from evoprune_core.testing import parametrize_with_checks
    from my_plugin import MyOperator

    @parametrize_with_checks([MyOperator])
    def test_conformance(operator, check):
        check(operator)

Operator contexts are built by the engine's own ``build_context`` on small real populations,
so an operator sees exactly what it would see in a run. ``_operators``, ``_schedules`` and
``_datasets``, ``_trackers`` hold the checks, ``_common`` what they share.
"""

from __future__ import annotations

from ._datasets import DATASET_CHECKS, check_dataset, dataset_checks
from ._operators import (
    CHECKS,
    KitSettings,
    check_operator,
    operator_checks,
    parametrize_with_checks,
)
from ._schedules import SCHEDULE_CHECKS, check_schedule, schedule_checks
from ._trackers import TRACKER_CHECKS, check_tracker, tracker_checks

__all__ = [
    "CHECKS",
    "DATASET_CHECKS",
    "SCHEDULE_CHECKS",
    "TRACKER_CHECKS",
    "KitSettings",
    "check_dataset",
    "check_operator",
    "check_schedule",
    "check_tracker",
    "dataset_checks",
    "operator_checks",
    "parametrize_with_checks",
    "schedule_checks",
    "tracker_checks",
]
