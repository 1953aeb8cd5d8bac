"""handwritten.plots.inside_cnn, lesson 06's pictures: the kernels, their evolution, the feature maps, the
shifted digit, and the lesson's curves, read back from their artists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from handwritten import plots

RED, BLUE, GREY = to_rgba("tab:red"), to_rgba("tab:blue"), to_rgba("darkgrey")


def test_mosaic_lays_the_tiles_out_with_nan_between_them():
    tiles = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    out = plots.mosaic(tiles, gap=1)
    assert out.shape == (2 * 4 + 1, 3 * 5 + 2)
    np.testing.assert_array_equal(out[5:9, 12:17], tiles[1, 2].numpy())  # row 1, column 2
    assert np.isnan(out[4]).all() and np.isnan(out[:, 5]).all() and np.isnan(out[:, 11]).all()
    assert not np.isnan(plots.mosaic(tiles[:1, :1], gap=3)).any()  # one tile: no gap


def kernels(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, 1, 5, 5, generator=generator), torch.randn(8, 4, 5, 5, generator=generator)


def test_filter_figure_draws_each_layers_kernels_on_its_own_symmetric_scale():
    w1, w2 = kernels()
    fig = plots.filter_figure(w1, w2, title="trained")
    layer1, layer2 = fig.handwritten["layer1"], fig.handwritten["layer2"]
    np.testing.assert_array_equal(layer1.get_array().filled(np.nan), plots.mosaic(w1[:, 0][None]))
    conv2 = layer2.get_array().filled(np.nan)
    assert conv2.shape == (4 * 6 - 1, 8 * 6 - 1)  # a row per input channel, a column per output channel
    np.testing.assert_array_equal(conv2[6:11, 12:17], w2[2, 1].double().numpy())  # input 1 of kernel 2
    m1, m2 = float(w1.abs().max()), float(w2.abs().max())
    assert layer1.get_clim() == pytest.approx((-m1, m1)) and layer2.get_clim() == pytest.approx((-m2, m2))
    assert fig.handwritten["title"].get_text() == "trained"
    plots.update_filter_figure(fig, w1 * 0, w2, limits=(3.0, 4.0))
    assert np.nanmax(np.abs(layer1.get_array().filled(np.nan))) == 0
    assert layer1.get_clim() == (-3.0, 3.0) and layer2.get_clim() == (-4.0, 4.0)
    assert fig.handwritten["title"].get_text() == "trained"  # no new title: the old one stays


def test_evolution_figure_draws_the_error_curves_and_moves_its_marker():
    w1, w2 = kernels()
    record, steps = [(90.0, 80.0), (20.0, 25.0), (3.0, 4.0)], [0, 50, 100]
    fig = plots.evolution_figure(w1, w2, record, steps)
    curves = fig.axes[-1]
    training, validation, marker = curves.lines
    assert list(training.get_xdata()) == steps and list(training.get_ydata()) == [90.0, 20.0, 3.0]
    assert list(validation.get_ydata()) == [80.0, 25.0, 4.0]
    assert list(marker.get_xdata()) == [0, 0] and curves.get_ylim() == pytest.approx((0, 90 * 1.05))
    other1, other2 = kernels(1)
    plots.update_evolution_figure(fig, other1, other2, 50, title="snapshot 2", limits=(2.0, 2.0))
    assert list(marker.get_xdata()) == [50, 50] and fig.handwritten["title"].get_text() == "snapshot 2"
    layer1 = fig.handwritten["layer1"].get_array().filled(np.nan)
    np.testing.assert_array_equal(layer1, plots.mosaic(other1[:, 0][None]))
    assert fig.handwritten["layer2"].get_clim() == (-2.0, 2.0)
    assert plots.evolution_figure(w1, w2, [(1.0, 2.0)], [0]).axes[-1].get_ylim()[1] == 5.0  # at least 5%


def maps(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(4, 28, 28, generator=generator) * 3, torch.rand(8, 14, 14, generator=generator) * 7


def test_feature_map_figure_draws_the_digit_its_maps_and_its_probabilities():
    digit = torch.rand(28, 28)
    maps1, maps2 = maps()
    probs = torch.softmax(torch.arange(10.0).flip(0), 0)  # class 0 wins
    fig = plots.feature_map_figure(digit, maps1, maps2, probs)
    artists = fig.handwritten
    np.testing.assert_array_equal(artists["image"].get_array(), digit.double().numpy())
    layer1 = artists["layer1"].get_array().filled(np.nan)
    assert layer1.shape == (28, 4 * 30 - 2)  # one row of 4 maps, 2 pixels apart
    np.testing.assert_allclose(layer1[:, 30:58], maps1[1].double().numpy())
    layer2 = artists["layer2"].get_array().filled(np.nan)
    assert layer2.shape == (2 * 16 - 2, 4 * 16 - 2)  # two rows of 4
    np.testing.assert_allclose(layer2[16:30, 0:14], maps2[4].double().numpy())
    assert artists["layer1"].get_clim() == pytest.approx((0, float(maps1.max())))
    assert artists["layer2"].get_clim() == pytest.approx((0, float(maps2.max())))
    assert [bar.get_width() for bar in artists["bars"]] == pytest.approx(probs.tolist())
    assert [bar.get_facecolor() for bar in artists["bars"]] == [RED] + [BLUE] * 9
    plots.update_feature_map_figure(fig, digit, maps1, maps2, probs.flip(0), title="a nine")
    assert [bar.get_facecolor() for bar in artists["bars"]] == [BLUE] * 9 + [RED]
    assert artists["title"].get_text() == "a nine"


def test_shift_figure_draws_both_digits_both_probabilities_and_the_shifted_maps():
    digit = torch.rand(28, 28)
    maps1, maps2 = maps()
    before, after = torch.full((10,), 0.1), torch.softmax(torch.arange(10.0), 0)
    fig = plots.shift_figure(digit, digit.roll(2, 1), before, after, maps1, maps2)
    artists = fig.handwritten
    np.testing.assert_array_equal(artists["original"].get_array(), digit.double().numpy())
    np.testing.assert_array_equal(artists["shifted"].get_array(), digit.roll(2, 1).double().numpy())
    assert [bar.get_width() for bar in artists["before"]] == pytest.approx(before.tolist())
    assert [bar.get_width() for bar in artists["after"]] == pytest.approx(after.tolist())
    assert {bar.get_facecolor() for bar in artists["before"]} == {GREY}
    assert {bar.get_facecolor() for bar in artists["after"]} == {BLUE}
    assert artists["layer1"].get_clim() == pytest.approx((0, float(maps1.max())))
    plots.update_shift_figure(fig, digit, digit, after, before, maps1, maps2, limits=(10.0, 20.0), title="t")
    assert artists["layer1"].get_clim() == (0, 10.0) and artists["layer2"].get_clim() == (0, 20.0)
    assert [bar.get_width() for bar in artists["before"]] == pytest.approx(after.tolist())
    assert artists["title"].get_text() == "t"


def test_error_curves_put_each_record_at_its_batch():
    record = [(50.0, 60.0), (10.0, 12.0), (5.0, 8.0)]
    ax = plots.error_curves(record, every=20, title="run").axes[0]
    training, validation = ax.lines
    assert list(training.get_xdata()) == [0, 20, 40] and list(training.get_ydata()) == [50.0, 10.0, 5.0]
    assert list(validation.get_ydata()) == [60.0, 12.0, 8.0]
    assert ax.get_xlabel() == "batch" and ax.get_ylim()[0] == 0 and ax.get_title() == "run"
    assert list(plots.error_curves(record, steps=[0, 7, 9]).axes[0].lines[0].get_xdata()) == [0, 7, 9]
    plain = plots.error_curves(record).axes[0]
    assert list(plain.lines[0].get_xdata()) == [0, 1, 2] and plain.get_xlabel() == "record"


def test_accuracy_by_shift_draws_each_curve_in_the_order_of_the_shifts():
    ax = plots.accuracy_by_shift({"left": {4: 0.5, 0: 0.99, 2: 0.9}, "up": {0: 0.98}}, title="shifts").axes[0]
    left, up = ax.lines
    assert list(left.get_xdata()) == [0, 2, 4] and list(left.get_ydata()) == [0.99, 0.9, 0.5]
    assert list(up.get_xdata()) == [0] and left.get_label() == "left"
    assert ax.get_ylim() == (0, 1.02) and ax.get_title() == "shifts"
