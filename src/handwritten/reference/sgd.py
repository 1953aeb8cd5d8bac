"""Lesson 02, SGD from scratch: the seven steps of gradient descent, first on a parabola, then on the 3s and
7s: the loss and the metric of a 3-vs-7 classifier, a hand-written optimiser, and the training loop."""

from __future__ import annotations

import torch

__all__ = [
    "BasicOptim", "apply_step", "batch_accuracy", "calc_grad", "f", "finite_difference", "mnist_loss",
    "mnist_loss_gradient", "mse", "quadratic_gradient", "train_epoch", "train_model", "validate_epoch",
]


def f(t, params):
    """The quadratic the lesson fits to the roller coaster's speed: a t² + b t + c. (Lesson 02.)"""
    a, b, c = params
    return a * (t ** 2) + (b * t) + c


def mse(preds, targets):
    """The mean squared error. (Lesson 02.)"""
    return ((preds - targets) ** 2).mean()


def quadratic_gradient(params, time, speed):
    """The gradient of ``mse(f(time, params), speed)`` with respect to (a, b, c), worked out by hand: with the
    residuals r = f(t) - speed, it is the mean of 2 r (t², t, 1). No autograd. (Lesson 02.)"""
    a, b, c = params
    r = 2 * (a * time ** 2 + b * time + c - speed) / len(time)
    return torch.stack([(r * time ** 2).sum(), (r * time).sum(), r.sum()])


def finite_difference(loss_fn, params, eps=1e-4):
    """The gradient of ``loss_fn`` (a function of one tensor that returns one number) at ``params``, estimated by
    central differences: for every element, (loss(params + eps) - loss(params - eps)) / (2 eps), the other
    elements held still. ``params`` is left as it was. (Lesson 02.)"""
    start = params.detach().clone()
    grad = torch.zeros_like(start)
    with torch.no_grad():
        for i in range(start.numel()):
            up, down = start.clone(), start.clone()
            up.view(-1)[i] += eps
            down.view(-1)[i] -= eps
            grad.view(-1)[i] = (float(loss_fn(up)) - float(loss_fn(down))) / (2 * eps)
    return grad


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


def mnist_loss_gradient(xb, yb, weights, bias):
    """The gradients of ``mnist_loss(xb @ weights + bias, yb)`` with respect to ``weights`` (n, 1) and ``bias``
    (1,), worked out by hand: with z = xb @ weights + bias and s = sigmoid(z), d loss / d z_i is
    -s(1 - s) / N for a 3 and +s(1 - s) / N for a 7; then the chain rule through z. No autograd. (Lesson 02.)"""
    s = (xb @ weights + bias).sigmoid()
    dz = torch.where(yb.reshape(s.shape) == 1, -1.0, 1.0).to(s.dtype) * s * (1 - s) / len(xb)
    return xb.T @ dz, dz.sum(0)


def batch_accuracy(xb, yb):
    """The fraction of a batch classified right: a raw score above 0 (a sigmoid above 0.5) means a 3, label 1.
    Scores and labels may come as (N, 1) or (N,), in any combination: one prediction is compared with one label.
    (Lesson 02.)"""
    preds = xb.sigmoid().reshape(len(xb), -1)   # (N, 1) whether it came as (N,) or (N, 1)
    correct = (preds > 0.5) == yb.reshape(len(yb), -1)
    return correct.float().mean()


class BasicOptim:
    """Plain gradient descent: ``step()`` moves every parameter by -lr times its gradient, ``zero_grad()`` clears
    the gradients. (Lesson 02.)"""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            if p.grad is not None:  # a parameter the loss did not use has no gradient: left alone, as SGD does
                p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


def calc_grad(xb, yb, model):
    """The forward and backward passes of one batch: the gradients of ``mnist_loss``, added to the parameters'
    ``.grad``. (Lesson 02.)"""
    mnist_loss(model(xb), yb).backward()


def validate_epoch(model, dl):
    """The model's accuracy over every image of ``dl``, as a Python float: each batch's accuracy weighted by its
    size (the mean of the batch means is wrong when the last batch is smaller), with autograd recording nothing.
    (Lesson 02.)"""
    right, total = 0.0, 0
    with torch.no_grad():
        for xb, yb in dl:
            right += float(batch_accuracy(model(xb), yb)) * len(yb)
            total += len(yb)
    return right / total


def train_epoch(model, dl, opt):
    """One pass over the batches of ``dl``: gradients, a step of ``opt``, gradients zeroed. (Lesson 02.)"""
    for xb, yb in dl:
        calc_grad(xb, yb, model)
        opt.step()
        opt.zero_grad()


def train_model(model, opt, train_dl, valid_dl, epochs):
    """Train for ``epochs`` epochs; the list of validation accuracies (Python floats, fractions), one after each
    epoch's training, measured with the model in evaluation mode. (Lesson 02.)"""
    accuracies = []
    for _ in range(epochs):
        model.train()
        train_epoch(model, train_dl, opt)
        model.eval()
        accuracies.append(validate_epoch(model, valid_dl))
    return accuracies
