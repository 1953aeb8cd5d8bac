"""handwritten.widgets.inside_cnn, lesson 06's four widgets, headless: set a control's value, then read what is
drawn (kernels, feature maps, probabilities, the shifted digit) back from the picture's artists; bad input gives
a message in the widget, not a traceback; and the lesson notebook, executed with nbclient, stores their state."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from nbclient import NotebookClient

from handwritten import models, plots, widgets
from handwritten.data import load_mnist
from handwritten.reference import inside_cnn

from conftest import ROOT

LESSON = "06-inside-a-cnn"


@pytest.fixture(scope="module")
def net():
    return models.load_pretrained()


@pytest.fixture(scope="module")
def digits():
    mnist = load_mnist("sample", quiet=True)
    return mnist.test_images[:20], mnist.test_labels[:20]


def png(widget) -> bytes:
    data = bytes(widget.image.value)
    assert data.startswith(b"\x89PNG"), "the widget should show a PNG"
    return data


def drawn(widget, name: str) -> np.ndarray:
    """The array an image of the widget's picture shows (NaN in the gaps of a mosaic)."""
    return np.ma.filled(widget._fig.handwritten[name].get_array(), np.nan)


def widths(bars) -> list[float]:
    return [bar.get_width() for bar in bars]


def features(net, image: torch.Tensor):
    with torch.no_grad():
        maps1, maps2 = net.retrieve_features(image[None, None])
        return maps1[0], maps2[0], torch.softmax(net(image[None, None]).double(), 1)[0]


# ---------------------------------------------------------------- the widgets draw what they are given


def test_filter_viewer_draws_the_kernels_of_the_network_picked(net):
    untrained = models.ConvNet()
    viewer = widgets.FilterViewer({"pretrained": net, "untrained": untrained})
    before = png(viewer)
    np.testing.assert_allclose(drawn(viewer, "layer1"), plots.mosaic(net.conv1.weight.detach()[:, 0][None]))
    np.testing.assert_allclose(drawn(viewer, "layer2"), plots.mosaic(net.conv2.weight.detach().transpose(0, 1)))
    assert "conv1: 4 kernels" in viewer.status.value
    viewer.source.value = "untrained"
    assert png(viewer) != before
    np.testing.assert_allclose(drawn(viewer, "layer1"), plots.mosaic(untrained.conv1.weight.detach()[:, 0][None]))
    assert viewer._fig.handwritten["title"].get_text() == "untrained: the kernels of both layers"


def test_filter_viewer_limits_are_symmetric_for_each_layer(net):
    viewer = widgets.FilterViewer(net)
    layer1, layer2 = viewer._fig.handwritten["layer1"], viewer._fig.handwritten["layer2"]
    m1, m2 = float(net.conv1.weight.detach().abs().max()), float(net.conv2.weight.detach().abs().max())
    assert layer1.get_clim() == pytest.approx((-m1, m1))
    assert layer2.get_clim() == pytest.approx((-m2, m2))
    assert len(viewer._fig.axes) == 4  # two kernel mosaics, two colour bars


def test_filter_evolution_moves_through_training_on_one_scale_per_layer():
    history = models.pretrained_history()
    evolution = widgets.make_filter_evolution()
    first = png(evolution)
    assert evolution.step.max == len(history["snapshots"]) - 1
    evolution.step.value = 5
    assert png(evolution) != first
    assert "snapshot 6/" in evolution.status.value and "validation error" in evolution.status.value
    conv1 = history["snapshots"][5][0].float()
    np.testing.assert_allclose(drawn(evolution, "layer1"), plots.mosaic(conv1[:, 0][None]))
    m1 = max(float(s[0].float().abs().max()) for s in history["snapshots"])  # the largest of the whole run
    assert evolution._fig.handwritten["layer1"].get_clim() == pytest.approx((-m1, m1))
    assert list(evolution._fig.handwritten["marker"].get_xdata()) == [history["steps"][5]] * 2


def test_filter_evolution_of_a_run_in_the_lessons_format():
    snaps = [[torch.randn(4, 1, 5, 5) * (k + 1), torch.zeros(4), torch.randn(8, 4, 5, 5), torch.zeros(8)]
             for k in range(3)]
    evolution = widgets.FilterEvolution(snaps, [(90.0, 80.0), (50.0, 40.0), (10.0, 8.0)], every=20)
    first = png(evolution)
    evolution.step.value = 2
    assert png(evolution) != first
    assert "batch 40" in evolution.status.value
    np.testing.assert_allclose(drawn(evolution, "layer1"), plots.mosaic(snaps[2][0][:, 0][None]))
    assert evolution._fig.handwritten["title"].get_text() == "snapshot 3 of 3, after batch 40"


def test_feature_map_explorer_draws_the_digit_its_maps_and_the_probabilities(net, digits):
    explorer = widgets.FeatureMapExplorer(net, *digits)
    digit = digits[0][0].float() / 255
    maps1, maps2, probs = features(net, digit)
    np.testing.assert_allclose(drawn(explorer, "image"), digit.double().numpy())
    np.testing.assert_allclose(drawn(explorer, "layer1")[:, 30:58], maps1[1].double().numpy(), atol=1e-6)
    np.testing.assert_allclose(drawn(explorer, "layer2")[16:30, 16:30], maps2[5].double().numpy(), atol=1e-6)
    bars = explorer._fig.handwritten["bars"]
    assert widths(bars) == pytest.approx(probs.tolist(), abs=1e-6)
    winner = int(probs.argmax())
    assert winner == int(digits[1][0]) and bars[winner].get_facecolor() == to_rgba("tab:red")
    assert explorer._fig.handwritten["title"].get_text() == (f"image 0 · label {winner} · prediction {winner} "
                                                             f"({100 * float(probs[winner]):.1f}%)")


def test_feature_map_explorer_follows_the_slider_and_the_box(net, digits):
    explorer = widgets.FeatureMapExplorer(net, *digits)
    first = png(explorer)
    assert "prediction" in explorer.status.value and "(4, 28, 28)" in explorer.status.value
    explorer.index.value = 3
    second = png(explorer)
    assert second != first and explorer.index_box.value == 3
    explorer.index_box.value = 7
    assert png(explorer) != second and explorer.index.value == 7
    assert explorer.status.value.startswith("image 7")
    np.testing.assert_allclose(drawn(explorer, "image"), digits[0][7].double().numpy() / 255, atol=1e-6)


def test_feature_maps_share_one_scale_per_layer(net, digits):
    explorer = widgets.FeatureMapExplorer(net, *digits)
    maps1, maps2, _ = features(net, digits[0][0].float() / 255)
    low, high = explorer._fig.handwritten["layer1"].get_clim()
    assert low == 0 and high == pytest.approx(float(maps1.max()), rel=1e-5)
    assert explorer._fig.handwritten["layer2"].get_clim()[1] == pytest.approx(float(maps2.max()), rel=1e-5)


def test_shift_explorer_draws_the_shifted_digit_its_maps_on_the_originals_scale_and_both_answers(net, digits):
    explorer = widgets.ShiftExplorer(net, *digits, pixels=3, direction="left")
    digit = digits[0][0].float() / 255
    shifted = inside_cnn.shift_image(digit, 3, "left")
    maps1, maps2, before = features(net, digit)
    shifted1, shifted2, after = features(net, shifted)
    np.testing.assert_allclose(drawn(explorer, "original"), digit.double().numpy())
    np.testing.assert_allclose(drawn(explorer, "shifted"), shifted.double().numpy())
    np.testing.assert_allclose(drawn(explorer, "layer1")[:, :28], shifted1[0].double().numpy(), atol=1e-6)
    assert explorer._fig.handwritten["layer1"].get_clim() == pytest.approx((0, float(maps1.max())), rel=1e-5)
    assert float(shifted2.max()) < 0.9 * float(maps2.max())  # so the scale is the original's, not the shifted's:
    assert explorer._fig.handwritten["layer2"].get_clim() == pytest.approx((0, float(maps2.max())), rel=1e-5)
    assert widths(explorer._fig.handwritten["before"]) == pytest.approx(before.tolist(), abs=1e-6)
    assert widths(explorer._fig.handwritten["after"]) == pytest.approx(after.tolist(), abs=1e-6)
    assert "shifted 3 px left" in explorer._fig.handwritten["title"].get_text()


def test_shift_explorer_redraws_for_amount_direction_and_image(net, digits):
    explorer = widgets.ShiftExplorer(net, *digits, pixels=3)
    seen = {png(explorer)}
    for control, value in ((explorer.pixels, 5), (explorer.direction, "up"), (explorer.index, 4)):
        control.value = value
        seen.add(png(explorer))
    assert len(seen) == 4
    assert "5 px up" in explorer._fig.handwritten["title"].get_text()
    expected = inside_cnn.shift_image(digits[0][4].float() / 255, 5, "up")
    np.testing.assert_allclose(drawn(explorer, "shifted"), expected.double().numpy())


def test_shift_explorer_measures_equivariance(net, digits):
    explorer = widgets.ShiftExplorer(net, *digits, pixels=2)
    assert "layer 1's maps differ from the original's moved 2 px by 0%" in explorer.status.value
    assert "(a shift of 1 px there) by 0%" in explorer.status.value
    explorer.pixels.value = 3
    assert "1.5, so neither 1 nor 2" in explorer.status.value


def test_the_shifts_are_the_course_shift_image():
    assert widgets.shift_image is inside_cnn.shift_image and widgets.SHIFT_DIRECTIONS == inside_cnn.SHIFT_DIRECTIONS


# ---------------------------------------------------------------- bad input: a message in the widget


class NoFeatures(torch.nn.Module):
    """Scores for 10 classes, but no retrieve_features and no convolutional layers."""

    def forward(self, x):
        return torch.zeros(len(x), 10)


class Unfinished(models.ConvNet):
    def retrieve_features(self, x):
        raise NotImplementedError()


def test_index_out_of_range_is_reported_not_raised(net, digits):
    explorer = widgets.FeatureMapExplorer(net, *digits)
    before = png(explorer)
    explorer.index_box.value = 500
    assert "there is no image 500: choose an index from 0 to 19" in explorer.status.value
    assert png(explorer) == before and explorer.index.value == 0
    explorer.index_box.value = -1
    assert "there is no image -1" in explorer.status.value
    shifter = widgets.ShiftExplorer(net, *digits)
    shifter.index_box.value = 20
    assert "there is no image 20" in shifter.status.value


@pytest.mark.parametrize("cls", [widgets.FeatureMapExplorer, widgets.ShiftExplorer])
def test_a_model_without_retrieve_features_gets_a_message_and_a_blank_picture(cls, digits):
    explorer = cls(NoFeatures(), *digits)
    assert "has no retrieve_features(x) method" in explorer.status.value
    png(explorer)
    assert np.nansum(drawn(explorer, "layer1")) == 0  # no maps drawn
    explorer.index.value = 2  # and keeps working
    assert "has no retrieve_features(x) method" in explorer.status.value
    digit = drawn(explorer, "image" if cls is widgets.FeatureMapExplorer else "original")
    np.testing.assert_allclose(digit, digits[0][2].double().numpy() / 255, atol=1e-6)  # the digit is still drawn


@pytest.mark.parametrize("cls", [widgets.FeatureMapExplorer, widgets.ShiftExplorer])
def test_an_unfinished_retrieve_features_gets_a_message(cls, digits):
    assert "retrieve_features raised NotImplementedError" in cls(Unfinished(), *digits).status.value


def test_filter_viewer_without_conv_layers_or_networks():
    assert "has no conv1 and conv2 layers" in widgets.FilterViewer(NoFeatures()).status.value
    assert "no network to show" in widgets.FilterViewer({"your run": None}).status.value


def test_filter_evolution_without_snapshots_or_with_bad_ones():
    evolution = widgets.FilterEvolution([], [])
    assert "no snapshots to show yet" in evolution.status.value
    png(evolution)
    assert "each snapshot should be [conv1.weight" in widgets.FilterEvolution([[1, 2]]).status.value


def test_images_of_the_wrong_shape_are_explained(net, digits):
    with pytest.raises(widgets.WidgetProblem, match="expected a batch of images"):
        widgets.FeatureMapExplorer(net, torch.zeros(3, 3, 28, 28))
    single = widgets.FeatureMapExplorer(net, digits[0][0])  # one image is a batch of one
    assert single.index.max == 0 and "prediction" in single.status.value


# ---------------------------------------------------------------- the lesson's widgets, executed with nbclient


def test_lesson_widgets_render_and_their_state_is_stored(tmp_path):
    nb = nbformat.read(ROOT / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
             for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
             if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
    classes = {}
    for model_id in views:
        assert model_id in state, "a widget's view has no stored state"
        for css in state[model_id]["state"].get("_dom_classes", []):
            classes[css] = model_id
    for css in ("handwritten-filter-viewer", "handwritten-filter-evolution",
                "handwritten-feature-map-explorer", "handwritten-shift-explorer", "handwritten-digit-canvas"):
        assert css in classes, f"no {css} in the executed notebook"
        children = [ref.removeprefix("IPY_MODEL_") for ref in state[classes[css]]["state"]["children"]]
        images = [state[c] for c in children if state[c]["model_name"] == "ImageModel"]
        assert len(images) == 1 and images[0].get("buffers"), f"{css}: its picture was not stored"
