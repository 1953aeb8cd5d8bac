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
