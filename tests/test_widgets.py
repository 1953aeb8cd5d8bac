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
