"""handwritten.plots.kernels, the kernel playground's picture (lesson 04): the input, the kernel with its values
written in, and the output, each read back from its image."""

from __future__ import annotations

import numpy as np
import torch

from handwritten import plots


def test_kernel_figure_draws_input_kernel_and_output_on_symmetric_scales():
    image = torch.rand(6, 6)
    kernel = torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0], [0.0, 0.0, 1.0]])
    output = torch.tensor([[-1.0, 4.0], [2.0, 0.0]])
    fig = plots.kernel_figure(image, kernel, output)
    inputs, kernels, outputs = fig.axes[:3]
    np.testing.assert_array_equal(inputs.images[0].get_array(), image.double().numpy())
    np.testing.assert_array_equal(kernels.images[0].get_array(), kernel.double().numpy())
    np.testing.assert_array_equal(outputs.images[0].get_array(), output.numpy())
    assert kernels.images[0].get_clim() == (-2.0, 2.0) and outputs.images[0].get_clim() == (-4.0, 4.0)
    assert [text.get_text() for text in kernels.texts] == ["0", "1", "-2", "0.5", "0", "0", "0", "0", "1"]
    assert [text.get_color() for text in kernels.texts][:3] == ["black", "black", "white"]  # white where |v| > 0.6 * 2
    assert [ax.get_title() for ax in fig.axes[:3]] == ["input", "kernel", "output = corr2d(input, kernel)"]


def test_update_kernel_figure_replaces_the_pictures_and_the_numbers():
    fig = plots.kernel_figure(torch.zeros(5, 5), torch.zeros(3, 3), torch.zeros(3, 3))
    kernels, outputs = fig.axes[1:3]
    assert [text.get_text() for text in kernels.texts] == ["0"] * 9
    assert kernels.images[0].get_clim() == (-1.0, 1.0)  # all zeros: a scale of +-1, not 0 to 0
    kernel, output = torch.eye(3) * 3, torch.full((3, 3), -0.5)
    plots.update_kernel_figure(fig, torch.ones(5, 5), kernel, output)
    assert [text.get_text() for text in kernels.texts] == ["3", "0", "0", "0", "3", "0", "0", "0", "3"]
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), np.ones((5, 5)))
    np.testing.assert_array_equal(kernels.images[0].get_array(), kernel.numpy())
    np.testing.assert_array_equal(outputs.images[0].get_array(), output.numpy())
    assert kernels.images[0].get_clim() == (-3.0, 3.0) and outputs.images[0].get_clim() == (-0.5, 0.5)
