"""handwritten.widgets.make: every ``make_*`` builds its widget, except while nbgrader grades the notebook: then
it prints one line, returns None, and imports neither ipywidgets, ipycanvas nor matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from handwritten import models, widgets
from handwritten.data import load_mnist


@pytest.fixture(scope="module")
def args():
    """For each make_*: its arguments, and the class of the widget it builds."""
    mnist = load_mnist("sample", quiet=True)
    images, labels = mnist.test_images[:5], mnist.test_labels[:5]
    net = models.load_pretrained()
    time = torch.arange(0, 20).float()
    return {
        "make_learning_rate_explorer": ((time, 0.75 * (time - 9.5) ** 2, torch.zeros(3)), widgets.LearningRateExplorer),
        "make_kernel_playground": ((images,), widgets.KernelPlayground),
        "make_filter_viewer": ((net,), widgets.FilterViewer),
        "make_filter_evolution": ((), widgets.FilterEvolution),
        "make_feature_map_explorer": ((net, images, labels), widgets.FeatureMapExplorer),
        "make_shift_explorer": ((net, images, labels), widgets.ShiftExplorer),
        "make_digit_classifier": ((net, images, labels), widgets.DigitClassifier),
        "make_digit_canvas": ((net,), widgets.DigitCanvas),
    }


WHAT = {"make_learning_rate_explorer": "learning-rate explorer", "make_kernel_playground": "kernel playground",
        "make_filter_viewer": "filter viewer", "make_filter_evolution": "filter evolution",
        "make_feature_map_explorer": "feature-map explorer", "make_shift_explorer": "shift explorer",
        "make_digit_classifier": "digit classifier", "make_digit_canvas": "digit canvas"}


def test_every_make_is_here():
    assert sorted(WHAT) == sorted(name for name in widgets.__all__ if name.startswith("make_"))


@pytest.mark.parametrize("name", WHAT)
def test_make_builds_its_widget_or_says_one_line_while_grading(name, args, monkeypatch, capsys):
    arguments, cls = args[name]
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert getattr(widgets, name)(*arguments) is None
    assert capsys.readouterr().out == f"({WHAT[name]}: not drawn while the notebook is being graded)\n"
    monkeypatch.delenv("NBGRADER_EXECUTION")
    widget = getattr(widgets, name)(*arguments)
    assert type(widget) is cls and bytes(widget.image.value).startswith(b"\x89PNG")
    assert capsys.readouterr().out == ""


def test_not_while_grading_passes_everything_through_or_calls_nothing(monkeypatch, capsys):
    calls = []

    @widgets.not_while_grading("a picture")
    def make_picture(a, *, b=2):
        """Docs."""
        calls.append((a, b))
        return "drawn"

    assert make_picture.__name__ == "make_picture" and make_picture.__doc__ == "Docs."
    assert make_picture(1, b=3) == "drawn" and calls == [(1, 3)]
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    assert make_picture(1) is None and calls == [(1, 3)]
    assert capsys.readouterr().out == "(a picture: not drawn while the notebook is being graded)\n"


def test_a_graded_notebook_never_imports_ipywidgets_or_matplotlib():
    code = """
import sys, torch
from handwritten import widgets
x = torch.zeros(3, 28, 28)
made = [widgets.make_learning_rate_explorer(x[0, 0], x[0, 0], torch.zeros(3)), widgets.make_kernel_playground(x),
        widgets.make_filter_viewer(None), widgets.make_filter_evolution(), widgets.make_feature_map_explorer(None, x),
        widgets.make_shift_explorer(None, x), widgets.make_digit_classifier(None, x), widgets.make_digit_canvas(None)]
assert made == [None] * 8, made
print(sorted(m for m in ("ipywidgets", "ipycanvas", "matplotlib") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NBGRADER_EXECUTION": "autograde"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 9 and all("not drawn while the notebook is being graded" in line for line in lines[:8])
    assert lines[-1] == "[]"
