"""Autoencoder shapes: layer widths and the network presets of the paper."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["PRESETS", "Architecture", "n_params"]

#: Network presets: (encoder widths incl. latent, decoder hidden widths).
PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "standard": ((30, 10), (30,)),
    "small": ((30, 2), (30,)),
    "large": ((60, 30, 10), (30, 60)),
}


@dataclass(frozen=True)
class Architecture:
    """Layer widths of an autoencoder: ``input -> encoder... (latent) -> decoder... -> input``."""

    input_dim: int
    encoder: tuple[int, ...]
    decoder: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.input_dim < 1 or not self.encoder or min(self.encoder + self.decoder + (1,)) < 1:
            raise ConfigError(f"invalid architecture {self}: widths must be >= 1, latent required")

    @classmethod
    def from_preset(cls, preset: str, input_dim: int) -> Architecture:
        if preset not in PRESETS:
            raise ConfigError(f"network.preset: unknown {preset!r}; allowed: {', '.join(PRESETS)}")
        enc, dec = PRESETS[preset]
        return cls(input_dim, enc, dec)

    @property
    def encoder_dims(self) -> tuple[int, ...]:
        return (self.input_dim, *self.encoder)

    @property
    def decoder_dims(self) -> tuple[int, ...]:
        return (self.encoder[-1], *self.decoder, self.input_dim)

    @property
    def n_params(self) -> int:
        return n_params(self.encoder_dims) + n_params(self.decoder_dims)


def n_params(dims: tuple[int, ...]) -> int:
    return sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))
