"""The run configuration's schema: strict pydantic models, one per TOML table.

Reading TOML, ``--set`` overrides and one-line validation errors live in ``_toml``; resolving
component names against the installed plugins in ``evoprune_core.resolved`` (a resolved
``RunConfig`` has every plugin parameter filled, so the config logged for a run says
everything that determined it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from .._strict import StrictModel as _Model
from ..engines.coevolution import CoevolutionConfig
from ..population import CONV_PRESETS, Architecture, ConvArchitecture
from ._toml import set_dotted, validate

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = [
    "CoevolutionConfig",
    "ComputeConfig",
    "DataConfig",
    "NetworkConfig",
    "PruningConfig",
    "RunConfig",
    "TrainingConfig",
    "resolve_run",
]


# TOML has arrays, not tuples: these fields take lists (their items stay strict).
_Widths = Annotated[tuple[int, ...], Field(strict=False)]
_Betas = Annotated[tuple[float, float], Field(strict=False)]


class DataConfig(_Model):
    """Which dataset, its declared parameters, and the seed of its generation/split."""

    name: str = Field(
        default="bc-10-100-1000",
        description="the dataset plugin (`evoprune plugins` lists them), e.g. bc-10-100-1000, "
        "digits",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the dataset's declared parameters: [data.params] (`evoprune plugins`)",
    )
    seed: int | None = Field(default=None, ge=0, description="default: the run's seed")


class NetworkConfig(_Model):
    """A preset or free widths (``encoder`` ends with the latent).

    Dense presets (standard, small, large) take every dataset (images as flat rows); the conv
    presets (conv-small, conv-standard) take ``(c, h, w)`` images with h and w multiples of 4.
    """

    preset: Literal["standard", "small", "large", "conv-small", "conv-standard"] | None = Field(
        default="standard",
        description="a named architecture: dense (standard, small, large) or convolutional "
        "(conv-small, conv-standard, for (c, h, w) images); ignored when encoder is given",
    )
    encoder: _Widths | None = Field(
        default=None,
        description="dense hidden widths of the encoder, the last one the latent (replaces the "
        "preset)",
    )
    decoder: _Widths | None = Field(
        default=None,
        description="dense hidden widths of the decoder (default: the encoder's, mirrored)",
    )

    @model_validator(mode="after")
    def _widths(self) -> NetworkConfig:
        for key in ("encoder", "decoder"):
            widths = getattr(self, key)
            if widths is not None and (
                len(widths) == 0 and key == "encoder" or any(w < 1 or w > 100_000 for w in widths)
            ):
                raise ValueError(
                    f"{key}: widths must be integers in [1, 100000]"
                    + (" and at least one (the latent)" if key == "encoder" else "")
                )
        if self.encoder is None and self.decoder is not None:
            raise ValueError("decoder: set encoder widths too (or use a preset)")
        if self.encoder is None and self.preset is None:
            raise ValueError("preset: choose a preset or give encoder widths")
        if self.is_conv and self.encoder is not None:
            raise ValueError(
                f"encoder: widths describe a dense network; remove them or the conv preset "
                f"{self.preset!r}"
            )
        return self

    @property
    def is_conv(self) -> bool:
        """Whether the network is a convolutional autoencoder (a conv preset)."""
        return self.preset in CONV_PRESETS

    def build(self, shape: tuple[int, ...]) -> Architecture | ConvArchitecture:
        """The architecture for samples of ``shape``; a conv preset needs ``(c, h, w)``."""
        if self.is_conv:
            assert self.preset is not None
            return ConvArchitecture.from_preset(self.preset, tuple(shape))
        dim = 1
        for v in shape:
            dim *= v
        return self.architecture(dim)

    def architecture(self, input_dim: int) -> Architecture:
        if self.encoder is None:
            return Architecture.from_preset(self.preset or "standard", input_dim)
        decoder = self.decoder if self.decoder is not None else tuple(reversed(self.encoder[:-1]))
        return Architecture(input_dim, tuple(self.encoder), tuple(decoder))


class TrainingConfig(_Model):
    """Gradient training: loss, Adam, minibatches, learning-rate decay.

    The defaults learn: BCE on the logits escapes the per-pixel-median attractor that the
    paper's L1 training falls into; ``final_loss = "l1"`` from ``final_loss_from`` of the
    generations then sharpens the calibrated outputs towards the cluster bits.
    """

    loss: Literal["l1", "mse", "bce"] = Field(
        default="bce", description="training loss (bce: on the logits); reported losses are L1"
    )
    final_loss: Literal["l1", "mse", "bce", "none"] = Field(
        default="l1",
        description="the loss from final_loss_from of the generations on; none: keep loss",
    )
    final_loss_from: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="fraction of the generations after which final_loss trains",
    )
    lr: float = Field(
        default=1e-3,
        gt=0.0,
        le=10.0,
        description="Adam's learning rate (a coevolution cell's initial one)",
    )
    batch_size: int = Field(
        default=5, ge=1, le=1_000_000, description="training rows per minibatch"
    )
    betas: _Betas = Field(default=(0.5, 0.999), description="Adam's (beta1, beta2), each in [0, 1)")
    eps: float = Field(default=1e-8, gt=0.0, le=1.0, description="Adam's epsilon")
    lr_decay: float = Field(default=1.0, gt=0.0, le=1.0, description="factor per decay step")
    lr_decay_every: int = Field(default=0, ge=0, description="generations per step; 0 = never")
    optimizer_state: Literal["persistent", "reset_each_step"] = Field(
        default="persistent",
        description="reset_each_step: a fresh Adam per minibatch, as the published Lipi-AE code",
    )

    @model_validator(mode="after")
    def _betas(self) -> TrainingConfig:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("betas: both must lie in [0, 1)")
        return self

    def loss_at(self, t: int, generations: int) -> str:
        if self.final_loss != "none" and t >= self.final_loss_from * generations:
            return self.final_loss
        return self.loss

    def lr_at(self, t: int) -> float:
        if self.lr_decay_every <= 0:
            return self.lr
        return self.lr * self.lr_decay ** (t // self.lr_decay_every)


class PruningConfig(_Model):
    """The operator, its schedule, and their parameters.

    Parameters are kept per component (``[pruning.operators.conjunctive] threshold = 0.1``),
    so switching the operator is one ``--set``; only the chosen components' tables are used.
    A resolved configuration carries the chosen ones' filled parameters in the flat
    ``operator_params`` / ``schedule_params`` (accepted as input too).

    ``masks = "persistent"``: a pruned entry stays zero and frozen. ``"regrow"`` (the published
    code): an event zeroes the entries once and training may grow them back; the reported
    remaining fraction then counts non-zero entries.
    """

    operator: str = Field(
        default="none",
        description="the pruning operator plugin (random, magnitude, variance, conjunctive, ...; "
        "`evoprune plugins`); none: no pruning",
    )
    schedule: str = Field(
        default="fixed",
        description="when pruning events happen: the schedule plugin (fixed, increase, decrease, "
        "prune_after, ...; `evoprune plugins`)",
    )
    probability: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="the schedule's base probability of a pruning event per generation and network",
    )  # fmt: skip
    amount: float = Field(
        default=0.1, ge=0.0, le=1.0,
        description="fraction of a layer's units an event prunes (operators that use an amount)",
    )  # fmt: skip
    calibration_rows: int = Field(
        default=100, ge=1, le=1_000_000,
        description="training rows an operator's calibration pass (activations, gradients) sees",
    )  # fmt: skip
    calibration_batches: int = Field(
        default=10, ge=1, le=10_000,
        description="minibatches the calibration rows are split into (operators that use batches)",
    )  # fmt: skip
    operators: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="parameters per operator: [pruning.operators.<name>]"
    )
    schedules: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="parameters per schedule: [pruning.schedules.<name>]"
    )
    operator_params: dict[str, Any] = Field(
        default_factory=dict, description="the chosen operator's parameters (effective, flat)"
    )
    schedule_params: dict[str, Any] = Field(
        default_factory=dict, description="the chosen schedule's parameters (effective, flat)"
    )
    masks: Literal["persistent", "regrow"] = Field(
        default="persistent",
        description="persistent: a pruned entry stays zero; regrow: zeroed once, training may "
        "grow it back (the published code)",
    )


class ComputeConfig(_Model):
    """How the engines compute; ``threads`` never changes results, ``backend`` may in the last bits.

    ``backend``: "native" runs the training epochs and L1 evaluations in the fused C kernels
    (``evoprune_core.native``, compiled on first use), "torch" in batched torch ops, "auto"
    the native kernels where a C compiler is available, else torch. ``threads``: worker
    threads of the native kernels (members are split over them); 0 = torch's intra-op thread
    count (the cores, ``OMP_NUM_THREADS``, or the share a study worker gets). ``device``: the
    torch device of the torch path ("auto": CUDA when torch sees a GPU, else the CPU): conv
    networks always run on it, dense networks when they train in torch (``backend = "torch"``,
    or "auto" with a device other than the CPU, which then takes torch over the C kernels);
    the C kernels are CPU-only, so dense networks under ``backend = "native"`` stay there.
    """

    backend: Literal["auto", "native", "torch"] = Field(
        default="auto",
        description="native: fused C kernels (compiled on first use); torch: batched torch "
        "ops; auto: native where a C compiler is available",
    )
    threads: int = Field(default=0, ge=0, le=256, description="0 = torch's thread count")
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu",
        description="torch device of conv networks, and of dense ones trained in torch "
        '(backend "torch", or "auto" off the CPU); auto = cuda when available',
    )


class RunConfig(_Model):
    """One engine run. ``generations`` are epochs in the canonical engine."""

    engine: str = Field(
        default="canonical",
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="the engine: canonical (one network), coevolution (Lipi-AE-S ring), or a "
        "plugin engine",
    )
    seed: int = Field(
        default=1, ge=0, le=2**63 - 1,
        description="seed of every random stream (a study sets it from its seeds)",
    )  # fmt: skip
    generations: int = Field(
        default=400, ge=1, le=1_000_000,
        description="generations to run (epochs in the canonical engine)",
    )  # fmt: skip
    data: DataConfig = Field(default_factory=DataConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    coevolution: CoevolutionConfig = Field(default_factory=CoevolutionConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    engines: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="a plugin engine's parameters: [engines.<name>]"
    )

    @property
    def data_seed(self) -> int:
        return self.seed if self.data.seed is None else self.data.seed

    def updated(self, updates: dict[str, Any], source: str = "<updates>") -> RunConfig:
        """A re-validated copy with dotted-key ``updates`` applied (components not resolved)."""
        data = self.model_dump(mode="python")
        for key, value in updates.items():
            set_dotted(data, key, value, source)
        return validate(RunConfig, data, source)

    def with_updates(
        self, updates: dict[str, Any], registry: Registry, source: str = "<updates>"
    ) -> RunConfig:
        """``updated``, then resolved against ``registry`` (parameters filled)."""
        return resolve_run(self.updated(updates, source), registry, source)


def resolve_run(cfg: RunConfig, registry: Registry, source: str) -> RunConfig:
    """Check component names and parameters against ``registry``; fill their defaults."""
    return registry.resolve(cfg, source).config
