"""Layer specs and shape inference for batched layer stacks (conv, transposed conv, dense, ...).

A network is a tuple of :class:`LayerSpec` values applied in order to one sample of shape
``in_shape`` (``(c, h, w)`` for an image, ``(f,)`` for a flat row). Build them with the
constructors ``conv2d``, ``conv_transpose2d``, ``dense``, ``max_pool2d``, ``avg_pool2d``,
``flatten``, ``unflatten`` and ``activation``; :func:`infer_shapes` checks that every layer can
take its input and returns each layer's output shape. Parameter layers (conv2d,
conv_transpose2d, dense) store their weights in ``torch.nn``'s layout: ``(out, in, k, k)``,
``(in, out, k, k)`` and ``(out, in)``, then the bias ``(out,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "KINDS",
    "PARAM_KINDS",
    "LayerSpec",
    "ParamLayer",
    "activation",
    "avg_pool2d",
    "conv2d",
    "conv_transpose2d",
    "dense",
    "flatten",
    "infer_shapes",
    "max_pool2d",
    "param_layers",
    "unflatten",
]

KINDS = (
    "conv2d",
    "conv_transpose2d",
    "dense",
    "max_pool2d",
    "avg_pool2d",
    "flatten",
    "unflatten",
    "activation",
)
PARAM_KINDS = ("conv2d", "conv_transpose2d", "dense")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` plus the fields that kind reads (the others keep their defaults).

    ``out``: output channels (conv) or features (dense); ``kernel``/``stride``/``padding``/
    ``output_padding``: square conv and pool geometry; ``fn``: the activation's name;
    ``shape``: the ``(c, h, w)`` an ``unflatten`` produces.
    """

    kind: str
    out: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    fn: str = ""
    shape: tuple[int, ...] = ()

    @property
    def has_params(self) -> bool:
        return self.kind in PARAM_KINDS

    def describe(self) -> dict[str, object]:
        """The fields that matter for this kind (JSON-able)."""
        keys = {
            "conv2d": ("out", "kernel", "stride", "padding"),
            "conv_transpose2d": ("out", "kernel", "stride", "padding", "output_padding"),
            "dense": ("out",),
            "max_pool2d": ("kernel", "stride"),
            "avg_pool2d": ("kernel", "stride"),
            "flatten": (),
            "unflatten": ("shape",),
            "activation": ("fn",),
        }[self.kind]
        out: dict[str, object] = {"kind": self.kind}
        for k in keys:
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out


def conv2d(out: int, kernel: int, stride: int = 1, padding: int = 0) -> LayerSpec:
    return LayerSpec("conv2d", out=out, kernel=kernel, stride=stride, padding=padding)


def conv_transpose2d(
    out: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0
) -> LayerSpec:
    return LayerSpec(
        "conv_transpose2d",
        out=out,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
    )


def dense(out: int) -> LayerSpec:
    return LayerSpec("dense", out=out)


def max_pool2d(kernel: int, stride: int | None = None) -> LayerSpec:
    return LayerSpec("max_pool2d", kernel=kernel, stride=kernel if stride is None else stride)


def avg_pool2d(kernel: int, stride: int | None = None) -> LayerSpec:
    return LayerSpec("avg_pool2d", kernel=kernel, stride=kernel if stride is None else stride)


def flatten() -> LayerSpec:
    return LayerSpec("flatten")


def unflatten(*shape: int) -> LayerSpec:
    return LayerSpec("unflatten", shape=tuple(shape))


def activation(fn: str) -> LayerSpec:
    return LayerSpec("activation", fn=fn)


def _fail(i: int, spec: LayerSpec, shape: tuple[int, ...], what: str) -> ConfigError:
    return ConfigError(f"network: layer {i} ({spec.kind}) cannot take input shape {shape}: {what}")


def _conv_out(size: int, spec: LayerSpec) -> int:
    return (size + 2 * spec.padding - spec.kernel) // spec.stride + 1


def _convt_out(size: int, spec: LayerSpec) -> int:
    return (size - 1) * spec.stride - 2 * spec.padding + spec.kernel + spec.output_padding


def infer_shapes(specs: tuple[LayerSpec, ...], in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Each layer's output shape for one sample of ``in_shape``; ``ConfigError`` if one fails."""
    shapes: list[tuple[int, ...]] = []
    shape = tuple(in_shape)
    for i, s in enumerate(specs):
        if s.kind not in KINDS:
            raise ConfigError(f"network: layer {i}: unknown kind {s.kind!r}; allowed: {KINDS}")
        if s.kind in ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"):
            if len(shape) != 3:
                raise _fail(i, s, shape, "needs a (c, h, w) image")
            if s.kernel < 1 or s.stride < 1 or s.padding < 0 or s.output_padding < 0:
                raise _fail(i, s, shape, "kernel and stride must be >= 1, padding >= 0")
            if s.has_params and s.out < 1:
                raise _fail(i, s, shape, "out channels must be >= 1")
            c, h, w = shape
            if s.kind == "conv_transpose2d":
                if s.output_padding >= s.stride:
                    raise _fail(i, s, shape, "output_padding must be smaller than stride")
                shape = (s.out, _convt_out(h, s), _convt_out(w, s))
            else:
                shape = (s.out if s.kind == "conv2d" else c, _conv_out(h, s), _conv_out(w, s))
            if min(shape[1:]) < 1:
                raise _fail(i, s, (c, h, w), "the image is smaller than the kernel")
        elif s.kind == "dense":
            if len(shape) != 1:
                raise _fail(i, s, shape, "needs flat features (add a flatten layer)")
            if s.out < 1:
                raise _fail(i, s, shape, "out features must be >= 1")
            shape = (s.out,)
        elif s.kind == "flatten":
            total = 1
            for v in shape:
                total *= v
            shape = (total,)
        elif s.kind == "unflatten":
            total = 1
            for v in s.shape:
                total *= v
            if len(shape) != 1 or len(s.shape) != 3 or min(s.shape) < 1 or total != shape[0]:
                raise _fail(i, s, shape, f"cannot unflatten into {s.shape}")
            shape = tuple(s.shape)
        elif s.fn not in ACTIVATIONS:
            raise ConfigError(
                f"network: layer {i}: unknown activation {s.fn!r}; allowed: {ACTIVATIONS}"
            )
        shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class ParamLayer:
    """Where one parameter layer sits: its spec index, shapes and its columns in the buffers.

    ``weight_shape`` is torch's layout for one member; ``act`` is the activation applied right
    after the layer (the next spec if it is an activation, else ``"identity"``).
    """

    spec_index: int
    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    start: int
    bias_start: int
    end: int
    act: str

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def units(self) -> int:
        """Output channels (conv) or features (dense): the pruning units."""
        return self.spec.out


def param_layers(specs: tuple[LayerSpec, ...], in_shape: tuple[int, ...]) -> list[ParamLayer]:
    """The parameter layers of ``specs`` with their column ranges (weights, then bias)."""
    shapes = infer_shapes(specs, in_shape)
    out: list[ParamLayer] = []
    off = 0
    for i, s in enumerate(specs):
        if not s.has_params:
            continue
        prev = tuple(in_shape) if i == 0 else shapes[i - 1]
        if s.kind == "conv2d":
            wshape: tuple[int, ...] = (s.out, prev[0], s.kernel, s.kernel)
        elif s.kind == "conv_transpose2d":
            wshape = (prev[0], s.out, s.kernel, s.kernel)
        else:
            wshape = (s.out, prev[0])
        nw = 1
        for v in wshape:
            nw *= v
        nxt = specs[i + 1] if i + 1 < len(specs) else None
        act = nxt.fn if nxt is not None and nxt.kind == "activation" else "identity"
        out.append(ParamLayer(i, s, prev, shapes[i], wshape, off, off + nw, off + nw + s.out, act))
        off += nw + s.out
    return out
