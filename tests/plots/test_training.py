"""handwritten.plots.training: what ``fit`` returned (lesson 03) and lesson 05's race, read back from their
artists."""

from __future__ import annotations

from handwritten import plots


def history(*losses):
    return [{"train_loss": t, "valid_loss": v, "valid_accuracy": a} for t, v, a in losses]


def test_training_history_draws_each_runs_losses_and_accuracy_in_its_colour():
    runs = {"sgd": history((1.0, 0.9, 0.5), (0.5, 0.6, 0.8)), "adam": history((0.8, 0.7, 0.6))}
    fig = plots.training_history(runs, title="two runs")
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["sgd: training", "sgd: validation", "adam: training",
                                                            "adam: validation"]
    train, valid = loss_ax.lines[:2]
    assert list(train.get_xdata()) == [1, 2] and list(train.get_ydata()) == [1.0, 0.5]
    assert list(valid.get_ydata()) == [0.9, 0.6]
    assert train.get_linestyle() == "--" and valid.get_linestyle() == "-"
    assert train.get_color() == valid.get_color() == acc_ax.lines[0].get_color() == "C0"
    assert loss_ax.lines[2].get_color() == acc_ax.lines[1].get_color() == "C1"
    assert list(acc_ax.lines[0].get_ydata()) == [0.5, 0.8] and list(acc_ax.lines[1].get_ydata()) == [0.6]
    assert [text.get_text() for text in acc_ax.get_legend().get_texts()] == ["sgd", "adam"]
    assert fig.get_suptitle() == "two runs"


def test_training_history_of_one_run():
    loss_ax, acc_ax = plots.training_history(history((1.0, 0.9, 0.5))).axes
    assert [line.get_label() for line in loss_ax.lines] == ["training", "validation"]
    assert acc_ax.get_legend() is None


def test_race_figure_draws_accuracy_against_time_and_the_target():
    fig = plots.race_figure({"slow": [(0, 0.1), (2.0, 0.3)], "fast": [(0, 0.1), (0.2, 0.35)]}, target=0.3,
                            title="race")
    ax = fig.axes[0]
    slow, fast, target = ax.lines
    assert list(slow.get_xdata()) == [0.0, 2.0] and list(slow.get_ydata()) == [0.1, 0.3]
    assert list(fast.get_xdata()) == [0.0, 0.2] and list(fast.get_ydata()) == [0.1, 0.35]
    assert list(target.get_ydata()) == [0.3, 0.3] and target.get_linestyle() == "--"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["slow", "fast", "target 0.300"]
    assert ax.get_ylim() == (0, 1) and ax.get_title() == "race"
    assert len(plots.race_figure({"a": [(0, 0.5)]}).axes[0].lines) == 1  # no target, no line
