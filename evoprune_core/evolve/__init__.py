"""Evolve pruning (unit-scoring) functions with strongly typed GP (``evoprune evolve``).

Trees over a unit's statistics (``primitives``) compile to one vectorised torch scorer
(``compile``); formula text parses back into trees (``grammar``); seeds, sympy
simplification, batched fitness on the population code, the DEAP loop with JSON
checkpoints, and the ``formula`` operator that makes an evolved formula usable in runs
and studies. Names are imported lazily: the plugin registry imports the ``formula``
operator, and that must not pull in DEAP, sympy or the loop.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SEEDS",
    "Evolution",
    "EvolveFile",
    "FormulaError",
    "FormulaOperator",
    "compile_tree",
    "hall_of_fame",
    "load_evolve_config",
    "parse",
    "to_text",
]

_WHERE = {
    "SEEDS": ".seeds",
    "Evolution": ".loop",
    "EvolveFile": ".config",
    "FormulaError": ".grammar",
    "FormulaOperator": ".operator",
    "compile_tree": ".compile",
    "hall_of_fame": ".loop",
    "load_evolve_config": ".config",
    "parse": ".grammar",
    "to_text": ".grammar",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
