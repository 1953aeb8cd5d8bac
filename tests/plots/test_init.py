"""handwritten.plots itself: in IPython, a returned figure displays as a picture, without pyplot."""

from __future__ import annotations

import io
import sys

import pytest
from matplotlib.figure import Figure
from PIL import Image

from handwritten import plots


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def test_a_figure_displays_as_a_png_in_ipython(shell):
    fig = Figure(figsize=(2, 1))
    assert "image/png" not in shell.display_formatter.format(fig)[0]  # IPython alone does not draw figures
    plots._show_figures_in_notebooks()  # what importing handwritten.plots in a kernel does
    png = shell.display_formatter.format(fig)[0]["image/png"]
    assert Image.open(io.BytesIO(png)).size == (220, 120)  # 100 dpi, trimmed to a margin of 0.1 inch


def test_outside_ipython_nothing_is_registered(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    plots._show_figures_in_notebooks()  # no IPython loaded: no shell, nothing to do, nothing imported
    assert "IPython" not in sys.modules
