"""Interactive widgets: thin ipywidgets wiring over ``handwritten.plots``.

Each widget renders into a ``widgets.Image`` (PNG bytes), so it works in JupyterLab, in
Voilà, and in a plain Python test (set a control's ``.value``, read the image's ``.value``).
Under nbgrader (``NBGRADER_EXECUTION`` set) the ``make_*`` functions return ``None`` and
print one line instead: nothing to draw for a grader.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch
import torch.nn.functional as F

from . import env, plots

KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "vertical edges [1, -1]": [[0, 0, 0], [0, 1, -1], [0, 0, 0]],
    "horizontal edges": [[0, 0, 0], [0, 1, 0], [0, -1, 0]],
    "Sobel x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "Sobel y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "Laplacian (outlines)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "diagonal": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
}


def _reference_corr2d(X, K):
    return F.conv2d(X[None, None], K[None, None].to(X.dtype))[0, 0]


class KernelPlayground(widgets.VBox):
    """Edit a 3x3 kernel (or pick a preset), pick a digit, see ``corr2d(digit, kernel)``.

    ``corr2d`` defaults to PyTorch's; pass your own to watch it at work.
    """

    def __init__(self, images: torch.Tensor, corr2d=None, kernel: str = "vertical edges [1, -1]"):
        self.images = images.detach().float() / (255.0 if images.dtype == torch.uint8 else 1.0)
        self.corr2d = corr2d or _reference_corr2d
        self.preset = widgets.Dropdown(options=["(custom)", *KERNELS], value=kernel,
                                       description="kernel")
        self.cells = [widgets.FloatText(value=0.0, step=0.5, continuous_update=False,
                                        layout=widgets.Layout(width="70px")) for _ in range(9)]
        self.index = widgets.IntSlider(value=0, min=0, max=len(self.images) - 1,
                                       description="digit", continuous_update=False)
        self.image = widgets.Image(format="png")
        self.status = widgets.Label()
        self._holding = False
        self._set_cells(KERNELS[kernel])
        self.output = torch.zeros(self.images.shape[1] - 2, self.images.shape[2] - 2)
        self._fig = plots.kernel_figure(self._digit(), self.kernel, self.output)
        self.redraw()
        self.preset.observe(self._on_preset, "value")
        for cell in self.cells:
            cell.observe(self._on_cell, "value")
        self.index.observe(lambda change: self.redraw(), "value")
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(
            grid_template_columns="repeat(3, 76px)", grid_gap="2px"))
        controls = widgets.HBox([widgets.VBox([self.preset, grid, self.index, self.status])])
        super().__init__([controls, self.image])
        self.add_class("handwritten-kernel-playground")

    @property
    def kernel(self) -> torch.Tensor:
        return torch.tensor([cell.value for cell in self.cells], dtype=torch.float32).reshape(3, 3)

    def _digit(self):
        return self.images[self.index.value]

    def _set_cells(self, values):
        self._holding = True  # one redraw for nine changes
        try:
            for cell, value in zip(self.cells, torch.tensor(values, dtype=torch.float32).flatten()):
                cell.value = round(float(value), 4)
        finally:
            self._holding = False

    def _on_preset(self, change):
        if change["new"] in KERNELS:
            self._set_cells(KERNELS[change["new"]])
            self.redraw()

    def _on_cell(self, change):
        if self._holding:
            return
        if self.preset.value != "(custom)" and not torch.equal(
                self.kernel, torch.tensor(KERNELS[self.preset.value], dtype=torch.float32)):
            self._holding = True
            self.preset.value = "(custom)"
            self._holding = False
        self.redraw()

    def _compute(self):
        return self.corr2d(self._digit(), self.kernel).detach()

    def _draw(self):
        plots.update_kernel_figure(self._fig, self._digit(), self.kernel, self.output)
        self.image.value = plots.to_png(self._fig)
        self.status.value = (f"output {tuple(self.output.shape)}, "
                             f"min {float(self.output.min()):.2f}, max {float(self.output.max()):.2f}")

    def redraw(self):
        try:
            self.output = self._compute()
        except Exception as error:  # a student's corr2d may raise: say so, keep the widget alive
            self.output = torch.zeros_like(self.output)
            self._draw()
            self.status.value = f"corr2d raised {type(error).__name__}: {error}"
            return
        self._draw()


def make_kernel_playground(images: torch.Tensor, corr2d=None, kernel: str = "vertical edges [1, -1]"):
    """The kernel playground, or ``None`` (with a one-line note) while nbgrader grades."""
    if env.grading():
        print("(kernel playground: not drawn while the notebook is being graded)")
        return None
    return KernelPlayground(images, corr2d=corr2d, kernel=kernel)


# ---------------------------------------------------------------- lesson 02: the learning rate


def _quadratic(t, params):
    a, b, c = params
    return a * (t ** 2) + (b * t) + c


def _reference_apply_step(params, time, speed, lr):
    """One pass of the seven steps on the quadratic: predict, loss, gradient, step, zero."""
    loss = ((_quadratic(time, params) - speed) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        params -= lr * params.grad
    params.grad = None
    return loss.item()


def quadratic_descent(time, speed, start, lr, steps, apply_step=None, blowup=1e8):
    """Run ``steps`` steps of gradient descent on the quadratic from a copy of ``start``.

    Returns ``(losses, params, diverged_at)``: the loss before each step taken; the parameters
    after the last step (after a blow-up: those of the last finite loss); and the step at which
    training blew up (its loss was inf, nan or ``blowup`` times the first one), else None.
    Training stops there, so every loss returned is a finite number worth plotting."""
    step = apply_step or _reference_apply_step
    params = start.detach().clone().requires_grad_(True)
    losses, shown = [], params.detach().clone()
    for k in range(1, steps + 1):
        before = params.detach().clone()
        loss = float(step(params, time, speed, lr))
        if not abs(loss) < float("inf") or (losses and loss > blowup * losses[0]):  # inf, nan or huge
            return losses, shown, k
        losses.append(loss)
        shown = before
    after = params.detach()
    return losses, (after.clone() if bool(torch.isfinite(after).all()) else shown), None


class LearningRateExplorer(widgets.VBox):
    """Pick a learning rate (log slider) and a number of steps; see the loss at every step and
    the parabola they lead to. A learning rate that is too large blows up: the picture marks
    the step where it did and shows the last parabola before it.

    ``apply_step`` defaults to the lesson's reference; pass your own to watch it at work.
    """

    def __init__(self, time, speed, start, lr: float = 1e-5, steps: int = 30, apply_step=None):
        self.time, self.speed = time.detach(), speed.detach()
        self.start = start.detach().clone()
        self.apply_step = apply_step
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-7, max=-3, step=0.1, description="lr",
                                         readout_format=".1e", continuous_update=False)
        self.steps = widgets.IntSlider(value=steps, min=1, max=300, description="steps",
                                       continuous_update=False)
        self.image = widgets.Image(format="png")
        self.status = widgets.Label()
        self.losses, self.params, self.diverged_at = [], self.start.clone(), None
        self._fig = plots.descent_figure(self.time, self.speed)
        self.redraw()
        self.lr.observe(lambda change: self.redraw(), "value")
        self.steps.observe(lambda change: self.redraw(), "value")
        super().__init__([widgets.HBox([self.lr, self.steps]), self.status, self.image])
        self.add_class("handwritten-learning-rate-explorer")

    def run(self):
        self.losses, self.params, self.diverged_at = quadratic_descent(
            self.time, self.speed, self.start, self.lr.value, self.steps.value, self.apply_step)

    def redraw(self):
        try:
            self.run()
        except Exception as error:  # a student's apply_step may raise: say so, keep the widget alive
            self.losses, self.params, self.diverged_at = [], self.start.clone(), None
            self._draw()
            self.status.value = f"apply_step raised {type(error).__name__}: {error}"
            return
        self._draw()

    def _draw(self):
        plots.update_descent_figure(self._fig, self.time, self.losses, self.start, self.params,
                                    lr=self.lr.value, diverged_at=self.diverged_at)
        self.image.value = plots.to_png(self._fig)
        if self.diverged_at is not None or (len(self.losses) > 1 and self.losses[-1] > self.losses[0]):
            where = f": the loss blew up at step {self.diverged_at}" if self.diverged_at else ""
            self.status.value = (f"diverging{where}. Each step overshoots the minimum by more than "
                                 f"the one before.")
        elif self.losses:
            self.status.value = (f"{len(self.losses)} steps: loss {self.losses[0]:.4g} → "
                                 f"{self.losses[-1]:.4g}")


def make_learning_rate_explorer(time, speed, start, lr: float = 1e-5, steps: int = 30, apply_step=None):
    """The learning-rate explorer, or ``None`` (with a one-line note) while nbgrader grades."""
    if env.grading():
        print("(learning-rate explorer: not drawn while the notebook is being graded)")
        return None
    return LearningRateExplorer(time, speed, start, lr=lr, steps=steps, apply_step=apply_step)


# ---------------------------------------------------------------- lesson 06: inside a CNN
# The filter viewer, the filter evolution, the feature-map explorer and the shift explorer. They take
# any model with ``conv1`` and ``conv2`` layers (and, for feature maps, ``retrieve_features``), such
# as ``handwritten.models.ConvNet``. A problem with the model or the input (no ``retrieve_features``,
# an index out of range, a method that raises) is said in the widget's status line; the widget stays.

SHIFT_DIRECTIONS = ("left", "right", "up", "down")


def shift_image(image: torch.Tensor, pixels: int, direction: str = "left") -> torch.Tensor:
    """``image`` (any shape ending in height, width) moved ``pixels`` pixels towards ``direction``;
    what moves in from the opposite border is zero."""
    if direction not in SHIFT_DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(SHIFT_DIRECTIONS)}, not {direction!r}")
    pixels = int(pixels)
    if pixels < 0:
        raise ValueError(f"the shift must be 0 or more pixels, not {pixels}")
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    if direction == "left" and pixels < w:
        out[..., :, :w - pixels] = image[..., :, pixels:]
    elif direction == "right" and pixels < w:
        out[..., :, pixels:] = image[..., :, :w - pixels]
    elif direction == "up" and pixels < h:
        out[..., :h - pixels, :] = image[..., pixels:, :]
    elif direction == "down" and pixels < h:
        out[..., pixels:, :] = image[..., :h - pixels, :]
    return out


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


OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def _relative_difference(new: torch.Tensor, old: torch.Tensor, pixels: int, direction: str, margin: int) -> float:
    """How far the maps ``new`` are from ``old`` (both (c, h, w)), as a fraction of their size, away
    from the borders: the ``pixels + margin`` rows or columns the shift brought in (zeros, which
    a convolution's bias can turn into a background) and the ``margin`` on the side it pushed out."""
    keep = shift_image(torch.ones_like(new[0]), pixels + margin, direction)
    keep = keep * shift_image(torch.ones_like(new[0]), margin, OPPOSITE[direction])
    a, b = new * keep, old * keep
    return float((a - b).abs().sum() / max(float(a.abs().sum() + b.abs().sum()) / 2, 1e-12))


class _ModelWidget(widgets.VBox):
    """What the four widgets share: a picture, a status line, and a redraw that never raises."""

    css = ""
    dpi = 72  # small pictures redraw fast

    def _finish(self, controls):
        self.image = widgets.Image(format="png")
        super().__init__([*controls, self.status, self.image])
        self.add_class(self.css)

    def say(self, text: str) -> None:
        """Show ``text`` in the status line (an HTML widget, so that long lines wrap)."""
        import html

        self.status.value = html.escape(text, quote=False)

    def redraw(self):
        try:
            self.say(self._draw() or "")
        except WidgetProblem as problem:
            self.say(f"⚠ {problem}")
        except Exception as error:  # noqa: BLE001 - whatever it is, say it here rather than in a traceback
            self.say(f"⚠ {type(error).__name__}: {error}")
        self.image.value = plots.fast_png(self._fig, dpi=self.dpi)


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
        self.status = widgets.HTML()
        self.models = _models_by_name(models)
        self.source = widgets.Dropdown(options=list(self.models) or ["(no network)"], description="network")
        self._fig = plots.filter_figure(torch.zeros(4, 1, 5, 5), torch.zeros(8, 4, 5, 5))
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
        plots.update_filter_figure(self._fig, w1, w2, title=f"{self.source.value}: the kernels of both layers")
        return (f"conv1: 4 kernels 1×5×5, largest |weight| {float(w1.abs().max()):.3f} · "
                f"conv2: 8 kernels 4×5×5, largest |weight| {float(w2.abs().max()):.3f}")


class FilterEvolution(_ModelWidget):
    """The kernels of both layers at each snapshot taken during training, with the error rates:
    move the slider (or press play) to watch them form. Each layer keeps one colour scale for the
    whole of training, so you can see the weights grow."""

    css = "handwritten-filter-evolution"

    def __init__(self, snapshots, record=None, steps=None, every: int | None = None):
        self.status = widgets.HTML()
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
            self.limits = (max(plots._limit(w1) for w1, _ in self.snapshots),
                           max(plots._limit(w2) for _, w2 in self.snapshots))
            first = self.snapshots[0]
        else:
            self.limits, first = (1.0, 1.0), (torch.zeros(4, 1, 5, 5), torch.zeros(8, 4, 5, 5))
        self._fig = plots.evolution_figure(first[0], first[1], self.record, self.steps[:n] or [0])
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
        plots.update_evolution_figure(self._fig, w1, w2, step, limits=self.limits,
                                      title=f"snapshot {k + 1} of {len(self.snapshots)}, after batch {step}")
        text = f"snapshot {k + 1}/{len(self.snapshots)} (batch {step})"
        if k < len(self.record):
            train_error, val_error = (float(v) for v in self.record[k])
            text += f": training error {train_error:.1f}%, validation error {val_error:.1f}%"
        return text + f" · largest |weight|: conv1 {float(w1.abs().max()):.3f}, conv2 {float(w2.abs().max()):.3f}"


class _ImagePicker:
    """An image index as a slider and a number box; a number out of range is reported, not used."""

    def _make_picker(self, n: int):
        self.index = widgets.IntSlider(value=0, min=0, max=max(n - 1, 0), description="image",
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


class FeatureMapExplorer(_ImagePicker, _ModelWidget):
    """Pick a digit (slider, or type its index) and see what the network's two convolutional layers
    make of it: 4 feature maps after the first layer, 8 after the second (each layer on one colour
    scale, dark = 0), and the class probabilities."""

    css = "handwritten-feature-map-explorer"

    def __init__(self, model, images, labels=None):
        self.status = widgets.HTML()
        self.model = model
        self.images = _as_float_images(images)
        self.labels = None if labels is None else torch.as_tensor(labels)
        picker = self._make_picker(len(self.images))
        h, w = self.images.shape[-2:]
        self._fig = plots.feature_map_figure(self.images[0], torch.zeros(4, h, w), torch.zeros(8, h // 2, w // 2),
                                             torch.zeros(10))
        self._finish([picker])
        self.redraw()

    def _draw(self):
        image = self._image()
        x = image[None, None]
        blank = (torch.zeros(4, *image.shape), torch.zeros(8, image.shape[0] // 2, image.shape[1] // 2))
        try:
            maps1, maps2 = _features(self.model, x)
            probs = _probabilities(self.model, x)
        except WidgetProblem:
            plots.update_feature_map_figure(self._fig, image, *blank, torch.zeros(10), title="")
            raise
        if maps1.shape[0] != 4 or maps2.shape[0] != 8 or probs.numel() != 10:
            plots.update_feature_map_figure(self._fig, image, *blank, torch.zeros(10))
            raise WidgetProblem(f"expected 4 and 8 feature maps and 10 classes, got {maps1.shape[0]}, "
                                f"{maps2.shape[0]} and {probs.numel()}")
        text = f"image {self.index.value} · {self._describe(probs)}"
        plots.update_feature_map_figure(self._fig, image, maps1, maps2, probs, title=text)
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
        self.status = widgets.HTML()
        self.model = model
        self.images = _as_float_images(images)
        self.labels = None if labels is None else torch.as_tensor(labels)
        picker = self._make_picker(len(self.images))
        self.direction = widgets.ToggleButtons(options=list(SHIFT_DIRECTIONS), value=direction,
                                               description="direction",
                                               style=dict(button_width="60px"))
        self.pixels = widgets.IntSlider(value=pixels, min=0, max=max_shift, description="shift (px)",
                                        continuous_update=False)
        h, w = self.images.shape[-2:]
        self._fig = plots.shift_figure(self.images[0], self.images[0], torch.zeros(10), torch.zeros(10),
                                       torch.zeros(4, h, w), torch.zeros(8, h // 2, w // 2))
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
            blank = torch.zeros(4, *image.shape), torch.zeros(8, image.shape[0] // 2, image.shape[1] // 2)
            plots.update_shift_figure(self._fig, image, shifted, torch.zeros(10), torch.zeros(10), *blank)
            raise
        guess, moved = int(before.argmax()), int(after.argmax())
        title = (f"{self._describe(before)} · shifted {w} px {direction}: "
                 f"{moved} ({100 * float(after[moved]):.1f}%)")
        plots.update_shift_figure(self._fig, image, shifted, before, after, shifted1, shifted2,
                                  limits=(plots._limit(maps1), plots._limit(maps2)), title=title)
        # Equivariance: the shifted digit's maps against the original maps shifted the same way.
        # Layer 2 works at half resolution, so the digit's w pixels are w / 2 of its pixels there.
        d1 = _relative_difference(shifted1, shift_image(maps1, w, direction), w, direction, 2)
        d2 = min(_relative_difference(shifted2, shift_image(maps2, s, direction), s, direction, 3)
                 for s in {w // 2, (w + 1) // 2})
        half = f"{w // 2}" if w % 2 == 0 else f"{w / 2:g}, so neither {w // 2} nor {w // 2 + 1}"
        verdict = "prediction unchanged" if guess == moved else f"prediction changed: {guess} → {moved}"
        return (f"away from the borders, layer 1's maps differ from the original's moved {w} px by "
                f"{100 * d1:.0f}%, layer 2's (a shift of {half} px there) by {100 * d2:.0f}% · {verdict}")


def _not_while_grading(what: str) -> bool:
    if env.grading():
        print(f"({what}: not drawn while the notebook is being graded)")
        return True
    return False


def make_filter_viewer(models):
    """The filter viewer, or ``None`` (with a one-line note) while nbgrader grades."""
    return None if _not_while_grading("filter viewer") else FilterViewer(models)


def make_filter_evolution(snapshots=None, record=None, steps=None, every: int | None = None):
    """The filter evolution of a training run (the pretrained network's when ``snapshots`` is None),
    or ``None`` (with a one-line note) while nbgrader grades."""
    if _not_while_grading("filter evolution"):
        return None
    if snapshots is None:
        from .models import pretrained_history

        history = pretrained_history()
        snapshots, record, steps = history["snapshots"], history["record"], history["steps"]
    return FilterEvolution(snapshots, record, steps=steps, every=every)


def make_feature_map_explorer(model, images, labels=None):
    """The feature-map explorer, or ``None`` (with a one-line note) while nbgrader grades."""
    return None if _not_while_grading("feature-map explorer") else FeatureMapExplorer(model, images, labels)


def make_shift_explorer(model, images, labels=None, *, pixels: int = 3, direction: str = "left"):
    """The shift explorer, or ``None`` (with a one-line note) while nbgrader grades."""
    if _not_while_grading("shift explorer"):
        return None
    return ShiftExplorer(model, images, labels, pixels=pixels, direction=direction)
# ---------------------------------------------------------------- end of lesson 06


# ---------------------------------------------------------------- the instructor demo (make demo)
# A "pick a digit" classifier, and ``demo_widgets``: everything the Voilà demo shows, built from the
# pretrained network and the bundled sample, without training.


def transform_digit(image: torch.Tensor, *, rotate: float = 0.0, size: float = 1.0, noise: float = 0.0,
                    invert: bool = False, seed: int = 0) -> torch.Tensor:
    """``image`` (H, W), float in [0, 1], turned ``rotate`` degrees anticlockwise and scaled by ``size``
    about its centre (what moves in is background), with Gaussian ``noise`` of that standard deviation
    (the same noise for the same ``seed``), and black and white swapped when ``invert``."""
    import math

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


def _classifier_figure(image: torch.Tensor):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.7))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5], wspace=0.25, left=0.03, right=0.97, top=0.8,
                            bottom=0.17)
    shown = []
    for k, title in enumerate(("the digit", "what the network sees")):
        ax = fig.add_subplot(grid[0, k])
        plots._cnn_axes(ax, title, 8)
        shown.append(ax.imshow(plots._np(image), cmap="gray", vmin=0, vmax=1))
    bars, _ = plots._probability_bars(fig.add_subplot(grid[0, 2]))
    heading = fig.suptitle("", fontsize=10)
    fig.handwritten = {"original": shown[0], "seen": shown[1], "bars": bars, "title": heading,
                       "dynamic": [*shown, *bars, heading]}
    return fig


class DigitClassifier(_ImagePicker, _ModelWidget):
    """Pick a digit, then rotate it, resize it, add noise or invert it, and watch the network's answer
    (the class probabilities, the winner in red) change as you do: where does it stop reading a 7?"""

    css = "handwritten-digit-classifier"

    def __init__(self, model, images, labels=None):
        self.status = widgets.HTML()
        self.model = model
        self.images = _as_float_images(images)
        self.labels = None if labels is None else torch.as_tensor(labels)
        picker = self._make_picker(len(self.images))
        self.rotate = widgets.IntSlider(value=0, min=-90, max=90, step=5, description="rotate (°)",
                                        continuous_update=False)
        self.size = widgets.FloatSlider(value=1.0, min=0.4, max=1.6, step=0.1, description="size",
                                        readout_format=".1f", continuous_update=False)
        self.noise = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="noise",
                                         readout_format=".2f", continuous_update=False)
        self.invert = widgets.Checkbox(value=False, description="invert (white paper, black ink)", indent=False,
                                       layout=widgets.Layout(width="auto", margin="0 0 0 24px"))
        self.probabilities = torch.zeros(10)
        self._fig = _classifier_figure(self.images[0])
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
        artists = self._fig.handwritten
        artists["original"].set_data(plots._np(image))
        artists["seen"].set_data(plots._np(seen))
        try:
            self.probabilities = _probabilities(self.model, seen[None, None])
        except WidgetProblem:
            self.probabilities = torch.zeros(10)
            plots._set_bars(artists["bars"], self.probabilities)
            artists["title"].set_text("")
            raise
        if self.probabilities.numel() != 10:
            raise WidgetProblem(f"expected 10 class probabilities, got {self.probabilities.numel()}")
        text = f"image {self.index.value} · {self._describe(self.probabilities)}"
        plots._set_bars(artists["bars"], self.probabilities, self.prediction)
        artists["title"].set_text(text)
        changes = [f"rotated {self.rotate.value}°" if self.rotate.value else "",
                   f"size ×{self.size.value:.1f}" if abs(self.size.value - 1) > 1e-9 else "",
                   f"noise {self.noise.value:.2f}" if self.noise.value else "", "inverted" if self.invert.value else ""]
        changed = ", ".join(c for c in changes if c) or "unchanged"
        runner_up = int(self.probabilities.argsort(descending=True)[1])
        return (f"{text} · digit {changed} · runner-up {runner_up} "
                f"({100 * float(self.probabilities[runner_up]):.1f}%)")


def make_digit_classifier(model, images, labels=None):
    """The digit classifier, or ``None`` (with a one-line note) while nbgrader grades."""
    return None if _not_while_grading("digit classifier") else DigitClassifier(model, images, labels)


from typing import NamedTuple  # noqa: E402 - kept with the demo code it serves

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
    from .data import load_mnist
    from .models import ConvNet, load_pretrained

    mnist = load_mnist("sample", quiet=True)
    held_out = slice(1000, 1000 + n)  # the pretrained network's test digits (weights/README.md)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = ConvNet().eval()
    return DemoInputs(load_pretrained(), untrained, mnist.test_images[held_out], mnist.test_labels[held_out])


def demo_widgets(n: int = DEMO_DIGITS) -> dict:
    """Everything the instructor demo (``demo/demo.ipynb``, ``make demo``) shows, by name, in its order: the
    digit classifier, the kernel playground, the filter viewer (trained and untrained network), the filter
    evolution, the feature-map explorer and the shift explorer. (The demo notebook builds each in its own
    cell, so that Voilà shows the first while the others are being built.)"""
    net, untrained, images, labels = demo_inputs(n)
    return {
        "digit classifier": DigitClassifier(net, images, labels),
        "kernel playground": KernelPlayground(images, kernel="Sobel x"),
        "filter viewer": FilterViewer({"trained": net, "untrained": untrained}),
        "filter evolution": make_filter_evolution(),
        "feature-map explorer": FeatureMapExplorer(net, images, labels),
        "shift explorer": ShiftExplorer(net, images, labels),
    }
