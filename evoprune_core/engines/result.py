"""What an engine returns (``RunResult``) and whom it tells per generation (``Observer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..population import ConvArchitecture, ConvPopulation, Population, Sparsity

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["Observer", "RunResult"]


class Observer(Protocol):
    """Receives one record per generation (progress bars, trackers). Engines call nothing else."""

    def generation(self, t: int, record: dict[str, float]) -> None: ...


def _architecture(pop: Population | ConvPopulation) -> dict[str, Any]:
    """The network a result came from (conv: every layer; dense: the widths)."""
    arch = pop.arch
    if isinstance(arch, ConvArchitecture):
        return arch.describe()
    return {
        "kind": "dense",
        "input_dim": arch.input_dim,
        "encoder": list(arch.encoder),
        "decoder": list(arch.decoder),
        "n_params": arch.n_params,
    }


@dataclass(frozen=True)
class RunResult:
    """What a run produced. ``population`` holds the final networks; ``best`` the reported pair."""

    config: RunConfig
    history: list[dict[str, float]]
    train_loss: float
    val_loss: float
    test_loss: float
    sparsity: Sparsity
    seconds: float
    population: Population | ConvPopulation
    best: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    components: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def remaining_fraction(self) -> float:
        return self.sparsity.fraction()

    def summary(self) -> dict[str, Any]:
        """JSON-able: final metrics, per-layer sparsity and the per-generation history."""
        sp = self.sparsity.as_dict()
        return {
            "engine": self.config.engine,
            "seed": self.config.seed,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "test_loss": self.test_loss,
            "remaining_fraction": sp["remaining_fraction"],
            "encoder_remaining_fraction": sp["encoder_remaining_fraction"],
            "decoder_remaining_fraction": sp["decoder_remaining_fraction"],
            "layers": sp["layers"],
            "architecture": _architecture(self.population),
            "seconds": self.seconds,
            "best": self.best,
            "generations": len(self.history),
            "pruning_events": int(sum(r.get("pruning_events", 0) for r in self.history)),
            **self._published_tally(),
            "components": self.components,
            **{
                f"{kind}_{what}": c[what]
                for kind, c in self.components.items()
                for what in ("distribution", "version")
            },
            **self.extra,
            "history": self.history,
        }

    def _published_tally(self) -> dict[str, Any]:
        """Under ``pruning.masks = "regrow"``: the pruned entries as the published code counts
        them (every event's zeroed entries, summed; regrowth ignored) and, for one network, the
        remaining fraction that count implies (the true one is ``remaining_fraction``)."""
        if not any("pruned_entries_published" in r for r in self.history):
            return {}
        total = int(sum(r.get("pruned_entries_published", 0) for r in self.history))
        out: dict[str, Any] = {"pruned_entries_published": total}
        if self.population.n == 1:  # one network: the count implies its remaining fraction
            entries = self.sparsity.whole[1]
            out["remaining_fraction_published"] = max(0.0, 1.0 - total / entries)
        return out
