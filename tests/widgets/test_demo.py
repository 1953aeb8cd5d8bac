"""handwritten.widgets.demo, headless: the digit classifier and its digit transforms (read back from the
picture's artists), and the demo's inputs and widgets. (The demo notebook itself: tests/test_demo.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from handwritten import widgets

CLASSES = ["handwritten-digit-canvas", "handwritten-digit-classifier", "handwritten-kernel-playground",
           "handwritten-filter-viewer", "handwritten-filter-evolution", "handwritten-feature-map-explorer",
           "handwritten-shift-explorer"]


def bar() -> torch.Tensor:
    x = torch.zeros(28, 28)
    x[2:5, 8:20] = 1  # a horizontal bar near the top
    return x


def test_transform_digit_rotates_anticlockwise_resizes_adds_noise_and_inverts():
    rows = lambda t: t.sum(1).nonzero().flatten().tolist()  # noqa: E731
    cols = lambda t: t.sum(0).nonzero().flatten().tolist()  # noqa: E731
    assert torch.equal(widgets.transform_digit(bar()), bar())
    turned = widgets.transform_digit(bar(), rotate=90)  # the top goes to the left
    assert max(cols(turned)) < 6 and 8 <= min(rows(turned))
    assert max(rows(widgets.transform_digit(bar(), size=0.5))) < 12  # towards the centre, thinner
    noisy = widgets.transform_digit(bar(), noise=0.3, seed=4)
    assert torch.equal(noisy, widgets.transform_digit(bar(), noise=0.3, seed=4))
    assert 0 <= noisy.min() <= noisy.max() <= 1
    assert not torch.equal(noisy, widgets.transform_digit(bar(), noise=0.3, seed=5))
    assert torch.equal(widgets.transform_digit(bar(), invert=True), 1 - bar())


@pytest.fixture(scope="module")
def inputs():
    return widgets.demo_inputs(40)


def drawn(classifier, name: str) -> np.ndarray:
    return np.asarray(classifier._fig.handwritten[name].get_array())


def test_classifier_draws_the_digit_what_the_network_sees_and_its_answer(inputs):
    net, _, images, labels = inputs
    classifier = widgets.DigitClassifier(net, images, labels)
    classifier.rotate.value = 30
    classifier.invert.value = True
    digit = images[0].float() / 255
    seen = widgets.transform_digit(digit, rotate=30, invert=True)
    np.testing.assert_allclose(drawn(classifier, "original"), digit.double().numpy())
    np.testing.assert_allclose(drawn(classifier, "seen"), seen.double().numpy())
    with torch.no_grad():
        probs = torch.softmax(net(seen[None, None]).double(), 1)[0]
    bars = classifier._fig.handwritten["bars"]
    assert [b.get_width() for b in bars] == pytest.approx(probs.tolist(), abs=1e-6)
    winner = int(probs.argmax())
    assert classifier.prediction == winner
    assert [b.get_facecolor() for b in bars] == [to_rgba("tab:red" if c == winner else "tab:blue") for c in range(10)]
    assert classifier._fig.handwritten["title"].get_text().startswith(f"image 0 · label {int(labels[0])} · "
                                                                      f"prediction {winner}")


def test_classifier_answers_and_answers_again(inputs):
    net, _, images, labels = inputs
    classifier = widgets.DigitClassifier(net, images, labels)
    answers = []
    for i in range(20):
        classifier.index.value = i
        assert f"image {i} · label {int(labels[i])} · prediction {classifier.prediction}" in classifier.status.value
        answers.append(classifier.prediction)
    assert sum(a == int(y) for a, y in zip(answers, labels[:20])) >= 18  # held-out digits, 3.6% test error
    before = bytes(classifier.image.value)
    classifier.rotate.value = 90
    assert "rotated 90°" in classifier.status.value and bytes(classifier.image.value) != before
    classifier.invert.value = True
    assert "inverted" in classifier.status.value
    assert all(not w.continuous_update for w in (classifier.index, classifier.rotate, classifier.size,
                                                 classifier.noise))


def test_classifier_reports_a_broken_model_and_stays(inputs):
    _, _, images, labels = inputs

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("no")

    classifier = widgets.DigitClassifier(Broken(), images, labels)
    assert classifier.status.value.startswith("⚠ the model raised ValueError: no")
    assert bytes(classifier.image.value).startswith(b"\x89PNG")
    assert [b.get_width() for b in classifier._fig.handwritten["bars"]] == [0] * 10  # no answer drawn
    np.testing.assert_allclose(drawn(classifier, "original"), images[0].double().numpy() / 255)


def test_demo_inputs_are_the_pretrained_network_an_untrained_one_and_held_out_digits():
    net, untrained, images, labels = widgets.demo_inputs(10)
    assert images.shape == (10, 28, 28) and labels.shape == (10,) and not net.training
    assert not torch.equal(net.conv1.weight, untrained.conv1.weight)
    assert torch.equal(untrained.conv1.weight, widgets.demo_inputs(3).untrained.conv1.weight)  # seed 0, always


def test_demo_widgets_builds_all_seven_from_held_out_digits():
    parts = widgets.demo_widgets(n=10)
    assert [w._dom_classes[-1] for w in parts.values()] == CLASSES
    assert all(bytes(w.image.value).startswith(b"\x89PNG") for w in parts.values())
    assert parts["shift explorer"].index.max == parts["digit classifier"].index.max == 9
