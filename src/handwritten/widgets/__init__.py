"""Interactive widgets: thin ipywidgets wiring over ``handwritten.plots``, one module per lesson.

Each widget renders into a ``widgets.Image`` (PNG bytes), so it works in JupyterLab, in Voilà, and in a plain
Python test (set a control's ``.value``, read the image's ``.value``). A lesson shows a widget with its
``make_*`` function (``make``): while nbgrader grades the notebook, that draws nothing, prints one line and
returns None (``@not_while_grading``). A widget that runs one of the course's answers (``corr2d``,
``apply_step``, ``shift_image``) takes it from ``handwritten.reference``, and can run the student's instead.

==============  ========  ================================================================================
module          lessons   what it holds
==============  ========  ================================================================================
``make``        all       every ``make_*``, and ``not_while_grading``
``common``      06, demo  what the widgets that show a model share: a redraw that never raises, the image
                          picker, ``WidgetProblem``
``descent``     02        ``LearningRateExplorer``, ``quadratic_descent``
``kernels``     04        ``KernelPlayground``, its preset ``KERNELS``
``inside_cnn``  06        ``FilterViewer``, ``FilterEvolution``, ``FeatureMapExplorer``, ``ShiftExplorer``
``canvas``      06, demo  ``DigitCanvas`` (draw a digit: the network's answer and feature maps),
                          ``strokes_to_image``
``demo``        demo      ``DigitClassifier``, ``transform_digit``, ``demo_inputs``, ``demo_widgets``
==============  ========  ================================================================================

Every name is used from here (``widgets.make_kernel_playground``); its module is imported the first time one
of its names is, so that ``from handwritten import widgets`` in a lesson's first cell costs nothing, and a
graded notebook, whose ``make_*`` draw nothing, never imports ipywidgets.
"""

from __future__ import annotations

from ..plots._lazy import lazy_exports

_HOMES = {
    "make": ("not_while_grading", "make_learning_rate_explorer", "make_kernel_playground", "make_filter_viewer",
             "make_filter_evolution", "make_feature_map_explorer", "make_shift_explorer", "make_digit_classifier",
             "make_digit_canvas"),
    "common": ("WidgetProblem",),
    "descent": ("LearningRateExplorer", "quadratic_descent"),
    "kernels": ("KERNELS", "KernelPlayground"),
    "inside_cnn": ("FilterViewer", "FilterEvolution", "FeatureMapExplorer", "ShiftExplorer", "shift_image",
                   "SHIFT_DIRECTIONS"),
    "canvas": ("DigitCanvas", "strokes_to_image"),
    "demo": ("DigitClassifier", "transform_digit", "DEMO_DIGITS", "DemoInputs", "demo_inputs", "demo_widgets"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
