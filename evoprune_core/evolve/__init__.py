"""Evolve pruning (unit-scoring) functions with strongly typed GP (``evoprune evolve``).

Trees over a unit's statistics (``primitives``) compile to one vectorised torch scorer
(``compile``); formula text parses back into trees (``grammar``); seeds, sympy
simplification, batched fitness on the population code, the DEAP loop with JSON
checkpoints, and the ``formula`` operator that makes an evolved formula usable in runs
and studies.
"""

from __future__ import annotations

__all__: list[str] = []
