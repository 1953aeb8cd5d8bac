"""handwritten.widgets.kernels, lesson 04's kernel playground, headless: set a control's value, then read what
is drawn (the digit, the kernel, corr2d's output) back from the picture's artists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwritten import widgets
from handwritten.data import load_mnist
from handwritten.reference import convolution


@pytest.fixture(scope="module")
def digits():
    return load_mnist("sample", quiet=True).test_images[:5]


def drawn(playground) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input, kernel and output images of the playground's picture, as drawn."""
    assert bytes(playground.image.value).startswith(b"\x89PNG")
    return tuple(np.asarray(ax.images[0].get_array()) for ax in playground._fig.axes[:3])


def preset(name: str) -> torch.Tensor:
    return torch.tensor(widgets.KERNELS[name], dtype=torch.float32)


def test_kernel_playground_draws_the_digit_the_kernel_and_its_output(digits):
    playground = widgets.KernelPlayground(digits)
    digit = digits[0].double() / 255
    image, kernel, output = drawn(playground)
    np.testing.assert_allclose(image, digit.numpy(), atol=1e-6)
    np.testing.assert_array_equal(kernel, preset("vertical edges [1, -1]").numpy())
    expected = F.conv2d(digit[None, None], preset("vertical edges [1, -1]").double()[None, None])[0, 0]
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    m = float(expected.abs().max())
    assert playground._fig.axes[2].images[0].get_clim() == pytest.approx((-m, m), rel=1e-5)
    assert playground.status.value == (f"output (26, 26), min {float(expected.min()):.2f}, "
                                       f"max {float(expected.max()):.2f}")


def test_a_preset_redraws_kernel_and_output(digits):
    playground = widgets.KernelPlayground(digits)
    first = bytes(playground.image.value)
    playground.preset.value = "Sobel x"
    assert torch.equal(playground.kernel, preset("Sobel x"))
    assert bytes(playground.image.value) != first
    _, kernel, output = drawn(playground)
    np.testing.assert_array_equal(kernel, preset("Sobel x").numpy())
    expected = F.conv2d(digits[0].float()[None, None] / 255, preset("Sobel x")[None, None])[0, 0]
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    texts = [text.get_text() for text in playground._fig.axes[1].texts]
    assert texts == ["1", "0", "-1", "2", "0", "-2", "1", "0", "-1"]


def test_editing_a_cell_makes_the_kernel_custom(digits):
    playground = widgets.KernelPlayground(digits, kernel="identity")
    before = bytes(playground.image.value)
    playground.cells[0].value = 2.0
    assert playground.preset.value == "(custom)"
    assert float(playground.kernel[0, 0]) == 2.0
    assert bytes(playground.image.value) != before
    _, kernel, _ = drawn(playground)
    assert kernel[0, 0] == 2.0 and kernel[1, 1] == 1.0


def test_changing_the_digit_redraws(digits):
    playground = widgets.KernelPlayground(digits)
    before, output = bytes(playground.image.value), playground.output.clone()
    playground.index.value = 3
    assert bytes(playground.image.value) != before and not torch.equal(playground.output, output)
    image, _, drawn_output = drawn(playground)
    np.testing.assert_allclose(image, digits[3].double().numpy() / 255, atol=1e-6)
    np.testing.assert_allclose(drawn_output, playground.output.double().numpy())


def test_the_course_corr2d_by_default_the_students_when_given(digits):
    assert widgets.KernelPlayground(digits).corr2d is convolution.corr2d

    def corr2d(X, K):
        return torch.full((X.shape[0] - 2, X.shape[1] - 2), 7.0)

    _, _, output = drawn(widgets.KernelPlayground(digits, corr2d=corr2d))
    assert (output == 7.0).all()


def test_uses_the_students_corr2d_and_survives_it_raising(digits):
    calls = []

    def corr2d(X, K):
        calls.append(X.shape)
        raise NotImplementedError("not yet")

    playground = widgets.KernelPlayground(digits, corr2d=corr2d)
    assert calls and playground.status.value == "corr2d raised NotImplementedError: not yet"
    image, _, output = drawn(playground)
    assert output.shape == (26, 26) and not output.any()  # an empty output, the digit still shown
    np.testing.assert_allclose(image, digits[0].double().numpy() / 255, atol=1e-6)
