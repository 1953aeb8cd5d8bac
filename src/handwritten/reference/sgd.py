"""Lesson 02, SGD from scratch: the seven steps of gradient descent, first on a parabola, then on the 3s and
7s: the loss and the metric of a 3-vs-7 classifier, a hand-written optimiser, and the training loop."""

from __future__ import annotations

import torch

__all__ = [
    "BasicOptim", "apply_step", "batch_accuracy", "calc_grad", "f", "mnist_loss", "mse", "train_epoch",
    "train_model", "validate_epoch",
]


def f(t, params):
    """The quadratic the lesson fits to the roller coaster's speed: a t² + b t + c. (Lesson 02.)"""
    a, b, c = params
    return a * (t ** 2) + (b * t) + c


def mse(preds, targets):
    """The mean squared error. (Lesson 02.)"""
    return ((preds - targets) ** 2).mean()


def apply_step(params, time, speed, lr):
    """One pass of the seven steps on the quadratic: predict, loss, gradient, step (``params`` changed in
    place), zero the gradient; returns the loss before the step. (Lesson 02.)"""
    loss = mse(f(time, params), speed)
    loss.backward()
    with torch.no_grad():
        params -= lr * params.grad
    params.grad = None
    return loss.item()


def mnist_loss(predictions, targets):
    """The mean distance between sigmoid(predictions) and the targets, 1 for a 3 and 0 for a 7. (Lesson 02.)"""
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb, yb):
    """The fraction of a batch classified right: a raw score above 0 (a sigmoid above 0.5) means a 3, label 1.
    (Lesson 02.)"""
    preds = xb.sigmoid()
    correct = (preds > 0.5) == yb
    return correct.float().mean()


class BasicOptim:
    """Plain gradient descent: ``step()`` moves every parameter by -lr times its gradient, ``zero_grad()`` clears
    the gradients. (Lesson 02.)"""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


def calc_grad(xb, yb, model):
    """The forward and backward passes of one batch: the gradients of ``mnist_loss``, added to the parameters'
    ``.grad``. (Lesson 02.)"""
    mnist_loss(model(xb), yb).backward()


def validate_epoch(model, dl):
    """The model's accuracy on the batches of ``dl``: the mean of the batch accuracies, to 4 decimals.
    (Lesson 02.)"""
    accs = [batch_accuracy(model(xb), yb) for xb, yb in dl]
    return round(torch.stack(accs).mean().item(), 4)


def train_epoch(model, dl, opt):
    """One pass over the batches of ``dl``: gradients, a step of ``opt``, gradients zeroed. (Lesson 02.)"""
    for xb, yb in dl:
        calc_grad(xb, yb, model)
        opt.step()
        opt.zero_grad()


def train_model(model, opt, train_dl, valid_dl, epochs):
    """Train for ``epochs`` epochs; the list of validation accuracies, one after each epoch. (Lesson 02.)"""
    accuracies = []
    for _ in range(epochs):
        train_epoch(model, train_dl, opt)
        accuracies.append(validate_epoch(model, valid_dl))
    return accuracies
