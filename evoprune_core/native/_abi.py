"""The boundary with the C side (``abi.h``): argument structs, constants, and the check that a
loaded library agrees with this loader on every size and offset."""

from __future__ import annotations

import ctypes

__all__ = [
    "ABI_VERSION",
    "LOSS_CODES",
    "MAX_LAYERS",
    "L1Args",
    "TrainArgs",
    "abi_expected",
    "abi_mismatches",
]

#: The boundary with the C side (``abi.h``): checked against the library when it loads.
ABI_VERSION = 2
LOSS_CODES = {"l1": 0, "mse": 1, "bce": 2}
MAX_LAYERS = 32


_f32p = ctypes.POINTER(ctypes.c_float)
_f64p = ctypes.POINTER(ctypes.c_double)
_i32p = ctypes.POINTER(ctypes.c_int32)
_i32, _f32 = ctypes.c_int32, ctypes.c_float


class TrainArgs(ctypes.Structure):
    """Mirror of ``evp_train_args`` (abi.h): one epoch of a population."""

    _fields_ = [
        ("n", _i32), ("L", _i32), ("dims", _i32p),
        ("params", _f32p), ("exp_avg", _f32p), ("exp_avg_sq", _f32p), ("steps", _f32p),
        ("lrs", _f64p), ("rows", _f32p),
        ("n_rows", _i32), ("batch", _i32), ("loss", _i32), ("threads", _i32),
        ("b1", _f32), ("b2", _f32), ("eps", _f32),
        ("reset_each_step", _i32),
        ("pool", _f32p), ("picks", _i32p), ("n_pool", _i32), ("enc_layers", _i32),
        ("compact", _i32),
    ]  # fmt: skip


class L1Args(ctypes.Structure):
    """Mirror of ``evp_l1_args`` (abi.h): the L1 evaluation of a population."""

    _fields_ = [
        ("n", _i32), ("L", _i32), ("dims", _i32p), ("params", _f32p), ("rows", _f32p),
        ("n_rows", _i32), ("threads", _i32), ("out", _f64p),
    ]  # fmt: skip


def abi_expected() -> dict[str, int]:
    """What this loader expects of the library: constants, struct sizes and field offsets."""
    want = {"version": ABI_VERSION, "max_layers": MAX_LAYERS}
    want.update({f"loss.{name}": code for name, code in LOSS_CODES.items()})
    for struct, cname in ((TrainArgs, "evp_train_args"), (L1Args, "evp_l1_args")):
        want[f"sizeof.{cname}"] = ctypes.sizeof(struct)
        for name, *_ in struct._fields_:
            want[f"{cname}.{name}"] = getattr(struct, name).offset
    return want


def abi_mismatches(lib: ctypes.CDLL) -> list[str]:
    """Every ``key: library value != expected`` where the library disagrees with the loader."""
    query = lib.evp_abi
    query.restype = ctypes.c_int64
    query.argtypes = [ctypes.c_char_p]
    got = {key: int(query(key.encode())) for key in abi_expected()}
    return [
        f"{k}: library {got[k]} != loader {v}" for k, v in abi_expected().items() if got[k] != v
    ]
