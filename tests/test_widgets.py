"""Widgets and plots, headless: set a control's value, watch the rendered PNG change."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from handwritten import plots, widgets
from handwritten.data import load_mnist


@pytest.fixture(scope="module")
def digits():
    return load_mnist("sample", quiet=True).test_images[:5]


def test_kernel_playground_redraws_when_the_kernel_changes(digits):
    playground = widgets.KernelPlayground(digits)
    first = bytes(playground.image.value)
    assert first.startswith(b"\x89PNG")
    assert torch.equal(playground.kernel, torch.tensor(widgets.KERNELS["vertical edges [1, -1]"], dtype=torch.float32))
    playground.preset.value = "Sobel x"
    assert torch.equal(playground.kernel, torch.tensor(widgets.KERNELS["Sobel x"], dtype=torch.float32))
    assert bytes(playground.image.value) != first
    expected = torch.nn.functional.conv2d(digits[0].float()[None, None] / 255,
                                          playground.kernel[None, None])[0, 0]
    assert torch.allclose(playground.output, expected, atol=1e-5)


def test_editing_a_cell_makes_the_kernel_custom(digits):
    playground = widgets.KernelPlayground(digits, kernel="identity")
    before = bytes(playground.image.value)
    playground.cells[0].value = 2.0
    assert playground.preset.value == "(custom)"
    assert float(playground.kernel[0, 0]) == 2.0
    assert bytes(playground.image.value) != before


def test_changing_the_digit_redraws(digits):
    playground = widgets.KernelPlayground(digits)
    before, output = bytes(playground.image.value), playground.output.clone()
    playground.index.value = 3
    assert bytes(playground.image.value) != before and not torch.equal(playground.output, output)


def test_uses_the_students_corr2d_and_survives_it_raising(digits):
    calls = []

    def corr2d(X, K):
        calls.append(X.shape)
        raise NotImplementedError()

    playground = widgets.KernelPlayground(digits, corr2d=corr2d)
    assert calls and "NotImplementedError" in playground.status.value
    assert bytes(playground.image.value).startswith(b"\x89PNG")


def test_not_drawn_while_grading(monkeypatch, capsys, digits):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert widgets.make_kernel_playground(digits) is None
    assert "not drawn while the notebook is being graded" in capsys.readouterr().out
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert isinstance(widgets.make_kernel_playground(digits), widgets.KernelPlayground)


def test_plots_return_figures(digits):
    assert isinstance(plots.heatmap(torch.randn(3, 4), "x"), Figure)
    assert isinstance(plots.image_grid(digits, titles=list("abcde")), Figure)
    assert isinstance(plots.loss_curves({"a": [3, 2, 1]}), Figure)
    assert isinstance(plots.timings({"a": {"slow": 1e-3, "fast": 1e-5}, "b": {"x": 1e-4}}), Figure)


def test_heatmap_limits_are_symmetric_around_zero():
    fig = plots.heatmap(torch.tensor([[-1.0, 3.0]]))
    low, high = fig.axes[0].images[0].get_clim()
    assert low == -high == -3.0


# ---------------------------------------------------------------- lesson 02: the learning-rate explorer


@pytest.fixture(scope="module")
def coaster():
    """Lesson 02's roller coaster: noisy speeds over 20 seconds, and a start that is far off."""
    time = torch.arange(0, 20).float()
    speed = torch.randn(20, generator=torch.Generator().manual_seed(42)) * 3 + 0.75 * (time - 9.5) ** 2 + 1
    return time, speed, torch.tensor([-0.49, -0.60, -0.56])


def test_learning_rate_explorer_redraws_when_the_slider_moves(coaster):
    explorer = widgets.LearningRateExplorer(*coaster, lr=1e-5, steps=30)
    first = bytes(explorer.image.value)
    assert first.startswith(b"\x89PNG") and len(explorer.losses) == 30
    explorer.lr.value = 1e-6
    assert explorer.lr.value == pytest.approx(1e-6)
    assert bytes(explorer.image.value) != first
    before = bytes(explorer.image.value)
    explorer.steps.value = 10
    assert len(explorer.losses) == 10 and bytes(explorer.image.value) != before


def test_small_good_and_huge_learning_rates(coaster):
    explorer = widgets.LearningRateExplorer(*coaster, steps=30)
    explorer.lr.value = 1e-6        # too small: falls, slowly
    small = list(explorer.losses)
    explorer.lr.value = 1e-5        # about right: falls fast, to far below where the small one gets
    good = list(explorer.losses)
    explorer.lr.value = 1e-3        # far too large: blows up within a few steps
    huge, diverged_at = list(explorer.losses), explorer.diverged_at
    assert all(b < a for a, b in zip(small, small[1:])) and small[-1] > 0.05 * small[0]
    assert all(b <= a for a, b in zip(good, good[1:])) and good[-1] < 0.1 * good[0]
    assert good[-1] < small[-1] and good[4] < 0.5 * small[4]
    assert diverged_at is not None and diverged_at <= 10 and len(huge) < diverged_at
    assert all(b > a for a, b in zip(huge, huge[1:]))
    assert "diverging" in explorer.status.value
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert bool(torch.isfinite(explorer.params).all())  # the last parabola before the blow-up


def test_just_past_the_edge_is_diverging_without_blowing_up(coaster):
    explorer = widgets.LearningRateExplorer(*coaster, lr=4e-5, steps=30)  # 2 / lambda_max is 3.5e-5
    assert explorer.diverged_at is None and explorer.losses[-1] > explorer.losses[0]
    assert "diverging" in explorer.status.value


def test_quadratic_descent_stops_at_inf_and_nan(coaster):
    time, speed, start = coaster
    losses, params, diverged_at = widgets.quadratic_descent(time, speed, start, lr=1.0, steps=50, blowup=float("inf"))
    assert diverged_at is not None and all(torch.isfinite(torch.tensor(losses)))
    assert bool(torch.isfinite(params).all())


def test_learning_rate_explorer_uses_the_students_step_and_survives_it_raising(coaster):
    calls = []

    def apply_step(params, time, speed, lr):
        calls.append(lr)
        raise NotImplementedError()

    explorer = widgets.LearningRateExplorer(*coaster, apply_step=apply_step)
    assert calls and "NotImplementedError" in explorer.status.value
    assert bytes(explorer.image.value).startswith(b"\x89PNG")


def test_learning_rate_explorer_not_drawn_while_grading(monkeypatch, capsys, coaster):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert widgets.make_learning_rate_explorer(*coaster) is None
    assert "not drawn while the notebook is being graded" in capsys.readouterr().out
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert isinstance(widgets.make_learning_rate_explorer(*coaster), widgets.LearningRateExplorer)


def test_lesson_02_plots_return_figures(coaster):
    time, speed, start = coaster
    assert isinstance(plots.plot_function(torch.sigmoid, -4, 4, points=[(0.0, 0.5)]), Figure)
    assert isinstance(plots.speed_fits(time, speed), Figure)
    fig = plots.speed_fits(time, speed, {"a": speed + 1, "b": speed - 1}, ylim=(-100, 100))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylim() == (-100, 100)
    assert isinstance(plots.metric_curves({"linear": [0.5, 0.9, 0.95]}), Figure)
