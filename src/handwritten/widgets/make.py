"""What a lesson calls to show a widget: one ``make_*`` per widget, each marked ``@not_while_grading``.

While nbgrader grades a notebook there is nobody to look at a widget: a ``make_*`` then builds nothing, prints
one line and returns None. Each imports its widget's module (and with it ipywidgets and the widget's plots)
only when it builds one, so a graded notebook never loads them.
"""

from __future__ import annotations

import functools

from .. import env


def not_while_grading(what: str):
    """``@not_while_grading("kernel playground")`` on a ``make_*`` function: while nbgrader runs the notebook
    (``env.grading()``), calling it builds nothing, prints one line, ``(kernel playground: not drawn while the
    notebook is being graded)``, and returns None; otherwise it returns what the function builds."""

    def decorate(make):
        @functools.wraps(make)
        def make_unless_grading(*args, **kwargs):
            if env.grading():
                print(f"({what}: not drawn while the notebook is being graded)")
                return None
            return make(*args, **kwargs)

        return make_unless_grading

    return decorate


@not_while_grading("learning-rate explorer")
def make_learning_rate_explorer(time, speed, start, lr: float = 1e-5, steps: int = 30, apply_step=None):
    """Lesson 02's learning-rate explorer (``descent.LearningRateExplorer``)."""
    from .descent import LearningRateExplorer

    return LearningRateExplorer(time, speed, start, lr=lr, steps=steps, apply_step=apply_step)


@not_while_grading("kernel playground")
def make_kernel_playground(images, corr2d=None, kernel: str = "vertical edges [1, -1]"):
    """Lesson 04's kernel playground (``kernels.KernelPlayground``)."""
    from .kernels import KernelPlayground

    return KernelPlayground(images, corr2d=corr2d, kernel=kernel)


@not_while_grading("filter viewer")
def make_filter_viewer(models):
    """Lesson 06's filter viewer (``inside_cnn.FilterViewer``) of one model, or of several by name:
    ``{name: model}``."""
    from .inside_cnn import FilterViewer

    return FilterViewer(models)


@not_while_grading("filter evolution")
def make_filter_evolution(snapshots=None, record=None, steps=None, every: int | None = None):
    """Lesson 06's filter evolution (``inside_cnn.FilterEvolution``) of a training run; of the pretrained
    network's when ``snapshots`` is None."""
    from .inside_cnn import FilterEvolution

    if snapshots is None:
        from ..models import pretrained_history

        history = pretrained_history()
        snapshots, record, steps = history["snapshots"], history["record"], history["steps"]
    return FilterEvolution(snapshots, record, steps=steps, every=every)


@not_while_grading("feature-map explorer")
def make_feature_map_explorer(model, images, labels=None):
    """Lesson 06's feature-map explorer (``inside_cnn.FeatureMapExplorer``)."""
    from .inside_cnn import FeatureMapExplorer

    return FeatureMapExplorer(model, images, labels)


@not_while_grading("shift explorer")
def make_shift_explorer(model, images, labels=None, *, pixels: int = 3, direction: str = "left"):
    """Lesson 06's shift explorer (``inside_cnn.ShiftExplorer``)."""
    from .inside_cnn import ShiftExplorer

    return ShiftExplorer(model, images, labels, pixels=pixels, direction=direction)


@not_while_grading("digit classifier")
def make_digit_classifier(model, images, labels=None):
    """The instructor demo's digit classifier (``demo.DigitClassifier``)."""
    from .demo import DigitClassifier

    return DigitClassifier(model, images, labels)


@not_while_grading("digit canvas")
def make_digit_canvas(model):
    """Lesson 06's and the demo's canvas: draw a digit, see the network's answer and feature maps
    (``canvas.DigitCanvas``)."""
    from .canvas import DigitCanvas

    return DigitCanvas(model)
