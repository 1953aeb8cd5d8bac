"""handwritten.plots.pixels, lesson 01's pixel table: the shading drawn, and its scale. (The numbers written in
and the row and column labels are tested with lesson 01's checks, in tests/checks/test_pixels.py.)"""

from __future__ import annotations

import numpy as np
import torch

from handwritten import plots


def test_pixel_table_shades_the_pixels_from_white_to_black():
    pixels = torch.tensor([[0, 128, 255], [10, 200, 30]], dtype=torch.uint8)
    image = plots.pixel_table(pixels).axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), pixels.double().numpy())
    assert image.get_cmap().name == "Greys" and image.get_clim() == (0, 255)


def test_pixel_table_scale_of_a_float_image_runs_to_its_largest_value_or_vmax():
    pixels = torch.tensor([[0.0, 0.25], [0.5, 0.75]])
    assert plots.pixel_table(pixels).axes[0].images[0].get_clim() == (0, 0.75)
    ax = plots.pixel_table(pixels, vmax=1.0).axes[0]
    assert ax.images[0].get_clim() == (0, 1.0)
    assert [text.get_color() for text in ax.texts] == ["black", "black", "black", "white"]  # > half of vmax
    assert ax.get_title() == ""


def test_pixel_table_cells_set_the_figure_size():
    small = plots.pixel_table(torch.zeros(2, 4), cell=0.2).get_size_inches()
    large = plots.pixel_table(torch.zeros(2, 4), "a title", cell=0.5).get_size_inches()
    assert tuple(small) == (0.2 * 4 + 0.7, 0.2 * 2 + 0.45)
    assert tuple(large) == (0.5 * 4 + 0.7, 0.5 * 2 + 0.7)
