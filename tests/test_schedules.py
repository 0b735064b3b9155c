"""Every schedule's probability at t = 0, F/2 and F (T = 401, so F = 400)."""

from __future__ import annotations

import math

import pytest

from evoprune_core.errors import ConfigError
from evoprune_core.schedules import builtin_schedules

T = 401  # F = 400, F/2 = 200
P = 0.5
N = 3

EXPECTED = {
    "fixed": (P, P, P),
    "increase": (0.0, P / 2, P),
    "decrease": (P, P / 2, 0.0),  # not 1 - p t / F (the published bug)
    "population": (0.0, P / 2 / N, P / N),
    "exponential": (0.0, P * (1 - math.exp(-1.0)), P * (1 - math.exp(-2.0))),
    "final_n": (0.0, 0.0, P),
    "prune_after": (0.0, 0.0, P),
}


@pytest.mark.parametrize("cls", builtin_schedules(), ids=lambda c: c.name)
def test_values_at_start_middle_end(cls) -> None:
    s = cls(P)
    got = (s(0, T, N), s(200, T, N), s(400, T, N))
    assert got == pytest.approx(EXPECTED[cls.name], abs=1e-12)


def test_all_seven_schedules_are_built_in() -> None:
    assert sorted(c.name for c in builtin_schedules()) == sorted(EXPECTED)


def test_final_n_switches_on_at_three_quarters() -> None:
    s = builtin_schedules()[5](P)
    assert s.name == "final_n"
    assert s(299, T) == 0.0 and s(300, T) == P


def test_prune_after_fires_at_the_last_generation_only() -> None:
    s = [c for c in builtin_schedules() if c.name == "prune_after"][0](1.0)
    assert [s(t, 5) for t in range(5)] == [0, 0, 0, 0, 1.0]


def test_one_generation_run_counts_as_finished() -> None:
    inc = [c for c in builtin_schedules() if c.name == "increase"][0](0.4)
    assert inc(0, 1) == 0.4


def test_declared_params_and_errors() -> None:
    exp = [c for c in builtin_schedules() if c.name == "exponential"][0]
    assert exp(P, steepness=4.0)(400, T) == pytest.approx(P * (1 - math.exp(-4.0)))
    with pytest.raises(ConfigError, match="steepness"):
        exp(P, steepness=-1.0)
    with pytest.raises(ValueError):
        exp(P)(T, T)


def test_two_generation_runs_reach_the_end_at_generation_1() -> None:
    inc = [c for c in builtin_schedules() if c.name == "increase"][0](0.4)
    assert [inc(t, 2) for t in range(2)] == [0.0, 0.4]


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_probability_bounds_are_inclusive(p: float) -> None:
    assert [c(p)(0, 1) for c in builtin_schedules()][0] == p


@pytest.mark.parametrize("p", [-0.01, 1.01, 2.0])
def test_probability_outside_0_1_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"^probability must lie in \[0, 1\]$"):
        builtin_schedules()[0](p)


def test_parameter_errors_name_the_config_key() -> None:
    exp = [c for c in builtin_schedules() if c.name == "exponential"][0]
    with pytest.raises(ConfigError, match=r"^pruning\.schedule_params\.steepness: "):
        exp(P, steepness=-1.0)


def test_generation_outside_the_run_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^generation 5 outside \[0, 5\)$"):
        builtin_schedules()[0](P)(5, 5)


def test_n_defaults_to_one_solution() -> None:
    pop = [c for c in builtin_schedules() if c.name == "population"][0](0.6)
    assert pop(4, 5) == pop(4, 5, 1) == 0.6 and pop(4, 5, 2) == 0.3


def test_rates_are_clipped_to_0_1() -> None:
    class Wild(builtin_schedules()[0]):  # type: ignore[misc, valid-type]
        name = "wild"

        def rate(self, t: int, last: int, n: int) -> float:
            return [1.5, -0.5][t]

    assert [Wild(0.5)(t, 2) for t in range(2)] == [1.0, 0.0]
