"""Lesson 05, CNNs: the pieces the lesson's refactors are made of, the table of LeNet's shapes, and the
evaluation and fast training loop the later lessons use. (LeNet itself is ``handwritten.models.LeNet``.)"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Lambda", "WrappedDataLoader", "evaluate_accuracy", "lenet_shapes", "preprocess", "train_fast"]


class Lambda(nn.Module):
    """A layer that applies ``func`` to its input, so that any function can sit in ``nn.Sequential``.
    (Lesson 05.)"""

    def __init__(self, func):
        super().__init__()
        self.func = func

    def forward(self, x):
        return self.func(x)


def preprocess(x, y):
    """A batch of flat MNIST rows viewed as (batch, 1, 28, 28) images; the labels unchanged. (Lesson 05.)"""
    return x.view(-1, 1, 28, 28), y


class WrappedDataLoader:
    """A data loader whose every batch goes through ``func``: as long as ``dl``, and a new pass over it each
    time it is iterated. (Lesson 05.)"""

    def __init__(self, dl, func):
        self.dl, self.func = dl, func

    def __len__(self):
        return len(self.dl)

    def __iter__(self):
        for b in self.dl:
            yield self.func(*b)


def lenet_shapes() -> dict:
    """The output shape of every layer of LeNet that changes the shape, for one 1x28x28 digit, without the batch
    dimension. (Lesson 05.)"""
    return {"conv1": (6, 28, 28), "pool1": (6, 14, 14), "conv2": (16, 10, 10), "pool2": (16, 5, 5),
            "flatten": (400,), "fc1": (120,), "fc2": (84,), "fc3": (10,)}


def evaluate_accuracy(net, data_iter) -> float:
    """The fraction of the images in ``data_iter`` that ``net`` gets right: in evaluation mode (dropout off),
    without gradients, on the device of the network's parameters. Leaves ``net`` in eval mode. (Lesson 05.)"""
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


def train_fast(net, x, y, epochs: int, batch_size: int, max_lr: float) -> list[float]:
    """Train ``net`` on the tensors ``x``, ``y`` with Adam and a one-cycle schedule (``max_lr`` at its peak),
    in a new random order every epoch; the mean training loss of each epoch, weighted by batch size.
    (Lesson 05.)"""
    opt = torch.optim.Adam(net.parameters(), lr=max_lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
    losses = []
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return losses
