"""The engine interface: what the canonical, the coevolutionary and any plugin engine provide.

An engine is registered through the ``evoprune_register_engines`` hook (the built-ins too) and
receives a :class:`~evoprune_core.resolved.ResolvedRun` - the validated configuration with its
operator, schedule and dataset already built - never the plugin registry. It declares which
configuration keys it reads, so studies sample only those (a coevolution key is not sampled for
a canonical trial), and its own parameters, if it has any beyond a built-in section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..params import Param, validate_params

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data import Dataset
    from ..resolved import ResolvedRun
    from .result import Observer, RunResult

__all__ = ["SHARED_KEYS", "Engine"]

#: The configuration every engine reads unless it declares otherwise.
SHARED_KEYS = ("generations", "data", "network", "training", "pruning", "compute")


class Engine:
    """Base class of engines (built-in and plugin).

    Subclasses set ``name``, ``description``, optionally ``section`` (a built-in ``RunConfig``
    section the engine owns, e.g. ``"coevolution"``; a plugin engine's own keys live under
    ``[engines.<name>]`` and are declared in ``parameters``) and ``uses`` (the shared keys it
    reads), and implement ``run``. Like operators, the constructor only validates and stores
    the declared parameters.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    section: ClassVar[str | None] = None
    parameters: ClassVar[tuple[Param, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = SHARED_KEYS

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.parameters, params, f"engines.{self.name}")

    @classmethod
    def own_keys(cls) -> tuple[str, ...]:
        """The configuration prefixes this engine owns: its section, or ``engines.<name>``."""
        return (cls.section,) if cls.section else (f"engines.{cls.name}",)

    @classmethod
    def reads(cls, key: str) -> bool:
        """Whether the dotted configuration ``key`` matters to this engine."""
        return any(key == p or key.startswith(p + ".") for p in (*cls.uses, *cls.own_keys()))

    def population(self, cfg: RunConfig) -> str:
        """How reports describe the population shape of a run (``"1"``: one network)."""
        return "1"

    def run(
        self, run: ResolvedRun, observer: Observer | None = None, dataset: Dataset | None = None
    ) -> RunResult:
        """Carry out ``run``; ``dataset`` (optional) replaces building it from the config."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
