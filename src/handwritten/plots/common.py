"""What every lesson draws with, and what the lessons' pictures share.

Public: ``heatmap``, ``image_grid``, ``loss_curves``, ``metric_curves``, ``timings`` (lessons 01 to 06), and the
two ways a figure becomes PNG bytes: ``to_png`` (everything, for a notebook or a test) and ``fast_png`` (only
what changed, for a widget's redraw). Private, shared by the lessons' modules: ``_limit`` (a colour scale
symmetric around zero), ``_np``, and the parts of the widgets' figures (``_cnn_axes``, ``_probability_bars``,
``_set_bars``).
"""

from __future__ import annotations

import io

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DIVERGING = "RdBu_r"


def _limit(t: torch.Tensor) -> float:
    """The largest |value| of ``t``, for colour limits symmetric around zero (1.0 when ``t`` is all zeros)."""
    m = float(t.detach().abs().max()) if t.numel() else 0.0
    return m if m > 0 else 1.0


def _np(t):
    return t.detach().double().cpu().numpy()


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


def metric_curves(curves: dict, *, xlabel: str = "epoch", ylabel: str = "accuracy", title: str = "",
                  first: int = 1) -> Figure:
    """One line per label, ``{label: [value per epoch]}``, on a linear scale."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for label, values in curves.items():
        ax.plot(range(first, first + len(values)), [float(v) for v in values], label=str(label))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1 or any(str(label) for label in curves):
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


# ---------------------------------------------------------------- figures as PNG


def to_png(fig: Figure, dpi: int = 80, **kwargs) -> bytes:
    """The whole figure as PNG bytes (``kwargs`` go to ``savefig``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **kwargs)
    return buffer.getvalue()


def fast_png(fig: Figure, dpi: int = 72) -> bytes:
    """A widget's figure as PNG, drawing only what changes.

    The widgets' figures (lesson 06's, the demo's classifier) are built once and keep the artists that
    a redraw changes in ``fig.handwritten["dynamic"]`` (images, bars, colour bars, titles); their
    ``update_*`` functions only swap those artists' data. The first call renders everything except
    them and keeps that picture; every call pastes it back and draws only those artists on top. Axes,
    tick labels and static text, most of a figure's drawing time, are laid out once. (After the first
    call the figure is meant for this function only: ``savefig`` leaves out the dynamic artists.)"""
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


# ---------------------------------------------------------------- parts of the widgets' figures


def _cnn_axes(ax, title: str = "", fontsize: float = 8) -> None:
    """Axes for a digit: no ticks, thin frame, a small title."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
    if title:
        ax.set_title(title, fontsize=fontsize, pad=3)


def _probability_bars(ax, n: int = 10, *, two: bool = False):
    """Horizontal bars, one per class (0 at the top), all of width 0 until ``_set_bars``; two
    interleaved sets (grey "original", blue "shifted") when ``two``. Returns both sets (the
    second is None without ``two``)."""
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
    """Each bar's width to its class's probability; the ``winner`` red and the others blue, if given."""
    for c, bar in enumerate(bars):
        bar.set_width(float(probs[c]))
        if winner is not None:
            bar.set_color("tab:red" if c == winner else "tab:blue")
