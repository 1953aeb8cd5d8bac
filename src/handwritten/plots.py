"""Pure plotting functions: each takes tensors and returns a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so they hold no global
state and work the same in a notebook, a widget, a test or a headless grader. In a notebook,
a returned figure displays itself.

Colour conventions: images in grey; signed things (kernels, correlation outputs) in the
diverging ``RdBu_r`` map with limits symmetric around zero, so white always means 0.
"""

from __future__ import annotations

import io

import torch
from matplotlib.figure import Figure

DIVERGING = "RdBu_r"


def _limit(t: torch.Tensor) -> float:
    m = float(t.detach().abs().max()) if t.numel() else 0.0
    return m if m > 0 else 1.0


def heatmap(t: torch.Tensor, title: str = "", *, annotate: bool | None = None,
            diverging: bool = True, size: float = 3.0) -> Figure:
    """A small matrix as coloured cells, with its values written in when it is small enough."""
    t = t.detach().double()
    h, w = t.shape
    fig = Figure(figsize=(size * max(w / max(h, w), 0.4) + 0.6, size * max(h / max(h, w), 0.4)))
    ax = fig.add_subplot()
    m = _limit(t)
    kwargs = dict(cmap=DIVERGING, vmin=-m, vmax=m) if diverging else dict(cmap="gray")
    im = ax.imshow(t.numpy(), **kwargs)
    if annotate is None:
        annotate = h * w <= 100
    if annotate:
        for i in range(h):
            for j in range(w):
                value = float(t[i, j])
                ax.text(j, i, f"{value:g}" if value == int(value) else f"{value:.2f}",
                        ha="center", va="center", fontsize=8,
                        color="white" if diverging and abs(value) > 0.6 * m else "black")
    ax.set_xticks(range(w) if w <= 12 else [])
    ax.set_yticks(range(h) if h <= 12 else [])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, titles=None, *, ncols: int = 8, size: float = 1.4,
               cmap: str = "gray") -> Figure:
    """Show a batch of images (N, H, W) in a grid."""
    images = images.detach()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(size * ncols, size * nrows + (0.3 if titles is not None else 0)))
    for k in range(n):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(images[k].double().numpy(), cmap=cmap)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=9)
    fig.tight_layout()
    return fig


def loss_curves(curves: dict, *, title: str = "", log: bool = True) -> Figure:
    """Loss against step, one line per label, on a log scale by default (divergence is
    exponential, so it shows as a straight line going up)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), [float(v) for v in values], label=str(label))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def timings(groups: dict, *, title: str = "") -> Figure:
    """Horizontal bars of run times (log scale), one panel per group, each bar labelled with its
    time and its ratio to the fastest of its group: ``{"group": {"label": seconds, ...}, ...}``."""
    fig = Figure(figsize=(6.5, 0.9 + 0.45 * sum(len(g) for g in groups.values())))
    axes = fig.subplots(len(groups), 1, squeeze=False,
                        gridspec_kw=dict(height_ratios=[len(g) for g in groups.values()]))[:, 0]
    longest = max(v for g in groups.values() for v in g.values())
    shortest = min(v for g in groups.values() for v in g.values())
    for ax, (name, seconds) in zip(axes, groups.items()):
        labels, values = list(seconds), list(seconds.values())
        fastest = min(values)
        ax.barh(labels, values, color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlim(shortest / 2, longest * 40)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10, loc="left")
        for i, v in enumerate(values):
            ax.text(v, i, f"  {v * 1e6:,.0f} µs ({v / fastest:,.0f}×)", va="center", fontsize=9)
    axes[-1].set_xlabel("seconds per call (log scale)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    axes = fig.axes
    axes[0].images[0].set_data(image.detach().double().numpy())
    k_im = axes[1].images[0]
    k_im.set_data(kernel.detach().double().numpy())
    m = _limit(kernel)
    k_im.set_clim(-m, m)
    for text in list(axes[1].texts):
        text.remove()
    for (i, j), value in ((ij, float(kernel[ij])) for ij in
                          ((i, j) for i in range(kernel.shape[0]) for j in range(kernel.shape[1]))):
        axes[1].text(j, i, f"{value:g}", ha="center", va="center", fontsize=9,
                     color="white" if abs(value) > 0.6 * m else "black")
    o_im = axes[2].images[0]
    o_im.set_data(output.detach().double().numpy())
    m = _limit(output)
    o_im.set_clim(-m, m)


def to_png(fig: Figure, dpi: int = 80, **kwargs) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **kwargs)
    return buffer.getvalue()


def _show_figures_in_notebooks() -> None:
    """Make a returned Figure display as a picture, as pyplot's figures do. (IPython only learns
    to draw figures when pyplot is imported, and these are built without pyplot.)"""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(
            Figure, lambda fig: to_png(fig, dpi=100, bbox_inches="tight"))


_show_figures_in_notebooks()


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


# ---------------------------------------------------------------- lesson 02: gradient descent


def plot_function(fn, lo: float = -2.0, hi: float = 2.0, *, title: str = "", xlabel: str = "x",
                  ylabel: str = "", points=(), size: float = 4.0) -> Figure:
    """``fn`` drawn from ``lo`` to ``hi`` (it gets a tensor of x values), with optional red
    ``points`` [(x, y), ...] marked on it."""
    x = torch.linspace(lo, hi, 200)
    with torch.no_grad():
        y = fn(x)
    fig = Figure(figsize=(size, size * 0.7))
    ax = fig.add_subplot()
    ax.plot(x.numpy(), y.detach().double().numpy())
    for px, py in points:
        ax.scatter([float(px)], [float(py)], color="red", zorder=3)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _speed_limits(speed: torch.Tensor) -> tuple[float, float]:
    lo, hi = float(speed.min()), float(speed.max())
    margin = 0.25 * (hi - lo) + 1.0
    return lo - margin, hi + margin


def speed_fits(time: torch.Tensor, speed: torch.Tensor, fits: dict | None = None, *, ncols: int = 4,
               size: float = 3.0, ylim=None) -> Figure:
    """The measured speeds (blue dots) and, one panel per entry of ``fits`` ({title: predictions}),
    a model's predictions at the same times (red). Without ``fits``: the measurements alone.
    ``ylim`` fixes the vertical range (default: around the measurements); predictions outside it
    are clipped, so a wild guess doesn't squash the data flat."""
    fits = fits or {"": None}
    n = len(fits)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(size * ncols, size * 0.8 * nrows))
    t = time.detach().double().numpy()
    for k, (title, preds) in enumerate(fits.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.scatter(t, speed.detach().double().numpy(), s=12, label="measured")
        if preds is not None:
            ax.scatter(t, preds.detach().double().numpy(), s=12, color="red", label="predicted")
        ax.set_ylim(*(ylim or _speed_limits(speed)))
        ax.set_xlabel("time")
        ax.set_ylabel("speed")
        ax.set_title(str(title), fontsize=10)
    fig.tight_layout()
    return fig


def metric_curves(curves: dict, *, xlabel: str = "epoch", ylabel: str = "accuracy", title: str = "",
                  first: int = 1) -> Figure:
    """One line per label, ``{label: [value per epoch]}``, on a linear scale."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for label, values in curves.items():
        ax.plot(range(first, first + len(values)), [float(v) for v in values], label=str(label))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1 or any(str(label) for label in curves):
        ax.legend()
    fig.tight_layout()
    return fig


def descent_figure(time: torch.Tensor, speed: torch.Tensor) -> Figure:
    """The learning-rate explorer's picture: the loss at every step (left, log scale) and the
    measurements with the fitted parabola (right). ``update_descent_figure`` fills it in."""
    fig = Figure(figsize=(9, 3.4))
    loss_ax, fit_ax = fig.subplots(1, 2)
    loss_ax.plot([], [], marker=".", lw=1)                                # the losses
    loss_ax.plot([], [], marker="x", ms=12, mew=3, color="red", lw=0)    # where it blew up
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss (mse)")
    t = time.detach().double()
    fit_ax.scatter(t.numpy(), speed.detach().double().numpy(), s=12, label="measured")
    fit_ax.plot([], [], color="grey", ls="--", lw=1, label="start")
    fit_ax.plot([], [], color="red", lw=2, label="after the last step")
    fit_ax.set_ylim(*_speed_limits(speed))
    fit_ax.set_xlim(float(t.min()) - 0.5, float(t.max()) + 0.5)
    fit_ax.set_xlabel("time")
    fit_ax.set_ylabel("speed")
    fit_ax.legend(loc="upper center", fontsize=8)
    loss_ax.set_title(" ", fontsize=10)  # placeholders, so that the layout leaves room for the titles
    fit_ax.set_title(" ", fontsize=10)
    fig.tight_layout()
    return fig


def _parabola(t: torch.Tensor, params) -> torch.Tensor:
    a, b, c = (float(v) for v in params)
    return a * t ** 2 + b * t + c


def update_descent_figure(fig: Figure, time, losses, start, params, *, lr: float,
                          diverged_at: int | None = None) -> None:
    """Redraw the explorer's picture: ``losses`` (finite, one per step taken), the parabola of
    the ``start`` parameters and of the final ``params``; a red cross where training blew up."""
    loss_ax, fit_ax = fig.axes[:2]
    line, cross = loss_ax.lines[:2]
    steps = list(range(1, len(losses) + 1))
    line.set_data(steps, losses)
    cross.set_data([], [])
    if losses:
        low, high = min(losses), max(losses)
        top = max(high * 2, low * 4, 1e-11)
        if diverged_at is not None:  # off the chart: a red cross at the top, at the step that blew up
            top = high * 30
            cross.set_data([diverged_at], [high * 10])
        loss_ax.set_ylim(max(low / 2, 1e-12), top)
        loss_ax.set_xlim(0.5, max(len(losses) + (diverged_at is not None), 2) + 0.5)
    growing = len(losses) > 1 and losses[-1] > losses[0]
    if diverged_at is not None:
        title = f"lr = {lr:.1e}: diverged, the loss blew up at step {diverged_at}"
    elif growing:
        title = f"lr = {lr:.1e}: diverging, loss {losses[0]:.4g} → {losses[-1]:.4g}"
    elif losses:
        title = f"lr = {lr:.1e}: loss {losses[0]:.4g} → {losses[-1]:.4g}"
    else:
        title = f"lr = {lr:.1e}"
    loss_ax.set_title(title, fontsize=10, color="red" if diverged_at is not None or growing else "black")
    t = torch.linspace(float(time.min()), float(time.max()), 100, dtype=torch.float64)
    fit_ax.lines[0].set_data(t.numpy(), _parabola(t, start).numpy())
    fit_ax.lines[1].set_data(t.numpy(), _parabola(t, params).numpy())
    a, b, c = (float(v) for v in params)
    fit_ax.set_title(f"a = {a:.3g}, b = {b:.3g}, c = {c:.3g}", fontsize=10)


# ---------------------------------------------------------------- lesson 03: fit's history


def training_history(histories, *, title: str = "") -> Figure:
    """What ``fit`` returned, one list of per-epoch dicts (``train_loss``, ``valid_loss``,
    ``valid_accuracy``) per run: ``{label: history}``, or one history alone. Left: training
    (dashed) and validation (solid) loss; right: validation accuracy."""
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig = Figure(figsize=(9, 3.4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for k, (label, history) in enumerate(histories.items()):
        color = f"C{k}"
        epochs = list(range(1, len(history) + 1))
        name = f"{label}: " if label else ""
        loss_ax.plot(epochs, [float(h["train_loss"]) for h in history], ls="--", marker=".", color=color,
                     label=f"{name}training")
        loss_ax.plot(epochs, [float(h["valid_loss"]) for h in history], marker="o", color=color,
                     label=f"{name}validation")
        acc_ax.plot(epochs, [float(h["valid_accuracy"]) for h in history], marker="o", color=color,
                    label=str(label) or None)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss (training: mean over the epoch's batches)", fontsize=10)
    loss_ax.legend(fontsize=8)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_title("validation accuracy, after each epoch", fontsize=10)
    if any(histories):
        acc_ax.legend(fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- lesson 06: inside a CNN
# Figures for the filter viewer, filter evolution, feature-map explorer and shift explorer. Each
# ``*_figure`` builds the axes once and keeps its artists in ``fig.handwritten``; each ``update_*``
# only swaps their data, and ``fast_png`` draws only those artists again (see there): a widget redraw
# costs a few images and one PNG encoding, not a new figure.

FEATURES = "viridis"  # feature maps are ReLU outputs (>= 0): a sequential map, dark = 0


def _cnn_axes(ax, title: str = "", fontsize: float = 8) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
    if title:
        ax.set_title(title, fontsize=fontsize, pad=3)


def _np(t):
    return t.detach().double().cpu().numpy()


def mosaic(tiles: torch.Tensor, gap: int = 1):
    """Tiles (rows, cols, h, w) laid out as one 2-D array with ``gap`` pixels of NaN between them
    (drawn in the colour map's "bad" colour): one image to draw instead of rows x cols small ones,
    which is what keeps a widget's redraw fast."""
    import numpy as np

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
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _colour_bar(fig, image, cell, fontsize: float = 6):
    """A colour bar for ``image`` in its own axes; returns the axes (redrawn when the limits change)."""
    bar = fig.colorbar(image, cax=fig.add_subplot(cell))
    bar.ax.tick_params(labelsize=fontsize)
    return bar.ax


def fast_png(fig: Figure, dpi: int = 72) -> bytes:
    """A figure built by one of the ``*_figure`` functions below, as PNG, drawing only what changes.

    The first call renders everything except the artists in ``fig.handwritten["dynamic"]`` (images,
    bars, colour bars, titles) and keeps that picture; every call pastes it back and draws only those
    artists on top. Axes, tick labels and static text, most of a figure's drawing time, are laid out
    once. (After the first call the figure is meant for this function only: ``savefig`` leaves out
    the dynamic artists.)"""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    state = fig.handwritten
    if state.get("background_dpi") != dpi:
        for artist in state["dynamic"]:
            artist.set_animated(True)
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        state["background"], state["background_dpi"] = canvas.copy_from_bbox(fig.bbox), dpi
    canvas = fig.canvas
    canvas.restore_region(state["background"])
    renderer = canvas.get_renderer()
    for artist in state["dynamic"]:
        artist.draw(renderer)
    width, height = canvas.get_width_height(physical=True)
    buffer = io.BytesIO()
    Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
        buffer, format="png", compress_level=1)
    return buffer.getvalue()


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
    update_filter_figure(fig, conv1_weight, conv2_weight, title=title, limits=limits)
    fig.handwritten["marker"].set_xdata([step, step])


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


def _probability_bars(ax, n: int = 10, *, two: bool = False):
    """Horizontal bars, one per class (0 at the top); two interleaved sets when ``two``."""
    height = 0.42 if two else 0.8
    first = ax.barh([c - (height / 2 if two else 0) for c in range(n)], [0] * n, height=height,
                    color="darkgrey" if two else "tab:blue", label="original" if two else None)
    second = ax.barh([c + height / 2 for c in range(n)], [0] * n, height=height, color="tab:blue",
                     label="shifted") if two else None
    ax.set_xlim(0, 1)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_yticks(range(n), [str(c) for c in range(n)], fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("probability", fontsize=7, labelpad=1)
    if two:
        ax.legend(fontsize=7, loc="lower right")
    return first, second


def _set_bars(bars, probs, winner: int | None = None) -> None:
    for c, bar in enumerate(bars):
        bar.set_width(float(probs[c]))
        if winner is not None:
            bar.set_color("tab:red" if c == winner else "tab:blue")


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
# ---------------------------------------------------------------- end of lesson 06


# ---------------------------------------------------------------- lesson 05: CNNs


def race_figure(runs: dict, *, target: float | None = None, title: str = "") -> Figure:
    """Test accuracy against training time, one line per recipe: ``{label: [(seconds, accuracy), ...]}``,
    with an optional dashed line at the ``target`` accuracy."""
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.add_subplot()
    for label, points in runs.items():
        ax.plot([float(t) for t, _ in points], [float(a) for _, a in points], marker=".", label=str(label))
    if target is not None:
        ax.axhline(float(target), color="grey", ls="--", lw=1, label=f"target {float(target):.3f}")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
