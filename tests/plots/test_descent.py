"""handwritten.plots.descent, lesson 02's pictures: a function and its points, the roller coaster's speeds and
their fits, and the learning-rate explorer's picture, read back from their artists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from handwritten import plots


@pytest.fixture(scope="module")
def coaster():
    time = torch.arange(0, 20).float()
    speed = torch.randn(20, generator=torch.Generator().manual_seed(42)) * 3 + 0.75 * (time - 9.5) ** 2 + 1
    return time, speed


def test_plot_function_draws_the_function_and_marks_the_points():
    fig = plots.plot_function(torch.sigmoid, -4, 4, title="sigmoid", ylabel="y", points=[(0.0, 0.5)])
    ax = fig.axes[0]
    x = torch.linspace(-4, 4, 200)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), x.numpy())
    np.testing.assert_allclose(ax.lines[0].get_ydata(), torch.sigmoid(x).double().numpy())
    (point,) = ax.collections
    np.testing.assert_array_equal(point.get_offsets(), [[0.0, 0.5]])
    assert tuple(point.get_facecolor()[0]) == to_rgba("red")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("sigmoid", "x", "y")


def test_speed_fits_draw_the_measurements_and_each_fit_in_its_panel(coaster):
    time, speed = coaster
    (alone,) = plots.speed_fits(time, speed).axes
    np.testing.assert_allclose(alone.collections[0].get_offsets(), torch.stack([time, speed], 1).numpy(), rtol=1e-6)
    lo, hi = float(speed.min()), float(speed.max())
    margin = 0.25 * (hi - lo) + 1.0
    assert alone.get_ylim() == pytest.approx((lo - margin, hi + margin))  # room around the measurements

    fig = plots.speed_fits(time, speed, {"a guess": speed + 1, "another": speed - 1}, ncols=1, ylim=(-100, 100))
    assert [ax.get_title() for ax in fig.axes] == ["a guess", "another"]
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 1)}
    measured, predicted = fig.axes[1].collections
    np.testing.assert_allclose(predicted.get_offsets()[:, 1], (speed - 1).numpy(), rtol=1e-6)
    assert tuple(predicted.get_facecolor()[0]) == to_rgba("red")
    assert all(ax.get_ylim() == (-100, 100) for ax in fig.axes)


def test_descent_figure_draws_the_losses_and_the_start_and_final_parabolas(coaster):
    time, speed = coaster
    fig = plots.descent_figure(time, speed)
    start, params = torch.tensor([-0.49, -0.6, -0.56]), torch.tensor([0.5, -9.0, 40.0])
    plots.update_descent_figure(fig, time, [4.0, 2.0, 1.0], start, params, lr=1e-5)
    loss_ax, fit_ax = fig.axes
    line, cross = loss_ax.lines
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [4.0, 2.0, 1.0]
    assert len(cross.get_xdata()) == 0
    assert loss_ax.get_ylim() == pytest.approx((0.5, 8.0)) and loss_ax.get_xlim() == (0.5, 3.5)
    assert loss_ax.get_title() == "lr = 1.0e-05: loss 4 → 1" and loss_ax.title.get_color() == "black"
    t = torch.linspace(0, 19, 100, dtype=torch.float64)
    for line, (a, b, c) in zip(fit_ax.lines, (start.tolist(), params.tolist())):
        np.testing.assert_allclose(line.get_xdata(), t.numpy())
        np.testing.assert_allclose(line.get_ydata(), (a * t ** 2 + b * t + c).numpy(), rtol=1e-6)
    assert fit_ax.get_title() == "a = 0.5, b = -9, c = 40"
    np.testing.assert_allclose(fit_ax.collections[0].get_offsets(), torch.stack([time, speed], 1).numpy(), rtol=1e-6)


def test_a_blow_up_is_a_red_cross_above_the_losses_and_a_red_title(coaster):
    time, speed = coaster
    fig = plots.descent_figure(time, speed)
    start = torch.zeros(3)
    plots.update_descent_figure(fig, time, [1.0, 10.0], start, start, lr=1e-3, diverged_at=3)
    loss_ax = fig.axes[0]
    cross = loss_ax.lines[1]
    assert list(cross.get_xdata()) == [3] and list(cross.get_ydata()) == [100.0]
    assert loss_ax.get_ylim() == pytest.approx((0.5, 300.0)) and loss_ax.get_xlim() == (0.5, 3.5)
    assert loss_ax.get_title() == "lr = 1.0e-03: diverged, the loss blew up at step 3"
    assert loss_ax.title.get_color() == "red"

    plots.update_descent_figure(fig, time, [1.0, 2.0], start, start, lr=4e-5)  # growing, not (yet) blown up
    assert len(cross.get_xdata()) == 0
    assert loss_ax.get_title() == "lr = 4.0e-05: diverging, loss 1 → 2" and loss_ax.title.get_color() == "red"
    plots.update_descent_figure(fig, time, [], start, start, lr=4e-5)  # no step taken
    assert loss_ax.get_title() == "lr = 4.0e-05" and len(loss_ax.lines[0].get_xdata()) == 0
