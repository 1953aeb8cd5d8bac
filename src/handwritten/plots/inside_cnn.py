"""Lesson 06, inside a CNN: the figures of the filter viewer, the filter evolution, the feature-map explorer
and the shift explorer, and the lesson's two curves (``error_curves``, ``accuracy_by_shift``).

Each ``*_figure`` builds the axes once and keeps its artists in ``fig.handwritten``; each ``update_*`` only
swaps their data, and ``fast_png`` (in ``common``) draws only those artists again: a widget's redraw costs a
few images and one PNG encoding, not a new figure.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from .common import DIVERGING, _cnn_axes, _limit, _np, _probability_bars, _set_bars

FEATURES = "viridis"  # feature maps are ReLU outputs (>= 0): a sequential map, dark = 0


def mosaic(tiles: torch.Tensor, gap: int = 1):
    """Tiles (rows, cols, h, w) laid out as one 2-D array with ``gap`` pixels of NaN between them
    (drawn in the colour map's "bad" colour): one image to draw instead of rows x cols small ones,
    which is what keeps a widget's redraw fast."""
    rows, cols, h, w = tiles.shape
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    values = _np(tiles)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = values[r, c]
    return out


def _tile_ticks(ax, rows: int, cols: int, h: int, w: int, gap: int, *, xlabel=None, ylabel=None,
                fontsize: float = 7) -> None:
    """Label each tile's column (and row) at its centre, instead of giving each tile a title."""
    ax.set_xticks([c * (w + gap) + (w - 1) / 2 for c in range(cols)],
                  [xlabel(c) for c in range(cols)] if xlabel else [""] * cols, fontsize=fontsize)
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(rows)],
                  [ylabel(r) for r in range(rows)] if ylabel else [""] * rows, fontsize=fontsize)
    ax.tick_params(length=0, pad=2, top=True, labeltop=True, bottom=False, labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _cmap(name: str, bad: str):
    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _colour_bar(fig, image, cell, fontsize: float = 6):
    """A colour bar for ``image`` in its own axes; returns the axes (redrawn when the limits change)."""
    bar = fig.colorbar(image, cax=fig.add_subplot(cell))
    bar.ax.tick_params(labelsize=fontsize)
    return bar.ax


# ---------------------------------------------------------------- the kernels: filter viewer, filter evolution


def _kernel_mosaics(fig, grid, conv1_weight, conv2_weight, fontsize: float = 7):
    """conv1's kernels in one row, conv2's below as a grid: one column per output channel, one row
    per input channel. Returns the two images and the axes of their colour bars."""
    c1, c2 = conv1_weight.shape[0], conv2_weight.shape[0]
    k = conv1_weight.shape[-1]
    cmap = _cmap(DIVERGING, "0.55")
    top = fig.add_subplot(grid[0, 0])
    layer1 = top.imshow(mosaic(conv1_weight[:, 0][None]), cmap=cmap)
    _tile_ticks(top, 1, c1, k, k, 1, xlabel=lambda c: f"#{c + 1}", fontsize=fontsize)
    top.set_ylabel("conv1", fontsize=fontsize + 1)
    bottom = fig.add_subplot(grid[1, 0])
    layer2 = bottom.imshow(mosaic(conv2_weight.transpose(0, 1)), cmap=cmap)
    _tile_ticks(bottom, c1, c2, k, k, 1, xlabel=lambda c: f"#{c + 1}", ylabel=lambda r: f"in {r + 1}",
                fontsize=fontsize)
    bottom.set_ylabel("conv2", fontsize=fontsize + 1)
    bars = [_colour_bar(fig, image, grid[cell, 1], fontsize - 1) for cell, image in enumerate((layer1, layer2))]
    return layer1, layer2, bars


def filter_figure(conv1_weight: torch.Tensor, conv2_weight: torch.Tensor, *, title: str = "") -> Figure:
    """The kernels of both convolutional layers: conv1's (c1, 1, k, k) in the top row, conv2's
    (c2, c1, k, k) below as a grid (one column per output channel, one row per input channel).
    Diverging colours, limits symmetric around zero and separate for each layer, one colour bar
    each. ``update_filter_figure`` redraws it."""
    c1 = conv1_weight.shape[0]
    fig = Figure(figsize=(6.4, 1.2 + 0.62 * (1 + c1)))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 0.025], height_ratios=[1.25, c1], hspace=0.3, wspace=0.04,
                            left=0.08, right=0.92, top=0.84, bottom=0.03)
    layer1, layer2, bars = _kernel_mosaics(fig, grid, conv1_weight, conv2_weight)
    heading = fig.suptitle(title, fontsize=10)
    fig.handwritten = {"layer1": layer1, "layer2": layer2, "title": heading,
                       "dynamic": [layer1, layer2, *bars, heading]}
    update_filter_figure(fig, conv1_weight, conv2_weight, title=title)
    return fig


def update_filter_figure(fig: Figure, conv1_weight, conv2_weight, *, title: str | None = None,
                         limits: tuple[float, float] | None = None) -> None:
    """New kernels into a ``filter_figure``. ``limits`` (layer 1, layer 2) fixes the colour
    scales; by default each layer's is its own largest |weight|."""
    artists = fig.handwritten
    m1, m2 = limits or (_limit(conv1_weight), _limit(conv2_weight))
    artists["layer1"].set_data(mosaic(conv1_weight[:, 0][None]))
    artists["layer1"].set_clim(-m1, m1)
    artists["layer2"].set_data(mosaic(conv2_weight.transpose(0, 1)))
    artists["layer2"].set_clim(-m2, m2)
    if title is not None:
        artists["title"].set_text(title)


def evolution_figure(conv1_weight: torch.Tensor, conv2_weight: torch.Tensor, record, steps) -> Figure:
    """The filter viewer's kernels above the training curves (error rates against the batch number,
    a marker at the snapshot shown): the filter evolution's picture. ``update_evolution_figure``
    moves it through training."""
    c1 = conv1_weight.shape[0]
    fig = Figure(figsize=(6.4, 1.2 + 0.62 * (1 + c1) + 2.2))
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 0.025], height_ratios=[1.25, c1, 3.4], hspace=0.35,
                            wspace=0.04, left=0.1, right=0.92, top=0.9, bottom=0.09)
    layer1, layer2, bars = _kernel_mosaics(fig, grid, conv1_weight, conv2_weight)
    curve = fig.add_subplot(grid[2, 0])
    steps = [int(s) for s in steps]
    if record:
        curve.plot(steps, [float(r[0]) for r in record], label="training error", color="tab:orange", lw=1.2)
        curve.plot(steps, [float(r[1]) for r in record], label="validation error", color="tab:blue", lw=1.2)
        curve.legend(fontsize=7, loc="upper right")
        curve.set_ylim(0, max(5.0, max(max(float(r[0]), float(r[1])) for r in record) * 1.05))
    marker = curve.axvline(steps[0] if steps else 0, color="black", lw=1, ls="--")
    curve.set_xlabel("batch", fontsize=8)
    curve.set_ylabel("error (%)", fontsize=8)
    curve.tick_params(labelsize=7)
    curve.grid(alpha=0.3)
    heading = fig.suptitle("", fontsize=10)
    fig.handwritten = {"layer1": layer1, "layer2": layer2, "marker": marker, "title": heading,
                       "dynamic": [layer1, layer2, *bars, marker, heading]}
    return fig


def update_evolution_figure(fig: Figure, conv1_weight, conv2_weight, step: int, *, title: str = "",
                            limits: tuple[float, float] | None = None) -> None:
    """The kernels of another snapshot, and the marker moved to its batch ``step``."""
    update_filter_figure(fig, conv1_weight, conv2_weight, title=title, limits=limits)
    fig.handwritten["marker"].set_xdata([step, step])


# ---------------------------------------------------------------- the feature maps: explorer, shift explorer


def _map_mosaic(ax, maps, rows: int, name: str, fontsize: float = 7):
    """Feature maps (c, h, w) as one image, ``rows`` rows of tiles, each labelled under its column."""
    c, h, w = maps.shape
    cols = (c + rows - 1) // rows
    tiles = _map_tiles(maps, rows)
    image = ax.imshow(mosaic(tiles, gap=2), cmap=_cmap(FEATURES, "white"), vmin=0, vmax=1)
    _tile_ticks(ax, rows, cols, h, w, 2, xlabel=lambda j: f"#{j + 1}" if rows == 1 else "",
                fontsize=fontsize)
    if rows > 1:
        ax.set_yticks([r * (h + 2) + (h - 1) / 2 for r in range(rows)],
                      [f"#{r * cols + 1}-{min(c, (r + 1) * cols)}" for r in range(rows)], fontsize=fontsize)
    ax.set_ylabel(name, fontsize=fontsize + 1)
    return image


def _map_tiles(maps, rows: int) -> torch.Tensor:
    c, h, w = maps.shape
    cols = (c + rows - 1) // rows
    tiles = torch.full((rows * cols, h, w), float("nan"), dtype=torch.float64)
    tiles[:c] = maps.detach().double()
    return tiles.reshape(rows, cols, h, w)


def _set_maps(image, maps, rows: int, vmax: float) -> None:
    image.set_data(mosaic(_map_tiles(maps, rows), gap=2))
    image.set_clim(0, vmax)


def feature_map_figure(image: torch.Tensor, maps1: torch.Tensor, maps2: torch.Tensor,
                       probs: torch.Tensor) -> Figure:
    """One digit (left, with the class probabilities under it), the feature maps of the first
    convolutional layer (top) and of the second (below), each layer on one colour scale from 0
    to its largest value, with its colour bar. ``update_feature_map_figure`` redraws it."""
    fig = Figure(figsize=(7.2, 4.6))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.1, 3.1, 0.06], height_ratios=[1, 2], hspace=0.22,
                            wspace=0.12, left=0.05, right=0.93, top=0.87, bottom=0.09)
    image_ax = fig.add_subplot(grid[0, 0])
    _cnn_axes(image_ax, "input", 8)
    shown = image_ax.imshow(_np(image), cmap="gray", vmin=0, vmax=1)
    bars, _ = _probability_bars(fig.add_subplot(grid[1, 0]), len(probs))
    layer1 = _map_mosaic(fig.add_subplot(grid[0, 1]), maps1, 1, "layer 1")
    layer2 = _map_mosaic(fig.add_subplot(grid[1, 1]), maps2, 2, "layer 2")
    scales = [_colour_bar(fig, im, grid[row, 2]) for row, im in enumerate((layer1, layer2))]
    heading = fig.suptitle("", fontsize=10)
    fig.handwritten = {"image": shown, "bars": bars, "layer1": layer1, "layer2": layer2, "title": heading,
                       "dynamic": [shown, *bars, layer1, layer2, *scales, heading]}
    update_feature_map_figure(fig, image, maps1, maps2, probs)
    return fig


def update_feature_map_figure(fig: Figure, image, maps1, maps2, probs, *, title: str = "") -> None:
    """New digit, maps and probabilities; each layer's colour scale runs from 0 to its largest value."""
    artists = fig.handwritten
    artists["image"].set_data(_np(image))
    _set_maps(artists["layer1"], maps1, 1, _limit(maps1))
    _set_maps(artists["layer2"], maps2, 2, _limit(maps2))
    _set_bars(artists["bars"], probs, int(torch.as_tensor(probs).argmax()))
    artists["title"].set_text(title)


def shift_figure(original: torch.Tensor, shifted: torch.Tensor, probs_original: torch.Tensor,
                 probs_shifted: torch.Tensor, maps1: torch.Tensor, maps2: torch.Tensor) -> Figure:
    """The shift explorer's picture: the digit and its shifted copy, both digits' class
    probabilities side by side, and the shifted digit's feature maps (layer 1, then layer 2).
    ``update_shift_figure`` redraws it."""
    fig = Figure(figsize=(7.2, 6.2))
    grid = fig.add_gridspec(3, 4, width_ratios=[1, 1, 1.6, 0.06], height_ratios=[1.3, 1, 2], hspace=0.3,
                            wspace=0.15, left=0.06, right=0.93, top=0.92, bottom=0.02)
    original_ax = fig.add_subplot(grid[0, 0])
    _cnn_axes(original_ax, "original", 8)
    original_im = original_ax.imshow(_np(original), cmap="gray", vmin=0, vmax=1)
    shifted_ax = fig.add_subplot(grid[0, 1])
    _cnn_axes(shifted_ax, "shifted", 8)
    shifted_im = shifted_ax.imshow(_np(shifted), cmap="gray", vmin=0, vmax=1)
    before, after = _probability_bars(fig.add_subplot(grid[0, 2]), len(probs_original), two=True)
    layer1 = _map_mosaic(fig.add_subplot(grid[1, :3]), maps1, 1, "layer 1")
    layer2 = _map_mosaic(fig.add_subplot(grid[2, :3]), maps2, 2, "layer 2")
    scales = [_colour_bar(fig, im, grid[row, 3]) for row, im in ((1, layer1), (2, layer2))]
    heading = fig.suptitle("", fontsize=10)
    legend = before[0].axes.get_legend()  # drawn after the bars, which would cover it
    fig.handwritten = {"original": original_im, "shifted": shifted_im, "before": before, "after": after,
                       "layer1": layer1, "layer2": layer2, "title": heading,
                       "dynamic": [original_im, shifted_im, *before, *after, legend, layer1, layer2, *scales,
                                   heading]}
    update_shift_figure(fig, original, shifted, probs_original, probs_shifted, maps1, maps2)
    return fig


def update_shift_figure(fig: Figure, original, shifted, probs_original, probs_shifted, maps1, maps2, *,
                        limits: tuple[float, float] | None = None, title: str = "") -> None:
    """New digits, probabilities and maps. ``limits`` (layer 1, layer 2) fixes the colour scales,
    say to the unshifted digit's, so that the maps of different shifts compare fairly."""
    artists = fig.handwritten
    artists["original"].set_data(_np(original))
    artists["shifted"].set_data(_np(shifted))
    _set_bars(artists["before"], probs_original)
    _set_bars(artists["after"], probs_shifted)
    m1, m2 = limits or (_limit(maps1), _limit(maps2))
    _set_maps(artists["layer1"], maps1, 1, m1)
    _set_maps(artists["layer2"], maps2, 2, m2)
    artists["title"].set_text(title)


# ---------------------------------------------------------------- the lesson's curves


def error_curves(record, *, every: int | None = None, steps=None, title: str = "") -> Figure:
    """A training record, ``[(training error %, validation error %), ...]``, against the batch
    number: entry k is at batch ``steps[k]``, or ``k * every``, or ``k``."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    xlabel = "batch" if every or steps is not None else "record"
    if steps is None:
        steps = [k * (every or 1) for k in range(len(record))]
    ax.plot(steps, [float(r[0]) for r in record], label="training error", color="tab:orange")
    ax.plot(steps, [float(r[1]) for r in record], label="validation error", color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error rate (%)")
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig


def accuracy_by_shift(curves: dict, *, title: str = "") -> Figure:
    """Accuracy against the shift in pixels, ``{label: {shift: accuracy}}``."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    for label, values in curves.items():
        shifts = sorted(values)
        ax.plot(shifts, [float(values[s]) for s in shifts], marker="o", label=str(label))
    ax.set_xlabel("shift (pixels)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig
