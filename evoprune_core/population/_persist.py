"""Saving and loading a population: ``torch.save`` of its state dict, written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["Persisted"]

P = TypeVar("P", bound="Persisted")


class Persisted:
    """``to_bytes``, ``save`` and ``load`` for a class with ``state_dict``/``from_state_dict``."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state_dict(cls: type[P], state: dict[str, Any]) -> P:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The population as ``save`` writes it (``torch.save`` of its state dict)."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        """Write the population (weights, masks, optimiser state) atomically."""
        path = Path(path)
        data = self.to_bytes()
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls: type[P], path: str | Path) -> P:
        return cls.from_state_dict(torch.load(Path(path), weights_only=True))
