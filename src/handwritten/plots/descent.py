"""Lesson 02, SGD from scratch: functions and their minimum, the roller coaster's speeds and the parabolas
fitted to them, and the learning-rate explorer's picture (``descent_figure``, ``update_descent_figure``)."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from ..reference.sgd import f as quadratic


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
    return quadratic(t, [float(v) for v in params])


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
