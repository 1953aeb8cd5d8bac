"""Lesson 02, SGD from scratch: the learning-rate explorer. Gradient descent on the roller coaster's
quadratic, with the course's ``apply_step`` (``handwritten.reference.sgd``) or the student's own, at the
learning rate and for the number of steps picked."""

from __future__ import annotations

import ipywidgets as widgets
import torch

from ..plots.common import to_png
from ..plots.descent import descent_figure, update_descent_figure
from ..reference.sgd import apply_step as reference_apply_step


def quadratic_descent(time, speed, start, lr, steps, apply_step=None, blowup=1e8):
    """Run ``steps`` steps of gradient descent on the quadratic from a copy of ``start``.

    Returns ``(losses, params, diverged_at)``: the loss before each step taken; the parameters
    after the last step (after a blow-up: those of the last finite loss); and the step at which
    training blew up (its loss was inf, nan or ``blowup`` times the first one), else None.
    Training stops there, so every loss returned is a finite number worth plotting."""
    step = apply_step or reference_apply_step
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

    ``apply_step`` defaults to the course's; pass your own to watch it at work.
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
        self._fig = descent_figure(self.time, self.speed)
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
        update_descent_figure(self._fig, self.time, self.losses, self.start, self.params,
                              lr=self.lr.value, diverged_at=self.diverged_at)
        self.image.value = to_png(self._fig)
        if self.diverged_at is not None or (len(self.losses) > 1 and self.losses[-1] > self.losses[0]):
            where = f": the loss blew up at step {self.diverged_at}" if self.diverged_at else ""
            self.status.value = (f"diverging{where}. Each step overshoots the minimum by more than "
                                 f"the one before.")
        elif self.losses:
            self.status.value = (f"{len(self.losses)} steps: loss {self.losses[0]:.4g} → "
                                 f"{self.losses[-1]:.4g}")
