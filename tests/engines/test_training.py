"""The per-member loss gradient: values against autograd, and the in-place contract."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.engines.steps import loss_grad, loss_value


@pytest.mark.parametrize("loss", ["bce", "mse", "l1"])
def test_loss_grad_is_the_gradient_of_the_mean_loss(loss: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    x = (torch.rand(5, 7, generator=gen, dtype=torch.float64) < 0.5).double()
    z = logits.clone().requires_grad_(True)
    loss_value(z, x, loss).sum().backward()
    torch.testing.assert_close(loss_grad(logits, x, loss), z.grad, rtol=1e-12, atol=1e-15)


def test_in_place_overwrites_the_logits_and_only_then() -> None:
    logits = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1))
    x = torch.ones(4, 3)
    kept = logits.clone()
    out = loss_grad(logits, x, "bce")
    assert torch.equal(logits, kept) and out.data_ptr() != logits.data_ptr()
    again = loss_grad(logits, x, "bce", inplace=True)  # saves two allocations per step
    assert again.data_ptr() == logits.data_ptr() and torch.equal(again, out)
