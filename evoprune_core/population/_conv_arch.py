"""Conv autoencoder shapes: the presets ``conv-small`` and ``conv-standard`` and their layers.

A :class:`ConvArchitecture` is an encoder and a decoder layer list (see ``_layers``) for one
image shape: two 3x3 stride-2 convolutions with ReLU, a dense rectified latent, and a mirrored
decoder (a dense layer, two 3x3 stride-2 transposed convolutions; the last one's output is the
logit of each pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ._layers import (
    LayerSpec,
    activation,
    conv2d,
    conv_transpose2d,
    dense,
    flatten,
    infer_shapes,
    unflatten,
)
from ._layerstack import LayerStack

__all__ = ["CONV_PRESETS", "ConvArchitecture"]

#: Conv presets: (channels of the first conv, channels of the second conv, latent width).
CONV_PRESETS: dict[str, tuple[int, int, int]] = {
    "conv-small": (8, 16, 10),
    "conv-standard": (16, 32, 32),
}


@dataclass(frozen=True)
class ConvArchitecture:
    """A conv autoencoder: layer lists of the encoder and the decoder for ``input_shape``."""

    preset: str
    input_shape: tuple[int, int, int]
    encoder: tuple[LayerSpec, ...]
    decoder: tuple[LayerSpec, ...]

    kind = "conv"

    def __post_init__(self) -> None:
        enc = infer_shapes(self.encoder, self.input_shape)
        dec = infer_shapes(self.decoder, enc[-1])
        if dec[-1] != tuple(self.input_shape):
            raise ConfigError(
                f"network: the decoder outputs {dec[-1]}, not the input shape {self.input_shape}"
            )

    @classmethod
    def from_preset(cls, preset: str, shape: tuple[int, ...]) -> ConvArchitecture:
        """The preset ``preset`` for samples of ``shape`` (``(c, h, w)``, h and w multiples of 4)."""
        if preset not in CONV_PRESETS:
            raise ConfigError(
                f"network.preset: unknown {preset!r}; allowed: {', '.join(CONV_PRESETS)}"
            )
        if len(shape) != 3:
            raise ConfigError(
                f"network.preset: {preset!r} takes (c, h, w) images; the dataset's samples are "
                f"flat rows of shape {tuple(shape)} (use a dense preset: standard, small, large)"
            )
        c, h, w = shape
        if h % 4 or w % 4:
            raise ConfigError(
                f"network.preset: {preset!r} takes images whose height and width are multiples "
                f"of 4 (got {tuple(shape)})"
            )
        c1, c2, latent = CONV_PRESETS[preset]
        relu = activation("relu")
        encoder = (conv2d(c1, 3, 2, 1), relu, conv2d(c2, 3, 2, 1), relu, flatten())
        encoder += (dense(latent), relu)
        decoder = (dense(c2 * (h // 4) * (w // 4)), relu, unflatten(c2, h // 4, w // 4))
        decoder += (conv_transpose2d(c1, 3, 2, 1, 1), relu, conv_transpose2d(c, 3, 2, 1, 1))
        return cls(preset, (c, h, w), encoder, decoder)

    @property
    def input_dim(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return infer_shapes(self.encoder, self.input_shape)[-1]

    @property
    def encoder_size(self) -> int:
        return LayerStack.count(self.encoder, self.input_shape)

    @property
    def n_params(self) -> int:
        return self.encoder_size + LayerStack.count(self.decoder, self.latent_shape)

    def describe(self) -> dict[str, Any]:
        """JSON-able: the preset, input shape and every layer (what results record)."""
        return {
            "kind": "conv",
            "preset": self.preset,
            "input_shape": list(self.input_shape),
            "encoder": [s.describe() for s in self.encoder],
            "decoder": [s.describe() for s in self.decoder],
            "n_params": self.n_params,
        }
