"""handwritten.plots.common: the pictures every lesson draws, read back from their artists, and the two ways a
figure becomes PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from handwritten import plots


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_heatmap_draws_the_matrix_with_its_values_on_a_scale_symmetric_around_zero():
    t = torch.tensor([[-1.0, 3.0], [0.5, -1.7]])
    fig = plots.heatmap(t, "a kernel")
    ax = fig.axes[0]
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), t.numpy())
    assert image.get_clim() == (-3.0, 3.0) and image.get_cmap().name == "RdBu_r"
    assert [text.get_text() for text in ax.texts] == ["-1", "3", "0.50", "-1.70"]
    assert [text.get_color() for text in ax.texts] == ["black", "white", "black", "black"]  # white past 0.6 * 3
    assert ax.get_title() == "a kernel"
    assert len(fig.axes) == 2  # and its colour bar


def test_heatmap_in_grey_no_ticks_past_twelve_rows_no_numbers_past_a_hundred_cells():
    fig = plots.heatmap(torch.arange(13 * 2.0).reshape(13, 2), diverging=False)
    ax = fig.axes[0]
    assert ax.images[0].get_cmap().name == "gray" and ax.images[0].get_clim() == (0, 25)
    assert len(ax.texts) == 26  # 26 cells: written in (100 or fewer)
    assert list(ax.get_xticks()) == [0, 1] and list(ax.get_yticks()) == []
    big = plots.heatmap(torch.zeros(11, 11)).axes[0]
    assert len(big.texts) == 0 and big.images[0].get_clim() == (-1.0, 1.0)  # 121 cells; all zeros: +-1


def test_image_grid_shows_each_image_with_its_title_in_rows_of_ncols():
    images = torch.arange(5 * 4 * 4, dtype=torch.float32).reshape(5, 4, 4)
    fig = plots.image_grid(images, titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 5
    for ax, image, title in zip(fig.axes, images, "abcde"):
        np.testing.assert_array_equal(ax.images[0].get_array(), image.numpy())
        assert ax.get_title() == title and not ax.axison
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 3)}
    assert [ax.get_title() for ax in plots.image_grid(images[:2]).axes] == ["", ""]


def test_loss_curves_plot_each_loss_against_its_step_on_a_log_scale():
    fig = plots.loss_curves({"small lr": [3, 2, 1], "large lr": [1, 10]}, title="losses")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["small lr", "large lr"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3] and list(ax.lines[0].get_ydata()) == [3.0, 2.0, 1.0]
    assert list(ax.lines[1].get_xdata()) == [1, 2] and list(ax.lines[1].get_ydata()) == [1.0, 10.0]
    assert ax.get_yscale() == "log" and ax.get_title() == "losses"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["small lr", "large lr"]
    assert plots.loss_curves({"a": [1, 2]}, log=False).axes[0].get_yscale() == "linear"


def test_metric_curves_start_at_first_and_name_their_lines_only_when_there_are_names():
    fig = plots.metric_curves({"train": [0.5, 0.9], "valid": [0.4, 0.8]}, first=0, ylabel="acc", title="t")
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0, 1] and list(ax.lines[1].get_ydata()) == [0.4, 0.8]
    assert ax.get_ylabel() == "acc" and ax.get_xlabel() == "epoch" and ax.get_title() == "t"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["train", "valid"]
    assert plots.metric_curves({"": [0.1, 0.2, 0.3]}).axes[0].get_legend() is None


def test_timings_draw_one_bar_per_time_labelled_with_its_ratio_to_the_fastest():
    fig = plots.timings({"loops": {"slow": 1e-3, "fast": 1e-5}, "vectorised": {"x": 1e-4}}, title="speed")
    loops, vectorised = fig.axes
    assert [bar.get_width() for bar in loops.patches] == [1e-3, 1e-5]
    assert [label.get_text() for label in loops.get_yticklabels()] == ["slow", "fast"]
    assert [text.get_text() for text in loops.texts] == ["  1,000 µs (100×)", "  10 µs (1×)"]
    assert [bar.get_width() for bar in vectorised.patches] == [1e-4]
    assert loops.get_xscale() == "log" and loops.get_xlim() == pytest.approx((1e-5 / 2, 1e-3 * 40))
    assert loops.get_title(loc="left") == "loops" and fig.get_suptitle() == "speed"
    assert vectorised.get_xlabel() == "seconds per call (log scale)"


def test_to_png_renders_at_the_dpi_asked_for():
    fig = Figure(figsize=(2, 1))
    assert pixels(plots.to_png(fig, dpi=50)).shape == (50, 100, 3)
    assert pixels(plots.to_png(fig)).shape == (80, 160, 3)  # 80 dpi by default


def test_fast_png_draws_what_a_full_render_would_and_redraws_what_changed():
    digit = torch.zeros(28, 28)
    digit[5:20, 10:14] = 1
    probs = torch.softmax(torch.arange(10.0), 0)
    fig = plots.classifier_figure(torch.zeros(28, 28))
    blank = pixels(plots.fast_png(fig))
    plots.update_classifier_figure(fig, digit, 1 - digit, probs, winner=9, title="a one")
    fast = pixels(plots.fast_png(fig))
    fresh = plots.classifier_figure(torch.zeros(28, 28))
    plots.update_classifier_figure(fresh, digit, 1 - digit, probs, winner=9, title="a one")
    full = pixels(plots.to_png(fresh, dpi=72))
    assert fast.shape == full.shape == blank.shape
    differ = lambda a, b: (a != b).any(axis=-1).mean()  # noqa: E731 - the fraction of pixels that differ
    assert differ(fast, full) < 0.01  # the same picture, but for anti-aliasing at the edges of what was redrawn
    assert differ(fast, blank) > 0.05  # and the digits, the bars and the title are drawn
