"""How long lesson 06's widgets take to redraw after a control changes, or the canvas after a stroke ends (budget:
REDRAW_LIMIT seconds).

    uv run --frozen python benchmarks/widget_redraw.py

`widget_redraw_seconds()` builds each widget headless, with the pretrained network and the bundled
sample's test digits, moves its main control through several values, and returns for each widget the
best time of one redraw, in seconds: from setting the control's value to the new PNG being in the widget
(the model's forward pass, the figure update and the PNG encoding). The best of several runs is what the
code costs; the others add whatever else the machine was doing.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("HANDWRITTEN_DATA", "sample")

REDRAW_LIMIT = 0.15  # seconds per redraw


def _best(widget, control, values) -> float:
    best = float("inf")
    for value in values:
        start = time.perf_counter()
        control.value = value
        best = min(best, time.perf_counter() - start)
        assert bytes(widget.image.value).startswith(b"\x89PNG"), widget.status.value
    return best


def _best_stroke(pad, repeat: int) -> float:
    """The digit canvas: from the mouse released at the end of a stroke to the new PNG (the strokes made an image,
    prepared as MNIST's digits were, classified, their feature maps drawn)."""
    best = float("inf")
    for k in range(repeat):
        pad.clear()
        pad.canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 112 + k, "y": 40}, [])
        for y in range(48, 200, 8):
            pad.canvas._handle_frontend_event(None, {"event": "mouse_move", "x": 112 + k, "y": y}, [])
        start = time.perf_counter()
        pad.canvas._handle_frontend_event(None, {"event": "mouse_up", "x": 112 + k, "y": 192}, [])
        best = min(best, time.perf_counter() - start)
        assert "prediction" in pad.status.value, pad.status.value
    return best


def widget_redraw_seconds(repeat: int = 7) -> dict[str, float]:
    """{widget name: best seconds per redraw} for the filter viewer, the filter evolution, the
    feature-map explorer, the shift explorer and the digit canvas (a stroke ended)."""
    import torch

    from handwritten import models, widgets
    from handwritten.data import load_mnist

    torch.set_num_threads(1)
    mnist = load_mnist(quiet=True)
    images, labels = mnist.test_images[:200], mnist.test_labels[:200]
    pretrained = models.load_pretrained()
    viewer = widgets.FilterViewer({"pretrained": pretrained, "untrained": models.ConvNet()})
    evolution = widgets.make_filter_evolution()
    features = widgets.FeatureMapExplorer(pretrained, images, labels)
    shifts = widgets.ShiftExplorer(pretrained, images, labels, pixels=0)
    alternate = [["untrained", "pretrained"][k % 2] for k in range(repeat)]
    return {
        "FilterViewer": _best(viewer, viewer.source, alternate),
        "FilterEvolution": _best(evolution, evolution.step, [1 + k % evolution.step.max for k in range(repeat)]),
        "FeatureMapExplorer": _best(features, features.index, [1 + k for k in range(repeat)]),
        "ShiftExplorer": _best(shifts, shifts.pixels, [1 + k % shifts.pixels.max for k in range(repeat)]),
        "DigitCanvas": _best_stroke(widgets.DigitCanvas(pretrained), repeat),
    }


def main() -> int:
    seconds = widget_redraw_seconds()
    over = []
    for name, value in seconds.items():
        print(f"{name + ' redraw':<40} {value * 1e3:>8.0f} ms   (limit {REDRAW_LIMIT * 1e3:.0f} ms)")
        if value > REDRAW_LIMIT:
            over.append(name)
    if over:
        print("OVER BUDGET: " + ", ".join(over))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
