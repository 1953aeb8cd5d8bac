"""Lesson 03, what is ``torch.nn`` really: the loss, the metric and the training loop that the lesson
refactors step by step, and that later lessons use as ``handwritten.train``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

__all__ = ["HISTORY_KEYS", "accuracy", "choose_epochs", "cross_entropy_grad", "fit", "fit_epoch", "get_data",
           "log_softmax", "loss_batch", "nll", "train_epoch", "train_model"]

HISTORY_KEYS = ("train_loss", "valid_loss", "valid_accuracy")


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the last dimension, computed stably. (Lesson 03.)"""
    return F.log_softmax(x, dim=-1)


def nll(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The negative log-likelihood: minus the mean of each row's log-probability at its target. (Lesson 03.)"""
    return F.nll_loss(input, target)


def cross_entropy_grad(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean cross-entropy ``F.cross_entropy(scores, target)`` with respect to the scores,
    worked out by hand: ``(softmax(scores) - one_hot(target)) / N``. (Lesson 03.)"""
    probs = F.softmax(scores, dim=-1)
    one_hot = F.one_hot(target, scores.shape[-1]).to(probs.dtype)
    return (probs - one_hot) / len(target)


def accuracy(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The fraction of rows of scores ``out`` whose largest score is at the label ``yb``. (Lesson 03.)"""
    return (out.argmax(dim=1) == yb).float().mean()


def loss_batch(model, loss_func, xb, yb, opt=None, scheduler=None):
    """The loss of one batch, as a number, and the batch's size; with an optimiser, also one training step
    (and one step of the learning-rate ``scheduler``, if given). (Lesson 03; the scheduler, lesson 05.)"""
    loss = loss_func(model(xb), yb)
    if opt is not None:
        loss.backward()
        opt.step()
        opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
    return loss.item(), len(xb)


def train_epoch(model, loss_func, opt, train_dl) -> float:
    """One epoch of training: train mode, one ``loss_batch`` step per batch of ``train_dl``; the epoch's loss, the
    mean over the images of the losses before each step. (Lesson 03.)"""
    model.train()
    losses, counts = zip(*[loss_batch(model, loss_func, xb, yb, opt) for xb, yb in train_dl])
    return _weighted_mean(losses, counts)


def choose_epochs(history: list[dict]) -> int:
    """How many epochs to train: the epoch (counted from 1) whose validation loss was the lowest, the earliest
    of equals. (Lesson 03.)"""
    losses = [float(entry["valid_loss"]) for entry in history]
    return losses.index(min(losses)) + 1


def get_data(train_ds, valid_ds, bs: int):
    """A shuffling training loader with batches of ``bs``, and an ordered validation loader with batches of
    ``2 * bs`` (validation keeps no gradients: twice the batch fits). (Lesson 03.)"""
    return DataLoader(train_ds, batch_size=bs, shuffle=True), DataLoader(valid_ds, batch_size=bs * 2)


def _weighted_mean(values, counts) -> float:
    return sum(v * n for v, n in zip(values, counts)) / sum(counts)


def fit_epoch(model, loss_func, opt, train_dl, valid_dl, scheduler=None) -> dict:
    """One epoch of ``fit``: a training step on every batch of ``train_dl`` (train mode), then the loss and
    accuracy over all of ``valid_dl`` (eval mode, no gradients), each the mean over the images, not the
    batches. (Lesson 03.)"""
    model.train()
    train = [loss_batch(model, loss_func, xb, yb, opt, scheduler) for xb, yb in train_dl]
    model.eval()
    with torch.no_grad():
        valid = [(*loss_batch(model, loss_func, xb, yb), float(accuracy(model(xb), yb))) for xb, yb in valid_dl]
    counts = [n for _, n, _ in valid]
    return {
        "train_loss": _weighted_mean([loss for loss, _ in train], [n for _, n in train]),
        "valid_loss": _weighted_mean([loss for loss, _, _ in valid], counts),
        "valid_accuracy": _weighted_mean([acc for _, _, acc in valid], counts),
    }


def fit(epochs: int, model, loss_func, opt, train_dl, valid_dl) -> list[dict]:
    """Train for ``epochs`` epochs; the history, one dict per epoch with ``train_loss``, ``valid_loss`` and
    ``valid_accuracy``. (Lesson 03.)"""
    return [fit_epoch(model, loss_func, opt, train_dl, valid_dl) for _ in range(epochs)]


def train_model(model, train_ds, valid_ds, epochs: int, bs: int, lr: float) -> list[dict]:
    """The lesson's three lines: ``get_data``, ``optim.SGD`` over the model's parameters with learning rate ``lr``,
    and ``fit`` with ``F.cross_entropy``; the model is trained in place; the history. (Lesson 03.)"""
    from torch import optim

    train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
    return fit(epochs, model, F.cross_entropy, optim.SGD(model.parameters(), lr=lr), train_dl, valid_dl)
