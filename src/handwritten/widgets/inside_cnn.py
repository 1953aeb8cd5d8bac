"""Lesson 06, inside a CNN: the filter viewer, the filter evolution, the feature-map explorer and the shift
explorer. They take any model with ``conv1`` and ``conv2`` layers (and, for feature maps,
``retrieve_features``), such as ``handwritten.models.ConvNet``. A problem with the model or the input (no
``retrieve_features``, an index out of range, a method that raises) is said in the widget's status line; the
widget stays. The shifted digits are the course's ``shift_image`` (``handwritten.reference.inside_cnn``)."""

from __future__ import annotations

import ipywidgets as widgets
import torch

from ..plots.common import _limit
from ..plots.inside_cnn import (
    evolution_figure,
    feature_map_figure,
    filter_figure,
    shift_figure,
    update_evolution_figure,
    update_feature_map_figure,
    update_filter_figure,
    update_shift_figure,
)
from ..reference.inside_cnn import SHIFT_DIRECTIONS, shift_image
from .common import WidgetProblem, _ImagePicker, _ModelWidget, _probabilities

_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def _conv_weights(model) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return model.conv1.weight.detach().float(), model.conv2.weight.detach().float()
    except AttributeError:
        raise WidgetProblem(f"{type(model).__name__} has no conv1 and conv2 layers (nn.Conv2d) whose kernels "
                            "could be shown.") from None


def _features(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    retrieve = getattr(model, "retrieve_features", None)
    if not callable(retrieve):
        raise WidgetProblem(f"{type(model).__name__} has no retrieve_features(x) method, so there are no feature "
                            "maps to show. Give the network one (it returns the two convolutional layers' maps), "
                            "or use handwritten.models.load_pretrained().")
    try:
        with torch.no_grad():
            maps = retrieve(x)
    except Exception as error:  # a student's method may raise: say which, keep the widget alive
        raise WidgetProblem(f"retrieve_features raised {type(error).__name__}: {error}") from error
    if (not isinstance(maps, (tuple, list)) or len(maps) != 2
            or not all(isinstance(m, torch.Tensor) and m.ndim == 4 for m in maps)):
        raise WidgetProblem("retrieve_features(x) should return two tensors, (N, c1, h, w) and (N, c2, h/2, w/2).")
    return maps[0].detach()[0], maps[1].detach()[0]


def _blank_maps(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeros in the shape of the maps of ``image`` (h, w): 4 of (h, w), 8 of (h/2, w/2)."""
    h, w = image.shape[-2:]
    return torch.zeros(4, h, w), torch.zeros(8, h // 2, w // 2)


def _relative_difference(new: torch.Tensor, old: torch.Tensor, pixels: int, direction: str, margin: int) -> float:
    """How far the maps ``new`` are from ``old`` (both (c, h, w)), as a fraction of their size, away
    from the borders: the ``pixels + margin`` rows or columns the shift brought in (zeros, which
    a convolution's bias can turn into a background) and the ``margin`` on the side it pushed out."""
    keep = shift_image(torch.ones_like(new[0]), pixels + margin, direction)
    keep = keep * shift_image(torch.ones_like(new[0]), margin, _OPPOSITE[direction])
    a, b = new * keep, old * keep
    return float((a - b).abs().sum() / max(float(a.abs().sum() + b.abs().sum()) / 2, 1e-12))


def _models_by_name(models) -> dict:
    if isinstance(models, torch.nn.Module):
        return {type(models).__name__: models}
    if isinstance(models, dict):
        return {str(name): model for name, model in models.items() if model is not None}
    raise WidgetProblem("pass a model, or a dict {name: model}")


class FilterViewer(_ModelWidget):
    """The kernels of a network's two convolutional layers: pick the network (trained, untrained,
    yours) from the menu. Red is positive, blue negative, white zero; each layer has its own
    colour scale, symmetric around zero."""

    css = "handwritten-filter-viewer"

    def __init__(self, models):
        self.models = _models_by_name(models)
        self.source = widgets.Dropdown(options=list(self.models) or ["(no network)"], description="network")
        self._fig = filter_figure(torch.zeros(4, 1, 5, 5), torch.zeros(8, 4, 5, 5))
        self.source.observe(lambda change: self.redraw(), "value")
        self._finish([self.source])
        self.redraw()

    def _draw(self):
        if not self.models:
            raise WidgetProblem("no network to show: pass a model, or a dict {name: model}.")
        w1, w2 = _conv_weights(self.models[self.source.value])
        if tuple(w1.shape[1:]) != (1, 5, 5) or tuple(w2.shape) != (8, w1.shape[0], 5, 5) or w1.shape[0] != 4:
            raise WidgetProblem(f"this viewer shows conv1 (4, 1, 5, 5) and conv2 (8, 4, 5, 5) kernels; "
                                f"these are {tuple(w1.shape)} and {tuple(w2.shape)}.")
        update_filter_figure(self._fig, w1, w2, title=f"{self.source.value}: the kernels of both layers")
        return (f"conv1: 4 kernels 1×5×5, largest |weight| {float(w1.abs().max()):.3f} · "
                f"conv2: 8 kernels 4×5×5, largest |weight| {float(w2.abs().max()):.3f}")


class FilterEvolution(_ModelWidget):
    """The kernels of both layers at each snapshot taken during training, with the error rates:
    move the slider (or press play) to watch them form. Each layer keeps one colour scale for the
    whole of training, so you can see the weights grow."""

    css = "handwritten-filter-evolution"

    def __init__(self, snapshots, record=None, steps=None, every: int | None = None):
        self.problem = None
        try:
            self.snapshots = [self._kernels(s) for s in (snapshots or [])]
        except WidgetProblem as problem:
            self.snapshots, self.problem = [], str(problem)
        n = len(self.snapshots)
        self.record = list(record or [])[:n] if record is not None and len(record) >= n else []
        self.steps = list(steps) if steps is not None else [k * (every or 1) for k in range(n)]
        self.step = widgets.IntSlider(value=0, min=0, max=max(n - 1, 0), description="snapshot",
                                      continuous_update=False)
        self.play = widgets.Play(value=0, min=0, max=max(n - 1, 0), interval=500, description="play")
        widgets.jslink((self.play, "value"), (self.step, "value"))
        if n:
            self.limits = (max(_limit(w1) for w1, _ in self.snapshots), max(_limit(w2) for _, w2 in self.snapshots))
            first = self.snapshots[0]
        else:
            self.limits, first = (1.0, 1.0), (torch.zeros(4, 1, 5, 5), torch.zeros(8, 4, 5, 5))
        self._fig = evolution_figure(first[0], first[1], self.record, self.steps[:n] or [0])
        self.step.observe(lambda change: self.redraw(), "value")
        self._finish([widgets.HBox([self.play, self.step])])
        self.redraw()

    @staticmethod
    def _kernels(snapshot):
        """[conv1.weight, conv1.bias, conv2.weight, conv2.bias] (or any sequence starting with
        conv1.weight and holding conv2.weight third) -> the two weights, float."""
        try:
            w1, w2 = torch.as_tensor(snapshot[0]).detach().float(), torch.as_tensor(snapshot[2]).detach().float()
        except (TypeError, IndexError, KeyError, ValueError, RuntimeError):
            w1 = w2 = None
        if w1 is None or w1.ndim != 4 or w2.ndim != 4:
            raise WidgetProblem("each snapshot should be [conv1.weight, conv1.bias, conv2.weight, conv2.bias]")
        return w1, w2

    def _draw(self):
        if not self.snapshots:
            raise WidgetProblem(self.problem or "no snapshots to show yet: train a network with train(...) and "
                                "pass its weights.")
        k = self.step.value
        w1, w2 = self.snapshots[k]
        step = self.steps[k] if k < len(self.steps) else k
        update_evolution_figure(self._fig, w1, w2, step, limits=self.limits,
                                title=f"snapshot {k + 1} of {len(self.snapshots)}, after batch {step}")
        text = f"snapshot {k + 1}/{len(self.snapshots)} (batch {step})"
        if k < len(self.record):
            train_error, val_error = (float(v) for v in self.record[k])
            text += f": training error {train_error:.1f}%, validation error {val_error:.1f}%"
        return text + f" · largest |weight|: conv1 {float(w1.abs().max()):.3f}, conv2 {float(w2.abs().max()):.3f}"


class FeatureMapExplorer(_ImagePicker, _ModelWidget):
    """Pick a digit (slider, or type its index) and see what the network's two convolutional layers
    make of it: 4 feature maps after the first layer, 8 after the second (each layer on one colour
    scale, dark = 0), and the class probabilities."""

    css = "handwritten-feature-map-explorer"

    def __init__(self, model, images, labels=None):
        picker = self._make_picker(model, images, labels)
        self._fig = feature_map_figure(self.images[0], *_blank_maps(self.images[0]), torch.zeros(10))
        self._finish([picker])
        self.redraw()

    def _draw(self):
        image = self._image()
        x = image[None, None]
        try:
            maps1, maps2 = _features(self.model, x)
            probs = _probabilities(self.model, x)
        except WidgetProblem:
            update_feature_map_figure(self._fig, image, *_blank_maps(image), torch.zeros(10))
            raise
        if maps1.shape[0] != 4 or maps2.shape[0] != 8 or probs.numel() != 10:
            update_feature_map_figure(self._fig, image, *_blank_maps(image), torch.zeros(10))
            raise WidgetProblem(f"expected 4 and 8 feature maps and 10 classes, got {maps1.shape[0]}, "
                                f"{maps2.shape[0]} and {probs.numel()}")
        text = f"image {self.index.value} · {self._describe(probs)}"
        update_feature_map_figure(self._fig, image, maps1, maps2, probs, title=text)
        return (f"{text} · layer 1: {tuple(maps1.shape)}, max {float(maps1.max()):.2f} · "
                f"layer 2: {tuple(maps2.shape)}, max {float(maps2.max()):.2f}")


class ShiftExplorer(_ImagePicker, _ModelWidget):
    """Shift a digit by some pixels (direction and amount) and compare: the shifted digit, the class
    probabilities before (grey) and after (blue), and the shifted digit's feature maps, drawn on the
    colour scales of the unshifted digit's maps. The status line says how far each layer's maps are
    from the original maps shifted by the same amount (translation equivariance), and whether the
    prediction survived."""

    css = "handwritten-shift-explorer"

    def __init__(self, model, images, labels=None, *, pixels: int = 3, direction: str = "left",
                 max_shift: int = 10):
        picker = self._make_picker(model, images, labels)
        self.direction = widgets.ToggleButtons(options=list(SHIFT_DIRECTIONS), value=direction,
                                               description="direction",
                                               style=dict(button_width="60px"))
        self.pixels = widgets.IntSlider(value=pixels, min=0, max=max_shift, description="shift (px)",
                                        continuous_update=False)
        first = self.images[0]
        self._fig = shift_figure(first, first, torch.zeros(10), torch.zeros(10), *_blank_maps(first))
        self.direction.observe(lambda change: self.redraw(), "value")
        self.pixels.observe(lambda change: self.redraw(), "value")
        self._finish([picker, widgets.HBox([self.direction, self.pixels])])
        self.redraw()

    def shifted(self) -> torch.Tensor:
        return shift_image(self._image(), self.pixels.value, self.direction.value)

    def _draw(self):
        image, shifted = self._image(), self.shifted()
        w, direction = self.pixels.value, self.direction.value
        x, xs = image[None, None], shifted[None, None]
        try:
            maps1, maps2 = _features(self.model, x)
            shifted1, shifted2 = _features(self.model, xs)
            before, after = _probabilities(self.model, x), _probabilities(self.model, xs)
        except WidgetProblem:
            update_shift_figure(self._fig, image, shifted, torch.zeros(10), torch.zeros(10), *_blank_maps(image))
            raise
        guess, moved = int(before.argmax()), int(after.argmax())
        title = (f"{self._describe(before)} · shifted {w} px {direction}: "
                 f"{moved} ({100 * float(after[moved]):.1f}%)")
        update_shift_figure(self._fig, image, shifted, before, after, shifted1, shifted2,
                            limits=(_limit(maps1), _limit(maps2)), title=title)
        # Equivariance: the shifted digit's maps against the original maps shifted the same way.
        # Layer 2 works at half resolution, so the digit's w pixels are w / 2 of its pixels there.
        d1 = _relative_difference(shifted1, shift_image(maps1, w, direction), w, direction, 2)
        d2 = min(_relative_difference(shifted2, shift_image(maps2, s, direction), s, direction, 3)
                 for s in {w // 2, (w + 1) // 2})
        half = f"{w // 2}" if w % 2 == 0 else f"{w / 2:g}, so neither {w // 2} nor {w // 2 + 1}"
        verdict = "prediction unchanged" if guess == moved else f"prediction changed: {guess} → {moved}"
        return (f"away from the borders, layer 1's maps differ from the original's moved {w} px by "
                f"{100 * d1:.0f}%, layer 2's (a shift of {half} px there) by {100 * d2:.0f}% · {verdict}")
