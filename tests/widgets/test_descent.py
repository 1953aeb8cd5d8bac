"""handwritten.widgets.descent, lesson 02's learning-rate explorer, headless: move a slider, then read the losses
and the parabola back from the picture's artists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handwritten import widgets
from handwritten.reference import sgd


@pytest.fixture(scope="module")
def coaster():
    """Lesson 02's roller coaster: noisy speeds over 20 seconds, and a start that is far off."""
    time = torch.arange(0, 20).float()
    speed = torch.randn(20, generator=torch.Generator().manual_seed(42)) * 3 + 0.75 * (time - 9.5) ** 2 + 1
    return time, speed, torch.tensor([-0.49, -0.60, -0.56])


def drawn_losses(explorer) -> list[float]:
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    return list(explorer._fig.axes[0].lines[0].get_ydata())


def test_learning_rate_explorer_draws_its_losses_and_its_last_parabola(coaster):
    time, speed, start = coaster
    explorer = widgets.LearningRateExplorer(time, speed, start, lr=1e-5, steps=30)
    assert drawn_losses(explorer) == explorer.losses and len(explorer.losses) == 30
    loss_ax, fit_ax = explorer._fig.axes
    assert loss_ax.get_title().startswith("lr = 1.0e-05: loss ")
    t = torch.linspace(0, 19, 100, dtype=torch.float64)
    np.testing.assert_allclose(fit_ax.lines[0].get_ydata(), sgd.f(t, start.tolist()).numpy(), rtol=1e-6)
    np.testing.assert_allclose(fit_ax.lines[1].get_ydata(), sgd.f(t, explorer.params.tolist()).numpy(), rtol=1e-6)
    assert explorer.status.value == f"30 steps: loss {explorer.losses[0]:.4g} → {explorer.losses[-1]:.4g}"


def test_learning_rate_explorer_redraws_when_the_slider_moves(coaster):
    explorer = widgets.LearningRateExplorer(*coaster, lr=1e-5, steps=30)
    first = bytes(explorer.image.value)
    explorer.lr.value = 1e-6
    assert explorer.lr.value == pytest.approx(1e-6)
    assert bytes(explorer.image.value) != first
    assert explorer._fig.axes[0].get_title().startswith("lr = 1.0e-06")
    before = bytes(explorer.image.value)
    explorer.steps.value = 10
    assert len(explorer.losses) == 10 and bytes(explorer.image.value) != before
    assert drawn_losses(explorer) == explorer.losses


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
    assert bool(torch.isfinite(explorer.params).all())  # the last parabola before the blow-up
    cross = explorer._fig.axes[0].lines[1]
    assert list(cross.get_xdata()) == [diverged_at] and drawn_losses(explorer) == huge


def test_just_past_the_edge_is_diverging_without_blowing_up(coaster):
    explorer = widgets.LearningRateExplorer(*coaster, lr=4e-5, steps=30)  # 2 / lambda_max is 3.5e-5
    assert explorer.diverged_at is None and explorer.losses[-1] > explorer.losses[0]
    assert "diverging" in explorer.status.value
    assert len(explorer._fig.axes[0].lines[1].get_xdata()) == 0  # no cross


def test_quadratic_descent_takes_the_course_steps_and_stops_at_inf_and_nan(coaster):
    time, speed, start = coaster
    losses, params, diverged_at = widgets.quadratic_descent(time, speed, start, lr=1e-5, steps=3)
    expected, manual = [], start.clone().requires_grad_(True)
    for _ in range(3):
        expected.append(sgd.apply_step(manual, time, speed, 1e-5))
    assert losses == expected and torch.equal(params, manual.detach()) and diverged_at is None
    losses, params, diverged_at = widgets.quadratic_descent(time, speed, start, lr=1.0, steps=50, blowup=float("inf"))
    assert diverged_at is not None and all(torch.isfinite(torch.tensor(losses)))
    assert bool(torch.isfinite(params).all())


def test_learning_rate_explorer_uses_the_students_step_and_survives_it_raising(coaster):
    calls = []

    def apply_step(params, time, speed, lr):
        calls.append(lr)
        raise NotImplementedError("not yet")

    explorer = widgets.LearningRateExplorer(*coaster, apply_step=apply_step)
    assert calls and explorer.status.value == "apply_step raised NotImplementedError: not yet"
    assert drawn_losses(explorer) == []
