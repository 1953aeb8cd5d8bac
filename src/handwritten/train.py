"""The course's reference training helpers, for lessons that come *after* you wrote your own.

    from handwritten.train import fit, get_data, evaluate_accuracy, TensorBatches
    history = fit(epochs, model, F.cross_entropy, opt, train_dl, valid_dl)

``fit`` is lesson 03's ``fit`` (same arguments, same history: one dict per epoch with
``train_loss``, ``valid_loss`` and ``valid_accuracy``), plus what a long run needs: a ``tqdm.auto``
progress bar over the epochs, the seconds each epoch took in the history, an optional learning-rate
``scheduler`` stepped after every batch, and a training-curve plot redrawn in place after every epoch.

While nbgrader grades a notebook (``env.grading()``) there is no bar and no plot: anything written to
stderr would zero a test cell, and nobody watches.

``TensorBatches`` cuts batches from tensors held in memory (the fast way to feed a small dataset such
as MNIST to a network); ``evaluate_accuracy`` is lesson 05's.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from . import env


def accuracy(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The fraction of rows of scores ``out`` whose largest score is at the label ``yb``."""
    return (out.argmax(dim=1) == yb).float().mean()


def loss_batch(model, loss_func, xb, yb, opt=None, scheduler=None):
    """The loss of one batch and its size; with an optimiser, also one training step."""
    loss = loss_func(model(xb), yb)
    if opt is not None:
        loss.backward()
        opt.step()
        opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
    return loss.item(), len(xb)


def get_data(train_ds, valid_ds, bs: int):
    """A shuffling training loader with batches of ``bs`` and an ordered validation loader of ``2 * bs``."""
    return DataLoader(train_ds, batch_size=bs, shuffle=True), DataLoader(valid_ds, batch_size=bs * 2)


class TensorBatches:
    """Batches sliced from tensors already in memory: ``for xb, yb in TensorBatches(x, y, 64, shuffle=True)``.

    It does what ``DataLoader(TensorDataset(x, y), batch_size, shuffle)`` does, without fetching
    and stacking the items one by one: one random permutation per pass, then one indexing per batch.
    ``generator`` makes the order reproducible."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.x.device)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, self.batch_size):
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]


def evaluate_accuracy(net, data_iter) -> float:
    """The fraction of the images in ``data_iter`` that ``net`` gets right: in evaluation mode (dropout
    off), without gradients, on the device of the network's parameters. Leaves ``net`` in eval mode."""
    if isinstance(net, torch.nn.Module):
        net.eval()
    device = next((p.device for p in net.parameters()), None) if isinstance(net, torch.nn.Module) else None
    right, total = 0, 0
    with torch.no_grad():
        for X, y in data_iter:
            if device is not None:
                X, y = X.to(device), y.to(device)
            right += int((net(X).argmax(dim=1) == y).sum())
            total += y.numel()
    return right / total


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LivePlot:
    """A training-curve figure shown once and redrawn in place after each epoch (in a notebook only)."""

    def __init__(self, title: str = ""):
        self.title, self.handle = title, None

    def update(self, history: list) -> None:
        from IPython.display import display

        from . import plots

        fig = plots.training_history(history, title=self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)


def fit(epochs: int, model, loss_func, opt, train_dl, valid_dl, *, scheduler=None, plot: bool = True,
        desc: str = "fit") -> list[dict]:
    """Train ``model`` for ``epochs`` epochs and return the history, one dict per epoch:
    ``train_loss`` (the mean of the epoch's batch losses, weighted by batch size), ``valid_loss`` and
    ``valid_accuracy`` (over all of ``valid_dl``, in eval mode, without gradients), and ``seconds``
    (training and validation of that epoch). ``scheduler`` (optional) is stepped after every batch.
    A progress bar and a live plot show the run, except while the notebook is being graded."""
    graded = bool(env.grading())
    from tqdm.auto import tqdm

    live = LivePlot(desc if desc != "fit" else "") if plot and not graded and _in_notebook() else None
    history: list[dict] = []
    bar = tqdm(range(epochs), desc=desc, disable=graded)
    for _ in bar:
        start = time.perf_counter()
        model.train()
        train = [loss_batch(model, loss_func, xb, yb, opt, scheduler) for xb, yb in train_dl]
        model.eval()
        with torch.no_grad():
            valid = [(*loss_batch(model, loss_func, xb, yb), float(accuracy(model(xb), yb))) for xb, yb in valid_dl]
        n_train = sum(n for _, n in train)
        n_valid = sum(n for _, n, _ in valid)
        history.append({
            "train_loss": sum(loss * n for loss, n in train) / n_train,
            "valid_loss": sum(loss * n for loss, n, _ in valid) / n_valid,
            "valid_accuracy": sum(acc * n for _, n, acc in valid) / n_valid,
            "seconds": time.perf_counter() - start,
        })
        bar.set_postfix(valid_loss=f"{history[-1]['valid_loss']:.4f}",
                        valid_accuracy=f"{history[-1]['valid_accuracy']:.3f}")
        if live is not None:
            live.update(history)
    return history
