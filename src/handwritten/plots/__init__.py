"""Pictures: pure functions that take tensors and return a matplotlib ``Figure``, one module per lesson.

Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so they hold no global state and work the
same in a notebook, a widget, a test or a headless grader. In a notebook, a returned figure displays itself.

Colour conventions: images in grey; signed things (kernels, correlation outputs, weights) in the diverging
``RdBu_r`` map with limits symmetric around zero, so white always means 0; feature maps (ReLU outputs, >= 0)
in ``viridis`` from 0.

==============  ======  ==================================================================================
module          lesson  what it draws
==============  ======  ==================================================================================
``common``      all     ``heatmap``, ``image_grid``, ``loss_curves``, ``metric_curves``, ``timings``;
                        ``to_png`` and the widgets' ``fast_png``
``pixels``      01      ``pixel_table``
``descent``     02      ``plot_function``, ``speed_fits``, the learning-rate explorer's ``descent_figure``
``training``    03, 05  ``training_history`` (what ``fit`` returned), ``race_figure``
``kernels``     04      the kernel playground's ``kernel_figure``
``inside_cnn``  06      the four widgets' figures (filters, their evolution, feature maps, shifts),
                        ``mosaic``, ``error_curves``, ``accuracy_by_shift``
``demo``        demo    the digit classifier's ``classifier_figure``
==============  ======  ==================================================================================

Every name is used from here (``plots.heatmap``); its module, and matplotlib, are imported the first time
one of its names is, so that ``from handwritten import plots`` in a lesson's first cell costs nothing.
"""

from __future__ import annotations

import sys

from ._lazy import lazy_exports

_HOMES = {
    "common": ("heatmap", "image_grid", "loss_curves", "metric_curves", "timings", "to_png", "fast_png"),
    "pixels": ("pixel_table",),
    "descent": ("plot_function", "speed_fits", "descent_figure", "update_descent_figure"),
    "training": ("training_history", "race_figure"),
    "kernels": ("kernel_figure", "update_kernel_figure"),
    "inside_cnn": ("mosaic", "filter_figure", "update_filter_figure", "evolution_figure", "update_evolution_figure",
                   "feature_map_figure", "update_feature_map_figure", "shift_figure", "update_shift_figure",
                   "error_curves", "accuracy_by_shift"),
    "demo": ("classifier_figure", "update_classifier_figure"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)


def _figure_png(fig) -> bytes:
    from .common import to_png

    return to_png(fig, dpi=100, bbox_inches="tight")


def _show_figures_in_notebooks() -> None:
    """Make a returned Figure display as a picture, as pyplot's figures do. (IPython only learns to draw
    figures when pyplot is imported, and these are built without pyplot.) The formatter is registered by the
    class's name, so that matplotlib is imported with the first figure, not here; where IPython is not loaded
    there is no notebook to show figures in."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", _figure_png)


_show_figures_in_notebooks()
