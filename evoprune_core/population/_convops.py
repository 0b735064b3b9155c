"""Convolutions of N members at once as im2col + batched matrix products, with their backward.

Image activations of N members are ``(N, C, H, W, B)`` tensors: each member's channels
outermost, the minibatch innermost, so a member's activation is a ``(C, H*W*B)`` matrix. A convolution of member m is then its filters ``(Cout, Cin*k*k)`` (torch's layout,
flattened) times its im2col columns ``(Cin*k*k, B*Ho*Wo)``: one ``bmm`` computes every member,
and its output is already the next layer's ``(N, Cout, Ho, Wo, B)``; a transposed convolution
is the reverse (one ``bmm`` to ``(N, Cout*k*k, H*W*B)``, then col2im). The long dimension
(pixels of the minibatch) is always the matrices' columns, which keeps the products fast when
a layer has one or a few channels. The backward passes are written out
(:class:`Conv2dMembers`, :class:`ConvTranspose2dMembers`): two ``bmm`` each and one im2col or
col2im, reusing what the forward kept; weight gradients come out in torch's layout. An input
shared by all members (the first layer's images) is unfolded once and multiplied with every
member's filters in one ``mm``.

im2col reads a zero-padded canvas ``(M, C, Hc, Wc, B)`` through a strided view of its k x k
windows and copies it once (the minibatch innermost keeps the copy's inner runs contiguous
and B long, where a stride-2 run over a row of pixels measured several times slower); col2im adds the columns back into a zero canvas with one strided
add per kernel position (an add never touches an element twice, so none overlaps itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Conv2dMembers",
    "ConvTranspose2dMembers",
    "col2im",
    "conv2d_members",
    "conv_transpose2d_members",
    "im2col",
]


def _windows(canvas: Tensor, k: int, s: int, ho: int, wo: int) -> Tensor:
    """``(M, C, Hc, Wc, B)`` contiguous canvas -> view ``(M, C, k, k, ho, wo, B)``: element
    ``[.., i, j, y, x, b]`` is ``canvas[.., s*y + i, s*x + j, b]``."""
    m, c, hc, wc, b = canvas.shape
    sm, sc, sh, sw, _ = canvas.stride()
    return canvas.as_strided((m, c, k, k, ho, wo, b), (sm, sc, sh, sw, s * sh, s * sw, 1))


def im2col(canvas: Tensor, k: int, s: int, ho: int, wo: int) -> Tensor:
    """``(M, C, Hc, Wc, B)`` canvas -> columns ``(M, C*k*k, ho*wo*B)`` (one copy)."""
    m, c, _, _, b = canvas.shape
    return _windows(canvas.contiguous(), k, s, ho, wo).reshape(m, c * k * k, ho * wo * b)


def col2im(
    cols: Tensor, c: int, b: int, k: int, s: int, h: int, w: int, hc: int, wc: int
) -> Tensor:
    """Sum columns ``(M, c*k*k, h*w*b)`` into a zero ``(M, c, hc, wc, b)`` canvas: the
    adjoint of :func:`im2col`."""
    m = cols.shape[0]
    canvas = cols.new_zeros(m, c, hc, wc, b)
    src = cols.view(m, c, k, k, h, w, b)
    dst = _windows(canvas, k, s, h, w)
    for i in range(k):
        for j in range(k):
            dst[:, :, i, j].add_(src[:, :, i, j])
    return canvas


def _canvas(x: Tensor, p: int, hc: int, wc: int) -> Tensor:
    """``(M, C, H, W, B)`` at offset ``(p, p)`` of a zero ``(M, C, hc, wc, B)`` canvas."""
    h, w = x.shape[2:4]
    if p == 0 and hc == h and wc == w:
        return x.contiguous()
    return torch.constant_pad_nd(x, (0, 0, p, wc - w - p, p, hc - h - p))


def _mm_members(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` per member where either side may be shared (leading dimension 1)."""
    if a.shape[0] == b.shape[0]:
        return torch.bmm(a, b)
    if a.shape[0] == 1:  # (1, r, k) @ (N, k, c): one mm over the members' columns side by side
        n, kk, c = b.shape
        return torch.mm(a[0], b.transpose(0, 1).reshape(kk, n * c)).view(-1, n, c).transpose(0, 1)
    n, r, kk = a.shape  # (N, r, k) @ (1, k, c)
    return torch.mm(a.reshape(n * r, kk), b[0]).view(n, r, -1)


class Conv2dMembers(torch.autograd.Function):
    """``y[m] = conv2d(x[m], weight[m], bias[m])`` for every member m.

    ``x``: ``(N, Cin, H, W, B)`` or ``(1, Cin, H, W, B)`` (one input shared by all members);
    ``weight``: ``(N, Cout, Cin, k, k)`` (torch's layout per member); ``bias``: ``(N, Cout)``.
    Returns ``(N, Cout, Ho, Wo, B)``.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int
    ) -> Tensor:
        n, cout, cin, k, _ = weight.shape
        nx, _, h, w, b = x.shape
        s, p = stride, padding
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        hc, wc = h + 2 * p, w + 2 * p
        cols = im2col(_canvas(x, p, hc, wc), k, s, ho, wo)  # (Nx, Cin*k*k, Ho*Wo*B)
        wm = weight.reshape(n, cout, cin * k * k)
        if nx == n:
            out = torch.baddbmm(bias.unsqueeze(2), wm, cols)
        else:  # shared input: every member's filters stacked, one mm
            out = torch.addmm(bias.reshape(-1, 1), wm.reshape(n * cout, -1), cols[0])
        ctx.save_for_backward(cols, wm)
        ctx.geometry = (nx, b, h, w, k, s, p, ho, wo, hc, wc)
        return out.view(n, cout, ho, wo, b)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        cols, wm = ctx.saved_tensors
        nx, b, h, w, k, s, p, ho, wo, hc, wc = ctx.geometry
        n, cout, kk = wm.shape
        g = grad.reshape(n, cout, b * ho * wo)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            if nx == n:
                gw = torch.bmm(g, cols.transpose(1, 2))
            else:
                gw = torch.mm(g.reshape(n * cout, -1), cols[0].t())
            gw = gw.view(n, cout, kk // (k * k), k, k)
        if ctx.needs_input_grad[2]:
            gb = g.sum(2)
        if ctx.needs_input_grad[0]:
            gcols = torch.bmm(wm.transpose(1, 2).contiguous(), g)  # (N, Cin*k*k, Ho*Wo*B)
            canvas = col2im(gcols, kk // (k * k), b, k, s, ho, wo, hc, wc)
            gx = canvas[:, :, p : p + h, p : p + w]
            if nx == 1 and n > 1:
                gx = gx.sum(0, keepdim=True)
        return gx, gw, gb, None, None


class ConvTranspose2dMembers(torch.autograd.Function):
    """``y[m] = conv_transpose2d(x[m], weight[m], bias[m])`` for every member m.

    ``x``: ``(N, Cin, H, W, B)`` or ``(1, Cin, H, W, B)`` (shared); ``weight``:
    ``(N, Cin, Cout, k, k)`` (torch's layout per member); ``bias``: ``(N, Cout)``.
    Returns ``(N, Cout, Ho, Wo, B)`` with ``Ho = (H-1)*s - 2p + k + output_padding``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        stride: int,
        padding: int,
        output_padding: int,
    ) -> Tensor:
        n, cin, cout, k, _ = weight.shape
        nx, _, h, w, b = x.shape
        s, p = stride, padding
        ho = (h - 1) * s - 2 * p + k + output_padding
        wo = (w - 1) * s - 2 * p + k + output_padding
        hc = max((h - 1) * s + k, p + ho)
        wc = max((w - 1) * s + k, p + wo)
        xm = x.reshape(nx, cin, b * h * w)
        wm = weight.reshape(n, cin, cout * k * k)
        cols = _mm_members(wm.transpose(1, 2).contiguous(), xm)  # (N, Cout*k*k, H*W*B)
        canvas = col2im(cols, cout, b, k, s, h, w, hc, wc)
        out = canvas[:, :, p : p + ho, p : p + wo]  # a view: the next op makes it dense
        out.add_(bias.view(n, cout, 1, 1, 1))
        ctx.save_for_backward(xm, wm)
        ctx.geometry = (nx, b, h, w, k, s, p, ho, wo, hc, wc)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        xm, wm = ctx.saved_tensors
        nx, b, h, w, k, s, p, ho, wo, hc, wc = ctx.geometry
        n, cin, _ = wm.shape
        gx = gw = gb = None
        if ctx.needs_input_grad[2]:
            gb = grad.sum((2, 3, 4))
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gcols = im2col(_canvas(grad, p, hc, wc), k, s, h, w)  # (N, Cout*k*k, H*W*B)
            if ctx.needs_input_grad[1]:
                gw = _mm_members(xm, gcols.transpose(1, 2)).reshape(n, cin, -1, k, k)
            if ctx.needs_input_grad[0]:
                gx = torch.bmm(wm, gcols).view(n, cin, h, w, b)
                if nx == 1 and n > 1:
                    gx = gx.sum(0, keepdim=True)
        return gx, gw, gb, None, None, None


def conv2d_members(x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int) -> Tensor:
    """:class:`Conv2dMembers` applied (differentiable in all three tensors)."""
    out: Tensor = Conv2dMembers.apply(x, weight, bias, stride, padding)  # type: ignore[no-untyped-call]
    return out


def conv_transpose2d_members(
    x: Tensor, weight: Tensor, bias: Tensor, stride: int, padding: int, output_padding: int
) -> Tensor:
    """:class:`ConvTranspose2dMembers` applied (differentiable in all three tensors)."""
    out: Tensor = ConvTranspose2dMembers.apply(  # type: ignore[no-untyped-call]
        x, weight, bias, stride, padding, output_padding
    )
    return out
