"""The course's training helpers for the lessons after 03 and 05 (handwritten.train): TensorBatches,
evaluate_accuracy, fit with its bar, scheduler and live plot. (Lesson 03's and 05's promise
that each refactoring trains like the first version is tests/test_equivalence.py; the models, test_models.py.)"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from handwritten import train
from handwritten.reference import torch_nn


def _problem(seed=0, n=50, n_in=6, n_classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=g)
    y = (x @ torch.randn(n_in, n_classes, generator=g)).argmax(dim=1)
    return x, y


# ---------------------------------------------------------------- TensorBatches


def test_tensor_batches_in_order_and_lengths():
    x, y = torch.arange(10.0), torch.arange(10)
    batches = train.TensorBatches(x, y, 4)
    assert len(batches) == 3
    got = list(batches)
    assert [len(xb) for xb, _ in got] == [4, 4, 2]
    assert torch.equal(torch.cat([xb for xb, _ in got]), x)
    assert list(batches)[0][1].tolist() == [0, 1, 2, 3]    # every pass starts again


def test_tensor_batches_shuffle_covers_everything_and_is_reproducible():
    x, y = torch.arange(20.0), torch.arange(20)
    one = [yb for _, yb in train.TensorBatches(x, y, 6, shuffle=True, generator=torch.Generator().manual_seed(3))]
    two = [yb for _, yb in train.TensorBatches(x, y, 6, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert sorted(torch.cat(one).tolist()) == list(range(20))
    assert torch.cat(one).tolist() != list(range(20))
    for xb, yb in train.TensorBatches(x, y, 6, shuffle=True):
        assert torch.equal(xb, yb.float())   # images and labels stay paired


def test_tensor_batches_rejects_mismatched_tensors():
    with pytest.raises(ValueError, match="10 items but y has 9"):
        train.TensorBatches(torch.zeros(10), torch.zeros(9), 2)


# ---------------------------------------------------------------- evaluate_accuracy


class _Recorder(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.net(x)


def test_evaluate_accuracy_uses_eval_mode_no_grad_and_weights_batches():
    x, y = _problem(1, n=37)
    net = _Recorder(nn.Sequential(nn.Dropout(0.9), nn.Linear(6, 3)))
    net.train()
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]
    acc = train.evaluate_accuracy(net, batches)
    with torch.no_grad():
        expected = int((net.net[1](x).argmax(dim=1) == y).sum()) / len(y)
    assert math.isclose(acc, expected, rel_tol=1e-12)
    assert net.calls and all(not training and not grad for training, grad in net.calls)
    assert not net.training


# ---------------------------------------------------------------- fit


def _fit_setup(seed=0):
    x, y = _problem(seed, n=44)
    train_dl = DataLoader(TensorDataset(x[:30], y[:30]), batch_size=8)
    valid_dl = DataLoader(TensorDataset(x[30:], y[30:]), batch_size=5)
    torch.manual_seed(seed)
    return nn.Linear(6, 3), train_dl, valid_dl


def test_fit_gives_lesson_03s_history():
    model, train_dl, valid_dl = _fit_setup()
    reference = nn.Linear(6, 3)
    reference.load_state_dict(model.state_dict())
    with contextlib.redirect_stderr(io.StringIO()):
        history = train.fit(3, model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.3), train_dl, valid_dl)
    expected = torch_nn.fit(3, reference, F.cross_entropy, optim.SGD(reference.parameters(), lr=0.3),
                            train_dl, valid_dl)
    assert len(history) == 3
    for got, want in zip(history, expected):
        assert got["seconds"] >= 0
        for key in torch_nn.HISTORY_KEYS:
            assert math.isclose(got[key], want[key], rel_tol=1e-6, abs_tol=1e-9), key
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), reference.parameters()))


def test_fit_steps_the_scheduler_after_every_batch():
    model, train_dl, valid_dl = _fit_setup(1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(train_dl))
    with contextlib.redirect_stderr(io.StringIO()):
        train.fit(2, model, F.cross_entropy, opt, train_dl, valid_dl, scheduler=scheduler)
    assert scheduler.last_epoch == 2 * len(train_dl)   # one more step would raise


def test_fit_shows_a_bar_but_prints_nothing_while_graded(capfd, monkeypatch):
    model, train_dl, valid_dl = _fit_setup(2)
    train.fit(1, model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), train_dl, valid_dl)
    assert "fit" in capfd.readouterr().err      # a terminal progress bar, outside Jupyter
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    train.fit(2, model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), train_dl, valid_dl)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_live_plot_displays_once_then_updates(monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def display(fig, display_id=False):
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    live = train.LivePlot("a run")
    history = [{"train_loss": 1.0, "valid_loss": 0.9, "valid_accuracy": 0.5}]
    live.update(history)
    live.update(history + [{"train_loss": 0.5, "valid_loss": 0.6, "valid_accuracy": 0.8}])
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert all(type(fig).__name__ == "Figure" for _, fig in shown)
