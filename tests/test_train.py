"""The course's reference training helpers (handwritten.train), lesson 05's reference models, and lesson 05's
promise that rewriting the tutorial's CNN (nn.Sequential + Lambda, WrappedDataLoader, AdaptiveAvgPool2d)
leaves its training unchanged."""

from __future__ import annotations

import contextlib
import io
import math

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from handwritten import models, plots, train
from handwritten.checks import torch_nn

from conftest import ROOT


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
    expected = torch_nn.ref_fit(3, reference, F.cross_entropy, optim.SGD(reference.parameters(), lr=0.3),
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


def test_race_figure():
    fig = plots.race_figure({"slow": [(0, 0.1), (2.0, 0.3)], "fast": [(0, 0.1), (0.2, 0.35)]}, target=0.3)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3


# ---------------------------------------------------------------- lesson 05's reference models


def test_lenet_shapes_and_parameters():
    net = models.LeNet()
    assert sum(p.numel() for p in net.parameters()) == 61_706
    x = torch.zeros(1, 1, 28, 28)
    shapes = []
    for layer in net:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14) and shapes[3] == (16, 10, 10)
    assert shapes[5] == (16, 5, 5) and shapes[6] == (400,) and shapes[-1] == (10,)
    relu = models.LeNet(nn.ReLU, nn.MaxPool2d)
    assert isinstance(relu[1], nn.ReLU) and isinstance(relu[2], nn.MaxPool2d)


def test_mnist_cnn_takes_rows_or_images():
    torch.manual_seed(0)
    net = models.Mnist_CNN()
    x = torch.rand(3, 784)
    assert net(x).shape == (3, 10)
    assert torch.equal(net(x), net(x.view(3, 1, 28, 28)))


# ---------------------------------------------------------------- lesson 05: the refactors train alike

LESSON = "05-cnns"
NOTEBOOK = ROOT / "solutions" / LESSON / f"{LESSON}.ipynb"
VERSIONS = ["1. Mnist_CNN", "2. nn.Sequential + Lambda", "3. WrappedDataLoader", "4. AdaptiveAvgPool2d"]


def _tagged(tag: str) -> list:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def _run(source: str, ns: dict) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(source, f"<{LESSON}>", "exec"), ns)


@pytest.fixture(scope="module")
def chain() -> dict:
    ns: dict = {}
    for cell in _tagged("equivalence"):
        _run(cell.source, ns)
    return ns


def test_the_notebook_tags_the_whole_chain():
    tags = {tag for cell in _tagged("equivalence") for tag in cell.metadata["tags"]}
    assert {"equivalence:first", "equivalence:sequential", "equivalence:wrapped", "equivalence:adaptive",
            "equivalence:table"} <= tags


def test_every_version_trains_like_the_first(chain):
    trajectories, diff = chain["trajectories"], chain["max_abs_diff"]
    assert list(trajectories) == VERSIONS
    assert len({len(t) for t in trajectories.values()}) == 1
    first = trajectories[VERSIONS[0]]
    assert first[0] > 2.0 and sum(first[-20:]) / 20 < 2.0    # it starts near ln 10 and learns
    diffs = {v: diff(trajectories[v], first) for v in VERSIONS}
    assert diffs == chain["vs_first"]                        # what the notebook's table showed
    # Sequential and WrappedDataLoader change no operation: bit for bit the same. The adaptive pooling sums
    # in its own order: float32 rounding, far below the tolerance.
    assert diffs[VERSIONS[1]] == diffs[VERSIONS[2]] == 0.0
    assert diffs[VERSIONS[3]] < chain["TOLERANCE"] / 10


@pytest.mark.parametrize("change", ["learning rate", "shuffled batches"])
def test_a_real_change_is_caught(chain, change):
    (cell,) = _tagged("equivalence:wrapped")
    source = cell.source
    saved_lr, saved_losses = chain["lr"], chain["trajectories"][VERSIONS[2]]
    if change == "learning rate":
        chain["lr"] = saved_lr * (1 + 1e-4)
    else:
        source = source.replace("WrappedDataLoader(fixed_order, preprocess)",
                                "WrappedDataLoader(DataLoader(train_ds, batch_size=bs, shuffle=True), preprocess)")
        assert source != cell.source, "the cell changed: update this test"
    try:
        _run(source, chain)   # the notebook's functions look their names up in this namespace
        diff = chain["max_abs_diff"](chain["trajectories"][VERSIONS[2]], chain["trajectories"][VERSIONS[0]])
    finally:
        chain["lr"], chain["trajectories"][VERSIONS[2]] = saved_lr, saved_losses
    assert diff > 10 * chain["TOLERANCE"]
