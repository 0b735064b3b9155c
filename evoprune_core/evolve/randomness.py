"""DEAP draws from Python's module-level ``random``; run it on an explicit generator instead."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["deap_random", "rng_from_state", "rng_state"]


@contextlib.contextmanager
def deap_random(rng: random.Random) -> Iterator[None]:
    """Within the block ``random.*`` draws from ``rng`` (advancing it); restored afterwards."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def rng_state(rng: random.Random) -> list[Any]:
    """A JSON-able form of ``rng``'s state."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(state: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng
