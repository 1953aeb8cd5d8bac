"""Your own handwriting: ``DigitCanvas``, a box to draw a digit in with the mouse (or a finger), and what the
network makes of it. The drawing is prepared the way MNIST's digits were (``reference.as_mnist``: cropped to its
ink, scaled into a 20x20 box, centred by its mass in 28x28), then classified, with the feature maps of both
convolutional layers, live: while a stroke is drawn (at most every ``live_every`` seconds) and when it ends. The
box is an ipycanvas ``Canvas``; the strokes are kept here, in Python, as lists of points, and turned into an image
by ``strokes_to_image``."""

from __future__ import annotations

import time

import ipywidgets as widgets
import torch
from ipycanvas import Canvas, hold_canvas

from ..plots.inside_cnn import feature_map_figure, update_feature_map_figure
from ..reference.inside_cnn import as_mnist
from .common import WidgetProblem, _ModelWidget, _probabilities
from .inside_cnn import _blank_maps, _features

Point = tuple[float, float]


def strokes_to_image(strokes: list[list[Point]], size: int = 224, pen: float = 16.0, scale: int = 2) -> torch.Tensor:
    """The strokes drawn on a ``size`` x ``size`` canvas (each a list of (x, y) points in its pixels, a single
    point being a dot) as an image of ``size // scale`` pixels a side: ink 1 within ``pen / 2`` of a stroke,
    0 away from it, anti-aliased over one pixel between. Line segments with round ends and joins, as the
    canvas draws them."""
    n = size // scale
    image = torch.zeros(n, n)
    segments = [(a, b) for stroke in strokes if stroke for a, b in zip(stroke, stroke[1:] or stroke)]
    if not segments:
        return image
    centres = (torch.arange(n, dtype=torch.float32) + 0.5) * scale
    p = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 1, 2)  # (pixels, 1, xy)
    radius = pen / 2 / scale
    for start in range(0, len(segments), 256):  # bounded memory however long the scribble
        ab = torch.tensor(segments[start:start + 256], dtype=torch.float32)  # (segments, 2 ends, xy)
        a, d = ab[:, 0], ab[:, 1] - ab[:, 0]
        t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-9)).clamp(0, 1)  # nearest point on each segment
        distance = (p - (a + t[..., None] * d)).norm(dim=-1).min(1).values / scale
        ink = (radius + 0.5 - distance).clamp(0, 1).reshape(n, n)
        image = torch.maximum(image, ink)
    return image


class DigitCanvas(_ModelWidget):
    """Draw a digit in the box and the network answers as you draw: the digit as it sees it (prepared the way
    MNIST's digits were), the 4 feature maps of its first layer, the 8 of its second, and its class
    probabilities. Draw more strokes to change the digit, or clear it and start again. While a stroke is drawn
    the answer is redrawn at most every ``live_every`` seconds (a redraw takes the kernel some 50 ms, and mouse
    moves wait behind it), and always when the stroke ends."""

    css = "handwritten-digit-canvas"

    def __init__(self, model, *, size: int = 224, pen: float = 16.0, live_every: float = 0.25):
        self.model, self.size, self.pen, self.live_every = model, size, pen, live_every
        self._redrawn = 0.0
        self.strokes: list[list[Point]] = []
        self._drawing = False
        self.canvas = Canvas(width=size, height=size, layout=widgets.Layout(
            width=f"{size}px", height=f"{size}px", border="1px solid #888", flex="0 0 auto"))
        self.canvas.on_mouse_down(self._pen_down)
        self.canvas.on_mouse_move(self._pen_move)
        self.canvas.on_mouse_up(self._pen_up)
        self.canvas.on_mouse_out(self._pen_up)  # a stroke that leaves the box ends there
        self.canvas.on_touch_start(lambda touches: self._pen_down(*touches[0]))
        self.canvas.on_touch_move(lambda touches: self._pen_move(*touches[0]))
        self.canvas.on_touch_end(lambda touches: self._pen_up())
        self.clear_button = widgets.Button(description="clear", icon="eraser", layout=widgets.Layout(width="100px"))
        self.clear_button.on_click(lambda button: self.clear())
        self._blank_canvas()
        self.digit = torch.zeros(28, 28)
        self._fig = feature_map_figure(self.digit, *_blank_maps(self.digit), torch.zeros(10))
        hint = widgets.HTML("Draw one digit, as large as the box allows.<br>The network answers as you draw.")
        side = widgets.VBox([hint, self.clear_button], layout=widgets.Layout(margin="0 0 0 12px"))
        self._finish([widgets.HBox([self.canvas, side])])
        self.redraw()

    def _blank_canvas(self):
        with hold_canvas():  # one message for the lot
            self.canvas.clear()
            self.canvas.fill_style = "white"
            self.canvas.fill_rect(0, 0, self.size, self.size)
            self.canvas.stroke_style = self.canvas.fill_style = "black"
            self.canvas.line_width = self.pen
            self.canvas.line_cap = self.canvas.line_join = "round"

    def _pen_down(self, x, y, *_):
        self._drawing = True
        self.strokes.append([(float(x), float(y))])
        self.canvas.fill_circle(x, y, self.pen / 2)

    def _pen_move(self, x, y, *_):
        if self._drawing:
            (x0, y0), point = self.strokes[-1][-1], (float(x), float(y))
            self.strokes[-1].append(point)
            self.canvas.stroke_line(x0, y0, *point)
            if time.perf_counter() - self._redrawn >= self.live_every:
                self.redraw()

    def _pen_up(self, *_):
        if self._drawing:
            self._drawing = False
            self.redraw()

    def redraw(self):
        super().redraw()
        self._redrawn = time.perf_counter()

    def clear(self):
        """Wipe the drawing and the network's answer."""
        self.strokes, self._drawing = [], False
        self._blank_canvas()
        self.redraw()

    def draw(self, strokes: list[list[Point]]):
        """Draw ``strokes`` (each a list of (x, y) points in the canvas's pixels) as a hand would, then answer."""
        for stroke in strokes:
            self._pen_down(*stroke[0])
            for point in stroke[1:]:
                self._pen_move(*point)
            self._pen_up()

    def _draw(self):
        self.digit = as_mnist(strokes_to_image(self.strokes, self.size, self.pen))
        x = self.digit[None, None]
        if not self.strokes:
            update_feature_map_figure(self._fig, self.digit, *_blank_maps(self.digit), torch.zeros(10))
            return "Nothing drawn yet: draw a digit in the box with the mouse."
        try:
            maps1, maps2 = _features(self.model, x)
            probs = _probabilities(self.model, x)
            if maps1.shape[0] != 4 or maps2.shape[0] != 8 or probs.numel() != 10:
                raise WidgetProblem(f"expected 4 and 8 feature maps and 10 classes, got {maps1.shape[0]}, "
                                    f"{maps2.shape[0]} and {probs.numel()}")
        except WidgetProblem:
            update_feature_map_figure(self._fig, self.digit, *_blank_maps(self.digit), torch.zeros(10))
            raise
        guess, runner_up = (int(k) for k in probs.argsort(descending=True)[:2])
        text = f"your digit · prediction {guess} ({100 * float(probs[guess]):.1f}%)"
        update_feature_map_figure(self._fig, self.digit, maps1, maps2, probs, title=text)
        strokes = f"{len(self.strokes)} stroke{'s' * (len(self.strokes) != 1)}"
        return f"{text} · runner-up {runner_up} ({100 * float(probs[runner_up]):.1f}%) · {strokes}"

    @property
    def prediction(self) -> int | None:
        """The network's answer for the drawing; None while nothing is drawn."""
        if not self.strokes:
            return None
        return int(_probabilities(self.model, self.digit[None, None]).argmax())
