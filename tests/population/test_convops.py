"""im2col + bmm convolutions of N members against torch.nn.functional, per member: values
and the gradients of input, weight and bias, over strides, paddings and kernel sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evoprune_core.population._convops import conv2d_members, conv_transpose2d_members

GEOMETRIES = [  # (kernel, stride, padding, output_padding, h, w)
    (3, 2, 1, 1, 7, 6),
    (3, 1, 1, 0, 5, 5),
    (5, 1, 2, 0, 6, 4),
    (2, 2, 0, 0, 6, 6),
    (3, 3, 0, 2, 5, 7),
    (1, 1, 0, 0, 3, 3),
]


def _members(x: torch.Tensor) -> torch.Tensor:
    """``(N, B, C, H, W)`` -> the internal ``(N, C, H, W, B)``."""
    return x.permute(0, 2, 3, 4, 1).contiguous()


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-member", "shared-input"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[str(g[:4]) for g in GEOMETRIES])
def test_each_member_equals_torch_forward_and_backward(geometry, shared, transposed) -> None:
    k, s, p, op, h, w = geometry
    n, b, cin, cout = 3, 2, 2, 3
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1 if shared else n, b, cin, h, w, generator=gen, dtype=torch.float64)
    wshape = (n, cin, cout, k, k) if transposed else (n, cout, cin, k, k)
    weight = torch.randn(wshape, generator=gen, dtype=torch.float64)
    bias = torch.randn(n, cout, generator=gen, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    xi = _members(leaves[0])
    if transposed:
        out = conv_transpose2d_members(xi, leaves[1], leaves[2], s, p, op)
    else:
        out = conv2d_members(xi, leaves[1], leaves[2], s, p)
    got = out.permute(0, 4, 1, 2, 3)  # (N, B, Cout, Ho, Wo)
    seed = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad((got * seed).sum(), leaves)
    for m in range(n):
        ref = [t.clone().requires_grad_() for t in (x[0 if shared else m], weight[m], bias[m])]
        if transposed:
            want = F.conv_transpose2d(ref[0], ref[1], ref[2], s, p, op)
        else:
            want = F.conv2d(ref[0], ref[1], ref[2], s, p)
        torch.testing.assert_close(got[m], want, rtol=1e-12, atol=1e-12)
        ref_grads = torch.autograd.grad((want * seed[m]).sum(), ref)
        torch.testing.assert_close(grads[1][m], ref_grads[1], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grads[2][m], ref_grads[2], rtol=1e-12, atol=1e-12)
        if not shared:
            torch.testing.assert_close(grads[0][m], ref_grads[0], rtol=1e-12, atol=1e-12)
    if shared:  # the shared input's gradient sums every member's
        total = sum(
            torch.autograd.grad(
                (
                    (F.conv_transpose2d if transposed else F.conv2d)(
                        xr, weight[m], bias[m], s, p, *((op,) if transposed else ())
                    )
                    * seed[m]
                ).sum(),
                xr,
            )[0]
            for m in range(n)
            for xr in [x[0].clone().requires_grad_()]
        )
        torch.testing.assert_close(grads[0][0], total, rtol=1e-12, atol=1e-12)
