"""handwritten.plots.demo, the digit classifier's picture: the digit, the digit as the network sees it, and the
class probabilities with the winner in red."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from handwritten import plots


def test_classifier_figure_shows_the_digit_twice_and_no_probabilities_yet():
    digit = torch.rand(28, 28)
    fig = plots.classifier_figure(digit)
    artists = fig.handwritten
    for name in ("original", "seen"):
        np.testing.assert_array_equal(artists[name].get_array(), digit.double().numpy())
        assert artists[name].get_clim() == (0, 1)
    assert [bar.get_width() for bar in artists["bars"]] == [0] * 10
    assert [ax.get_title() for ax in fig.axes[:2]] == ["the digit", "what the network sees"]


def test_update_classifier_figure_draws_both_digits_the_bars_and_the_winner():
    digit, seen = torch.rand(28, 28), torch.rand(28, 28)
    probs = torch.softmax(torch.arange(10.0), 0)
    fig = plots.classifier_figure(digit)
    plots.update_classifier_figure(fig, digit, seen, probs, winner=9, title="a nine")
    artists = fig.handwritten
    np.testing.assert_array_equal(artists["seen"].get_array(), seen.double().numpy())
    assert [bar.get_width() for bar in artists["bars"]] == pytest.approx(probs.tolist())
    assert [bar.get_facecolor() for bar in artists["bars"]] == [to_rgba("tab:blue")] * 9 + [to_rgba("tab:red")]
    assert artists["title"].get_text() == "a nine"
    plots.update_classifier_figure(fig, digit, seen, torch.zeros(10))  # no winner: the colours stay
    assert [bar.get_width() for bar in artists["bars"]] == [0] * 10
    assert artists["bars"][9].get_facecolor() == to_rgba("tab:red") and artists["title"].get_text() == ""
