"""What the widgets that show a model at work (lesson 06's four, the demo's classifier) share: a picture with a
status line whose redraw never raises (``_ModelWidget``), an image picker (``_ImagePicker``), images as floats
(``_as_float_images``), a model's class probabilities (``_probabilities``), and ``WidgetProblem``, what such a
widget says in its status line instead of raising.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import torch
import torch.nn.functional as F

from ..plots.common import fast_png


class WidgetProblem(ValueError):
    """Something about the model or the input that a widget explains instead of drawing."""


def _as_float_images(images) -> torch.Tensor:
    """(N, 28, 28) or (N, 1, 28, 28), uint8 0-255 or float 0-1 -> float (N, H, W) in [0, 1]."""
    images = torch.as_tensor(images).detach()
    if images.ndim == 2:  # a single image
        images = images[None]
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise WidgetProblem(f"expected a batch of images (N, 28, 28) or (N, 1, 28, 28), not shape "
                            f"{tuple(images.shape)}")
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def _probabilities(model, x: torch.Tensor) -> torch.Tensor:
    """The class probabilities of one image: softmax over the classes of what the model returns
    (log-probabilities or scores alike)."""
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as error:  # noqa: BLE001
        raise WidgetProblem(f"the model raised {type(error).__name__}: {error}") from error
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        raise WidgetProblem(f"the model should return one row of class scores per image, not "
                            f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    return F.softmax(out.detach().double(), dim=1)[0]


class _ModelWidget(widgets.VBox):
    """A widget that shows a model at work: its controls, a status line and a picture (a figure that
    ``fast_png`` redraws), and a ``redraw`` that never raises. A subclass builds ``self._fig``, calls
    ``_finish(controls)`` and defines ``_draw()``, which updates the figure and returns the status line
    (or raises ``WidgetProblem``, whose message the status line shows)."""

    css = ""
    dpi = 72  # small pictures redraw fast

    def _finish(self, controls):
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        super().__init__([*controls, self.status, self.image])
        self.add_class(self.css)

    def say(self, text: str) -> None:
        """Show ``text`` in the status line (an HTML widget, so that long lines wrap)."""
        self.status.value = html.escape(text, quote=False)

    def redraw(self):
        try:
            self.say(self._draw() or "")
        except WidgetProblem as problem:
            self.say(f"⚠ {problem}")
        except Exception as error:  # noqa: BLE001 - whatever it is, say it here rather than in a traceback
            self.say(f"⚠ {type(error).__name__}: {error}")
        self.image.value = fast_png(self._fig, dpi=self.dpi)


class _ImagePicker:
    """An image index as a slider and a number box; a number out of range is reported, not used."""

    def _make_picker(self, model, images, labels):
        """Keep the model, the images (floats in [0, 1]) and their labels; return the picker's controls."""
        self.model = model
        self.images = _as_float_images(images)
        self.labels = None if labels is None else torch.as_tensor(labels)
        self.index = widgets.IntSlider(value=0, min=0, max=max(len(self.images) - 1, 0), description="image",
                                       continuous_update=False)
        self.index_box = widgets.IntText(value=0, description="index", layout=widgets.Layout(width="160px"))
        self.index.observe(self._slider_moved, "value")
        self.index_box.observe(self._box_changed, "value")
        return widgets.HBox([self.index, self.index_box])

    def _slider_moved(self, change):
        if self.index_box.value != change["new"]:
            self.index_box.value = change["new"]
        else:
            self.redraw()

    def _box_changed(self, change):
        i = change["new"]
        if not 0 <= i < len(self.images):
            self.say(f"⚠ there is no image {i}: choose an index from 0 to {len(self.images) - 1}. "
                     f"Still showing image {self.index.value}.")
            return
        if self.index.value != i:
            self.index.value = i  # its observer redraws
        else:
            self.redraw()

    def _image(self) -> torch.Tensor:
        return self.images[self.index.value]

    def _describe(self, probs) -> str:
        i = self.index.value
        label = f"label {int(self.labels[i])} · " if self.labels is not None and i < len(self.labels) else ""
        guess = int(probs.argmax())
        return f"{label}prediction {guess} ({100 * float(probs[guess]):.1f}%)"
