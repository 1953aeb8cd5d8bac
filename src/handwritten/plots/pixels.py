"""Lesson 01, pixels and tensors: an image's numbers, shown as the table they are."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from .common import _limit


def pixel_table(pixels: torch.Tensor, title: str = "", *, first_row: int = 0, first_col: int = 0,
                vmax: float | None = None, cell: float = 0.36) -> Figure:
    """Pixel values as a shaded table: each cell shaded from white (0) to black (``vmax``: 255 for
    ``uint8``, else the largest value), its number written in, and rows and columns numbered from
    ``first_row`` and ``first_col``, so a slice keeps the coordinates of the image it was cut from."""
    t = pixels.detach()
    if t.ndim != 2:
        raise ValueError(f"pixel_table shows a 2-D tensor (rows, columns), not shape {tuple(t.shape)}")
    h, w = t.shape
    if vmax is None:
        vmax = 255.0 if t.dtype == torch.uint8 else _limit(t)
    values = t.double()
    whole = not values.is_floating_point() or bool((values == values.round()).all())
    fig = Figure(figsize=(cell * w + 0.7, cell * h + (0.7 if title else 0.45)))
    ax = fig.add_subplot()
    ax.imshow(values.numpy(), cmap="Greys", vmin=0, vmax=vmax)
    size = max(5.0, min(9.0, 19 * cell))
    for i in range(h):
        for j in range(w):
            value = float(values[i, j])
            ax.text(j, i, f"{value:.0f}" if whole else f"{value:.2f}", ha="center", va="center",
                    fontsize=size, color="white" if value > 0.5 * vmax else "black")
    ax.set_xticks(range(w), [str(first_col + j) for j in range(w)], fontsize=size)
    ax.set_yticks(range(h), [str(first_row + i) for i in range(h)], fontsize=size)
    ax.tick_params(length=0, top=True, labeltop=True, bottom=False, labelbottom=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
