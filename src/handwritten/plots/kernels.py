"""Lesson 04, convolutions by hand: the kernel playground's picture, an image, a 3x3 kernel and what
``corr2d`` makes of them. (Lesson 04's matrices are drawn with ``heatmap``, in ``common``.)"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from .common import DIVERGING, _limit


def kernel_figure(image: torch.Tensor, kernel: torch.Tensor, output: torch.Tensor) -> Figure:
    """Input image, kernel (values written in) and output, side by side: the kernel
    playground's picture. ``update_kernel_figure`` redraws it in place."""
    fig = Figure(figsize=(8.4, 2.9))
    axes = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[1, 0.75, 1]))
    axes[0].imshow(image.detach().double().numpy(), cmap="gray")
    axes[0].set_title("input")
    axes[1].imshow(kernel.detach().double().numpy(), cmap=DIVERGING)
    axes[1].set_title("kernel")
    out = axes[2].imshow(output.detach().double().numpy(), cmap=DIVERGING)
    axes[2].set_title("output = corr2d(input, kernel)")
    fig.colorbar(out, ax=axes[2], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    update_kernel_figure(fig, image, kernel, output)
    return fig


def update_kernel_figure(fig: Figure, image, kernel, output) -> None:
    """New image, kernel and output into a ``kernel_figure``; the kernel's and the output's colour
    scales symmetric around zero, each its own largest |value|."""
    axes = fig.axes
    axes[0].images[0].set_data(image.detach().double().numpy())
    k_im = axes[1].images[0]
    k_im.set_data(kernel.detach().double().numpy())
    m = _limit(kernel)
    k_im.set_clim(-m, m)
    for text in list(axes[1].texts):
        text.remove()
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            value = float(kernel[i, j])
            axes[1].text(j, i, f"{value:g}", ha="center", va="center", fontsize=9,
                         color="white" if abs(value) > 0.6 * m else "black")
    o_im = axes[2].images[0]
    o_im.set_data(output.detach().double().numpy())
    m = _limit(output)
    o_im.set_clim(-m, m)
