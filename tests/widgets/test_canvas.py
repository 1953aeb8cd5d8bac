"""handwritten.widgets.canvas, headless: strokes become an image (``strokes_to_image``), and ``DigitCanvas``, fed
mouse events as ipycanvas delivers them from the browser, prepares the drawing as MNIST's digits were
(``as_mnist``), classifies it and draws its feature maps, the same picture the feature-map explorer draws for that
digit. (In a real browser: tests/test_browser_inside_cnn.py and tests/test_browser_demo.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handwritten import models, widgets
from handwritten.reference.inside_cnn import as_mnist

ONE = [[(112, 30 + 8 * k) for k in range(21)]]  # a vertical stroke down the middle
ZERO = [[(112 + 60 * math.sin(2 * math.pi * k / 40), 112 - 80 * math.cos(2 * math.pi * k / 40)) for k in range(41)]]
SEVEN = [[(50, 40), (180, 40), (100, 200)]]


@pytest.fixture(scope="module")
def net():
    return models.load_pretrained()


def send(canvas, event: str, x: float, y: float) -> None:
    """A mouse event as the browser sends it to the ipycanvas widget."""
    canvas._handle_frontend_event(None, {"event": event, "x": x, "y": y}, [])


def drag(canvas, stroke) -> None:
    send(canvas, "mouse_down", *stroke[0])
    for point in stroke[1:]:
        send(canvas, "mouse_move", *point)
    send(canvas, "mouse_up", *stroke[-1])


def drawn(widget, name: str) -> np.ndarray:
    return np.ma.filled(widget._fig.handwritten[name].get_array(), np.nan)


# ---------------------------------------------------------------- strokes_to_image


def test_nothing_drawn_is_a_blank_image():
    assert torch.equal(widgets.strokes_to_image([], size=40, scale=2), torch.zeros(20, 20))
    assert torch.equal(widgets.strokes_to_image([[]], size=40, scale=2), torch.zeros(20, 20))


def test_a_dot_is_a_disc_of_the_pen_s_width():
    image = widgets.strokes_to_image([[(50, 50)]], size=100, pen=20, scale=1)
    assert image[50, 50] == image[50, 58] == 1 and 0.9 < image[50, 59] < 1 and image[50, 60] == image[38, 50] == 0
    assert float(image.sum()) == pytest.approx(math.pi * 10**2, rel=0.03)  # anti-aliased edge: area kept
    assert torch.equal(image, image.flip(0)) and torch.equal(image, image.T)  # round, centred on (50, 50)


def test_a_stroke_is_inked_within_half_the_pen_of_its_segments_only():
    image = widgets.strokes_to_image([[(10, 20), (80, 20), (80, 90)]], size=100, pen=8, scale=1)
    assert image[20, 10:81].min() == 1 and image[20:91, 80].min() == 1  # along both segments
    assert image[14:26, 40].tolist() == [0.0] * 2 + [1.0] * 8 + [0.0] * 2  # pixel centres 0.5 to 3.5 px from it
    assert float(image[30:, :70].sum()) == 0 and float(image[:10].sum()) == 0  # nothing away from it
    half = widgets.strokes_to_image([[(10, 20), (80, 20), (80, 90)]], size=100, pen=8, scale=2)
    assert half.shape == (50, 50) and half[10, 20] == 1 and float(half[20:, :30].sum()) == 0


def test_a_long_scribble_is_drawn_whole():
    # more segments than one chunk (256): the last ones, far from the first, must be inked too
    scribble = [[(20 + (k % 2) * 10, 20) for k in range(300)] + [(180, 180)]]
    image = widgets.strokes_to_image(scribble, size=200, pen=10, scale=1)
    assert image[20, 25] == 1 and image[180, 180] == 1 and image[100, 100] == 1  # the last segment crosses the middle


# ---------------------------------------------------------------- DigitCanvas


def test_the_canvas_starts_blank_and_says_so(net):
    pad = widgets.DigitCanvas(net)
    assert pad.status.value.startswith("Nothing drawn yet") and pad.prediction is None
    assert bytes(pad.image.value).startswith(b"\x89PNG") and float(pad.digit.sum()) == 0
    assert pad._dom_classes[-1] == "handwritten-digit-canvas"


def test_mouse_strokes_are_prepared_as_mnist_classified_and_their_maps_drawn(net):
    pad = widgets.DigitCanvas(net)
    blank = bytes(pad.image.value)
    drag(pad.canvas, ONE[0])
    assert pad.strokes == [[(float(x), float(y)) for x, y in ONE[0]]]
    digit = as_mnist(widgets.strokes_to_image(ONE))
    assert torch.equal(pad.digit, digit) and digit.shape == (28, 28) and float(digit.max()) == 1
    assert pad.prediction == 1 and "your digit · prediction 1 (" in pad.status.value and "1 stroke" in pad.status.value
    one = bytes(pad.image.value)
    assert one != blank

    # the picture is the feature-map explorer's for the same 28x28 digit: its maps, its probabilities
    explorer = widgets.FeatureMapExplorer(net, digit[None])
    for name in ("image", "layer1", "layer2"):
        np.testing.assert_array_equal(drawn(pad, name), drawn(explorer, name))
    with torch.no_grad():
        probs = torch.softmax(net(digit[None, None]).double(), 1)[0]
    assert [b.get_width() for b in pad._fig.handwritten["bars"]] == pytest.approx(probs.tolist(), abs=1e-9)

    # moving without pressing draws nothing; the next stroke changes the digit, the answer and the maps
    send(pad.canvas, "mouse_move", 10, 10)
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == len(ONE[0])
    maps_of_one = drawn(pad, "layer1")
    pad.clear()
    assert pad.strokes == [] and pad.status.value.startswith("Nothing drawn yet") and bytes(pad.image.value) == blank
    drag(pad.canvas, ZERO[0])
    assert pad.prediction == 0 and "prediction 0 (" in pad.status.value
    assert not np.array_equal(drawn(pad, "layer1"), maps_of_one, equal_nan=True)
    assert bytes(pad.image.value) not in (blank, one)


def test_a_stroke_that_leaves_the_box_ends_there_and_touch_draws_too(net):
    pad = widgets.DigitCanvas(net)
    send(pad.canvas, "mouse_down", 50, 40)
    send(pad.canvas, "mouse_move", 180, 40)
    send(pad.canvas, "mouse_out", 230, 40)
    assert pad.strokes == [[(50.0, 40.0), (180.0, 40.0)]] and "1 stroke" in pad.status.value
    send(pad.canvas, "mouse_move", 100, 200)  # the button is up again outside: no ink
    assert len(pad.strokes) == 1
    touches = lambda event, x, y: pad.canvas._handle_frontend_event(  # noqa: E731
        None, {"event": event, "touches": [{"x": x, "y": y}]}, [])
    touches("touch_start", 180, 40)
    touches("touch_move", 100, 200)
    touches("touch_end", 100, 200)
    assert pad.strokes[1] == [(180.0, 40.0), (100.0, 200.0)] and "2 strokes" in pad.status.value
    assert pad.prediction == 7  # the two strokes make a 7


def test_the_answer_is_redrawn_while_a_stroke_is_drawn_at_most_every_live_every_seconds(net):
    eager, patient = widgets.DigitCanvas(net, live_every=0), widgets.DigitCanvas(net, live_every=3600)
    for pad in (eager, patient):
        send(pad.canvas, "mouse_down", *ONE[0][0])
        for point in ONE[0][1:]:
            send(pad.canvas, "mouse_move", *point)
    assert "prediction 1 (" in eager.status.value and torch.equal(eager.digit, as_mnist(widgets.strokes_to_image(ONE)))
    assert patient.status.value.startswith("Nothing drawn yet")  # not yet: it waits for the stroke's end
    send(patient.canvas, "mouse_up", *ONE[0][-1])
    assert patient.status.value == eager.status.value


def test_the_same_drawing_draw_gives_the_same_answer_as_the_mouse(net):
    by_mouse, by_draw = widgets.DigitCanvas(net), widgets.DigitCanvas(net)
    drag(by_mouse.canvas, SEVEN[0])
    by_draw.draw(SEVEN)
    assert by_draw.strokes == by_mouse.strokes and torch.equal(by_draw.digit, by_mouse.digit)
    assert by_draw.status.value == by_mouse.status.value and by_draw.prediction == 7


def test_a_broken_model_is_reported_and_the_canvas_stays():
    class NoFeatures(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(1, 10)

    pad = widgets.DigitCanvas(NoFeatures())
    pad.draw(ONE)
    assert pad.status.value.startswith("⚠ NoFeatures has no retrieve_features(x) method")
    assert bytes(pad.image.value).startswith(b"\x89PNG")
    assert [b.get_width() for b in pad._fig.handwritten["bars"]] == [0] * 10  # no answer drawn
    np.testing.assert_array_equal(drawn(pad, "image"), pad.digit.numpy())  # the prepared drawing is still shown
