"""Lesson 06's pieces, headless: the reference ConvNet and its shipped weights, the four widgets
(set a control's value, watch the rendered PNG change; bad input gives a message in the widget,
not a traceback), and the lesson notebook executed with nbclient, its widgets' state stored."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
import torch
from matplotlib.figure import Figure
from nbclient import NotebookClient

from handwritten import models, plots, widgets
from handwritten.data import load_mnist

from conftest import ROOT

LESSON = "06-inside-a-cnn"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist("sample", quiet=True)


@pytest.fixture(scope="module")
def net():
    return models.load_pretrained()


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:20], mnist.test_labels[:20]


def png(widget) -> bytes:
    data = bytes(widget.image.value)
    assert data.startswith(b"\x89PNG"), "the widget should show a PNG"
    return data


# ---------------------------------------------------------------- the model and its weights


def test_pretrained_network_is_trained_and_in_eval_mode(net, mnist):
    assert isinstance(net, models.ConvNet) and not net.training
    x = mnist.test_images[1000:].float()[:, None] / 255
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == mnist.test_labels[1000:]).float().mean().item()
    assert accuracy > 0.95, accuracy  # 96.4% on the sample's held-out half when the weights were made


def test_weights_are_small_float16_package_data():
    assert models.WEIGHTS.is_file() and models.WEIGHTS.parent.name == "weights"
    assert models.WEIGHTS.stat().st_size < 800_000
    saved = torch.load(models.WEIGHTS, weights_only=True)
    assert all(t.dtype == torch.float16 for t in saved["state_dict"].values())


def test_retrieve_features_matches_the_forward_pass(net, mnist):
    x = mnist.test_images[:3].float()[:, None] / 255
    maps1, maps2 = net.retrieve_features(x[:1])
    assert maps1.shape == (1, 4, 28, 28) and maps2.shape == (1, 8, 14, 14)
    maps1, maps2 = net.retrieve_features(x)
    head = net.fc2(torch.relu(net.fc1(net.pool(maps2).flatten(1))))
    assert torch.allclose(torch.log_softmax(head, 1), net(x), atol=1e-5)
    assert torch.allclose(net(x).exp().sum(1), torch.ones(3), atol=1e-5)  # log_softmax over the classes


def test_the_weights_load_into_any_network_with_the_same_layers(net):
    class Other(models.ConvNet):
        def forward(self, x):
            return super().forward(x) * 2

    other = models.load_pretrained(Other())
    assert torch.equal(other.conv1.weight, net.conv1.weight)


def test_pretrained_history_has_a_snapshot_and_a_record_per_step():
    history = models.pretrained_history()
    snapshots, steps, record = history["snapshots"], history["steps"], history["record"]
    assert len(snapshots) == len(steps) == len(record) > 10
    assert steps[0] == 0 and steps == sorted(steps)
    assert [tuple(t.shape) for t in snapshots[0]] == [(4, 1, 5, 5), (4,), (8, 4, 5, 5), (8,)]
    assert not torch.equal(snapshots[0][0], snapshots[-1][0])
    assert record[-1][1] < record[0][1]  # the validation error fell
    assert "SGD" in history["recipe"]


def test_the_training_script_regenerates_the_weights_byte_for_byte():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "train_pretrained.py"), "--check"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical" in done.stdout


# ---------------------------------------------------------------- the widgets redraw when a control changes


def test_filter_viewer_switches_networks(net):
    viewer = widgets.FilterViewer({"pretrained": net, "untrained": models.ConvNet()})
    before = png(viewer)
    assert "conv1: 4 kernels" in viewer.status.value
    viewer.source.value = "untrained"
    assert png(viewer) != before


def test_filter_viewer_limits_are_symmetric_for_each_layer(net):
    viewer = widgets.FilterViewer(net)
    layer1, layer2 = viewer._fig.handwritten["layer1"], viewer._fig.handwritten["layer2"]
    m1, m2 = float(net.conv1.weight.detach().abs().max()), float(net.conv2.weight.detach().abs().max())
    assert layer1.get_clim() == pytest.approx((-m1, m1))
    assert layer2.get_clim() == pytest.approx((-m2, m2))
    assert len(viewer._fig.axes) == 4  # two kernel mosaics, two colour bars


def test_filter_evolution_moves_through_training():
    evolution = widgets.make_filter_evolution()
    first = png(evolution)
    assert evolution.step.max == len(models.pretrained_history()["snapshots"]) - 1
    evolution.step.value = 5
    assert png(evolution) != first
    assert "snapshot 6/" in evolution.status.value and "validation error" in evolution.status.value


def test_filter_evolution_of_a_run_in_the_lessons_format():
    snaps = [[torch.randn(4, 1, 5, 5) * (k + 1), torch.zeros(4), torch.randn(8, 4, 5, 5), torch.zeros(8)]
             for k in range(3)]
    evolution = widgets.FilterEvolution(snaps, [(90.0, 80.0), (50.0, 40.0), (10.0, 8.0)], every=20)
    first = png(evolution)
    evolution.step.value = 2
    assert png(evolution) != first
    assert "batch 40" in evolution.status.value


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


def test_feature_maps_share_one_scale_per_layer(net, digits):
    explorer = widgets.FeatureMapExplorer(net, *digits)
    with torch.no_grad():
        maps1, maps2 = net.retrieve_features(digits[0][:1].float()[:, None] / 255)
    low, high = explorer._fig.handwritten["layer1"].get_clim()
    assert low == 0 and high == pytest.approx(float(maps1.max()), rel=1e-5)
    assert explorer._fig.handwritten["layer2"].get_clim()[1] == pytest.approx(float(maps2.max()), rel=1e-5)


def test_shift_explorer_redraws_for_amount_direction_and_image(net, digits):
    explorer = widgets.ShiftExplorer(net, *digits, pixels=3)
    seen = {png(explorer)}
    for control, value in ((explorer.pixels, 5), (explorer.direction, "up"), (explorer.index, 4)):
        control.value = value
        seen.add(png(explorer))
    assert len(seen) == 4
    assert "5 px up" in explorer._fig.handwritten["title"].get_text()


def test_shift_explorer_measures_equivariance(net, digits):
    explorer = widgets.ShiftExplorer(net, *digits, pixels=2)
    assert "layer 1's maps differ from the original's moved 2 px by 0%" in explorer.status.value
    assert "(a shift of 1 px there) by 0%" in explorer.status.value
    explorer.pixels.value = 3
    assert "1.5, so neither 1 nor 2" in explorer.status.value


@pytest.mark.parametrize("direction", widgets.SHIFT_DIRECTIONS)
def test_shift_image_moves_and_fills_with_zeros(direction):
    image = torch.arange(1.0, 31.0).reshape(5, 6)
    moved = widgets.shift_image(image, 2, direction)
    dy, dx = {"left": (0, -2), "right": (0, 2), "up": (-2, 0), "down": (2, 0)}[direction]
    expected = torch.zeros_like(image)
    for i in range(5):
        for j in range(6):
            if 0 <= i - dy < 5 and 0 <= j - dx < 6:
                expected[i, j] = image[i - dy, j - dx]
    assert torch.equal(moved, expected)
    assert torch.equal(widgets.shift_image(image, 0, direction), image)
    assert not widgets.shift_image(image, 9, direction).any()


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
def test_a_model_without_retrieve_features_gets_a_message(cls, digits):
    explorer = cls(NoFeatures(), *digits)
    assert "has no retrieve_features(x) method" in explorer.status.value
    png(explorer)  # still draws the digit
    explorer.index.value = 2  # and keeps working
    assert "has no retrieve_features(x) method" in explorer.status.value


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


def test_not_drawn_while_grading(monkeypatch, capsys, net, digits):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert widgets.make_filter_viewer(net) is None
    assert widgets.make_filter_evolution() is None
    assert widgets.make_feature_map_explorer(net, *digits) is None
    assert widgets.make_shift_explorer(net, *digits) is None
    out = capsys.readouterr().out
    assert out.count("not drawn while the notebook is being graded") == 4


def test_plots_return_figures(net, digits):
    history = models.pretrained_history()
    assert isinstance(plots.error_curves(history["record"], steps=history["steps"]), Figure)
    assert isinstance(plots.accuracy_by_shift({"left": {0: 0.9, 2: 0.8}}), Figure)
    assert plots.mosaic(torch.ones(2, 3, 4, 5), gap=1).shape == (9, 17)


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
                "handwritten-feature-map-explorer", "handwritten-shift-explorer"):
        assert css in classes, f"no {css} in the executed notebook"
        children = [ref.removeprefix("IPY_MODEL_") for ref in state[classes[css]]["state"]["children"]]
        images = [state[c] for c in children if state[c]["model_name"] == "ImageModel"]
        assert len(images) == 1 and images[0].get("buffers"), f"{css}: its picture was not stored"
