"""The instructor demo (``make demo``): the digit classifier's picture, the digit as drawn, the digit as the
network gets it (rotated, resized, noisy or inverted) and the class probabilities, the winner in red. The
demo's other pictures are lesson 04's and lesson 06's."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from .common import _cnn_axes, _np, _probability_bars, _set_bars


def classifier_figure(image: torch.Tensor) -> Figure:
    """The digit classifier's picture, showing ``image`` twice and no probabilities yet;
    ``update_classifier_figure`` redraws it (with ``fast_png``)."""
    fig = Figure(figsize=(6.4, 2.7))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5], wspace=0.25, left=0.03, right=0.97, top=0.8,
                            bottom=0.17)
    shown = []
    for k, title in enumerate(("the digit", "what the network sees")):
        ax = fig.add_subplot(grid[0, k])
        _cnn_axes(ax, title, 8)
        shown.append(ax.imshow(_np(image), cmap="gray", vmin=0, vmax=1))
    bars, _ = _probability_bars(fig.add_subplot(grid[0, 2]))
    heading = fig.suptitle("", fontsize=10)
    fig.handwritten = {"original": shown[0], "seen": shown[1], "bars": bars, "title": heading,
                       "dynamic": [*shown, *bars, heading]}
    return fig


def update_classifier_figure(fig: Figure, image: torch.Tensor, seen: torch.Tensor, probs: torch.Tensor, *,
                             winner: int | None = None, title: str = "") -> None:
    """The digit, the digit as the network gets it, one bar per class probability (``winner`` in red,
    the others blue; colours unchanged without one) and the title."""
    artists = fig.handwritten
    artists["original"].set_data(_np(image))
    artists["seen"].set_data(_np(seen))
    _set_bars(artists["bars"], probs, winner)
    artists["title"].set_text(title)
