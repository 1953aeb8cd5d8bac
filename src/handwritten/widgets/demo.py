"""The instructor demo (``demo/demo.ipynb``, ``make demo``): a "pick a digit" classifier, and ``demo_widgets``,
everything the Voilà demo shows, built from the pretrained network and the bundled sample, without training:
lesson 06's canvas first (draw a digit), the classifier here, lesson 04's kernel playground and lesson 06's four
widgets."""

from __future__ import annotations

import math
from typing import NamedTuple

import ipywidgets as widgets
import torch
import torch.nn.functional as F

from ..plots.demo import classifier_figure, update_classifier_figure
from .canvas import DigitCanvas
from .common import WidgetProblem, _ImagePicker, _ModelWidget, _probabilities
from .inside_cnn import FeatureMapExplorer, FilterViewer, ShiftExplorer
from .kernels import KernelPlayground
from .make import make_filter_evolution


def transform_digit(image: torch.Tensor, *, rotate: float = 0.0, size: float = 1.0, noise: float = 0.0,
                    invert: bool = False, seed: int = 0) -> torch.Tensor:
    """``image`` (H, W), float in [0, 1], turned ``rotate`` degrees anticlockwise and scaled by ``size``
    about its centre (what moves in is background), with Gaussian ``noise`` of that standard deviation
    (the same noise for the same ``seed``), and black and white swapped when ``invert``."""
    image = image.detach().float()
    h, w = image.shape[-2:]
    if rotate or size != 1.0:
        a = math.radians(rotate)
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]) / size
        grid = F.affine_grid(theta[None], [1, 1, h, w], align_corners=False)
        image = F.grid_sample(image.reshape(1, 1, h, w), grid, align_corners=False)[0, 0]
    if noise:
        generator = torch.Generator().manual_seed(seed)
        image = (image + noise * torch.randn(h, w, generator=generator)).clamp(0, 1)
    return 1 - image if invert else image


class DigitClassifier(_ImagePicker, _ModelWidget):
    """Pick a digit, then rotate it, resize it, add noise or invert it, and watch the network's answer
    (the class probabilities, the winner in red) change as you do: where does it stop reading a 7?"""

    css = "handwritten-digit-classifier"

    def __init__(self, model, images, labels=None):
        picker = self._make_picker(model, images, labels)
        self.rotate = widgets.IntSlider(value=0, min=-90, max=90, step=5, description="rotate (°)",
                                        continuous_update=False)
        self.size = widgets.FloatSlider(value=1.0, min=0.4, max=1.6, step=0.1, description="size",
                                        readout_format=".1f", continuous_update=False)
        self.noise = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="noise",
                                         readout_format=".2f", continuous_update=False)
        self.invert = widgets.Checkbox(value=False, description="invert (white paper, black ink)", indent=False,
                                       layout=widgets.Layout(width="auto", margin="0 0 0 24px"))
        self.probabilities = torch.zeros(10)
        self._fig = classifier_figure(self.images[0])
        for control in (self.rotate, self.size, self.noise, self.invert):
            control.observe(lambda change: self.redraw(), "value")
        self._finish([picker, widgets.HBox([self.rotate, self.size]), widgets.HBox([self.noise, self.invert])])
        self.redraw()

    def seen(self) -> torch.Tensor:
        """The digit as the network gets it, after the changes asked for."""
        return transform_digit(self._image(), rotate=self.rotate.value, size=self.size.value,
                               noise=self.noise.value, invert=self.invert.value, seed=self.index.value)

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())

    def _draw(self):
        image, seen = self._image(), self.seen()
        try:
            self.probabilities = _probabilities(self.model, seen[None, None])
            if self.probabilities.numel() != 10:
                raise WidgetProblem(f"expected 10 class probabilities, got {self.probabilities.numel()}")
        except WidgetProblem:
            self.probabilities = torch.zeros(10)
            update_classifier_figure(self._fig, image, seen, self.probabilities)
            raise
        text = f"image {self.index.value} · {self._describe(self.probabilities)}"
        update_classifier_figure(self._fig, image, seen, self.probabilities, winner=self.prediction, title=text)
        changes = [f"rotated {self.rotate.value}°" if self.rotate.value else "",
                   f"size ×{self.size.value:.1f}" if abs(self.size.value - 1) > 1e-9 else "",
                   f"noise {self.noise.value:.2f}" if self.noise.value else "", "inverted" if self.invert.value else ""]
        changed = ", ".join(c for c in changes if c) or "unchanged"
        runner_up = int(self.probabilities.argsort(descending=True)[1])
        return (f"{text} · digit {changed} · runner-up {runner_up} "
                f"({100 * float(self.probabilities[runner_up]):.1f}%)")


DEMO_DIGITS = 200  # the first 200 digits the pretrained network never saw in training


class DemoInputs(NamedTuple):
    trained: torch.nn.Module    # the pretrained ConvNet
    untrained: torch.nn.Module  # the same network with its random initial weights (seed 0)
    images: torch.Tensor        # (n, 28, 28) uint8, held-out test digits of the bundled sample
    labels: torch.Tensor        # (n,)


def demo_inputs(n: int = DEMO_DIGITS) -> DemoInputs:
    """What the instructor demo shows its widgets with: the pretrained network (and an untrained one to
    compare) and ``n`` digits of the bundled sample that the network never saw in training. No training,
    no download: a fraction of a second."""
    from ..data import load_mnist
    from ..models import ConvNet, load_pretrained

    mnist = load_mnist("sample", quiet=True)
    held_out = slice(1000, 1000 + n)  # the pretrained network's test digits (weights/README.md)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = ConvNet().eval()
    return DemoInputs(load_pretrained(), untrained, mnist.test_images[held_out], mnist.test_labels[held_out])


def demo_widgets(n: int = DEMO_DIGITS) -> dict:
    """Everything the instructor demo (``demo/demo.ipynb``, ``make demo``) shows, by name, in its order: the
    digit canvas (draw your own), the digit classifier, the kernel playground, the filter viewer (trained and
    untrained network), the filter evolution, the feature-map explorer and the shift explorer. (The demo notebook
    builds each in its own cell, so that Voilà shows the first while the others are being built.)"""
    net, untrained, images, labels = demo_inputs(n)
    return {
        "digit canvas": DigitCanvas(net),
        "digit classifier": DigitClassifier(net, images, labels),
        "kernel playground": KernelPlayground(images, kernel="Sobel x"),
        "filter viewer": FilterViewer({"trained": net, "untrained": untrained}),
        "filter evolution": make_filter_evolution(),
        "feature-map explorer": FeatureMapExplorer(net, images, labels),
        "shift explorer": ShiftExplorer(net, images, labels),
    }
