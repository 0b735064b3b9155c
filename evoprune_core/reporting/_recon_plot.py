"""A grid of sample reconstructions of an image autoencoder (matplotlib, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

__all__ = ["reconstruction_figure", "save_reconstructions"]


def reconstruction_figure(
    originals: torch.Tensor, reconstructions: torch.Tensor, shape: tuple[int, ...]
) -> Figure:
    """Originals in the top row, their reconstructions below; rows ``(k, D)`` of ``shape``
    ``(c, h, w)`` images (the first channel is shown, in grey, 0 black and 1 white)."""
    k = originals.shape[0]
    fig = Figure(figsize=(1.1 * k, 2.4), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False)
    for row, (label, imgs) in enumerate(
        (("original", originals), ("reconstruction", reconstructions))
    ):
        for j in range(k):
            ax = axes[row][j]
            ax.imshow(imgs[j].reshape(shape)[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(label, fontsize=7)
    return fig


def save_reconstructions(
    pop: object, member: int, rows: torch.Tensor, shape: tuple[int, ...], path: Path
) -> Path:
    """Write the grid of ``pop`` member ``member`` reconstructing ``rows`` to ``path`` (PNG)."""
    recon = pop.reconstruct(rows)[member].detach().cpu()  # type: ignore[attr-defined]
    reconstruction_figure(rows.cpu(), recon, shape).savefig(path, dpi=72)
    return path
