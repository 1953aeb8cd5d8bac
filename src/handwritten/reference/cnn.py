"""Lesson 05, CNNs: the pieces the lesson's refactors are made of, the table of LeNet's shapes, and the
evaluation and fast training loop the later lessons use. (LeNet itself is ``handwritten.models.LeNet``.)"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BatchNorm", "Lambda", "WrappedDataLoader", "challenge_model", "challenge_train", "evaluate_accuracy",
           "layer_shapes", "lenet_shapes", "preprocess", "train_fast"]


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


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def layer_shapes(net, input_shape) -> list[tuple[int, ...]]:
    """The shape of what each layer of the ``nn.Sequential`` ``net`` gives for one input of ``input_shape``
    (channels, height, width), without the batch dimension, worked out from the layers' attributes without running
    the network: a convolution or pooling takes n to (n + 2p - k) // s + 1 along each side, an adaptive pooling to its
    output size, ``nn.Flatten`` multiplies everything, ``nn.Linear`` gives ``out_features``; other layers (activations,
    batch norm, dropout) keep the shape. (Lesson 05.)"""
    shape, shapes = tuple(input_shape), []
    for layer in net:
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            k, p = _pair(layer.kernel_size), _pair(layer.padding)
            s = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
            channels = layer.out_channels if isinstance(layer, nn.Conv2d) else shape[0]
            shape = (channels, *((n + 2 * pi - ki) // si + 1 for n, ki, pi, si in zip(shape[1:], k, p, s)))
        elif isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            shape = (shape[0], *(n if o is None else o for n, o in zip(shape[1:], _pair(layer.output_size))))
        elif isinstance(layer, nn.Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, nn.Linear):
            shape = (layer.out_features,)
        shapes.append(tuple(int(n) for n in shape))
    return shapes


class BatchNorm(nn.Module):
    """Batch normalisation of (N, C, H, W) images, as ``nn.BatchNorm2d`` computes it. In training mode each channel
    is normalised by the mean and the (biased) variance of the batch over its images and pixels, and the running
    statistics move ``momentum`` of the way to the batch's (the variance unbiased, n / (n - 1)); in eval mode the
    running statistics normalise. Then the learned scale ``weight`` and shift ``bias``. (Lesson 05.)"""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        return self.weight[:, None, None] * x_hat + self.bias[:, None, None]


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


def challenge_model() -> nn.Sequential:
    """The course's entry to the lesson's challenge: LeNet with ReLU and max pooling. (Lesson 05.)"""
    from ..models import LeNet

    return LeNet(nn.ReLU, nn.MaxPool2d)


def challenge_train(net, x, y) -> None:
    """The course's recipe for the challenge: one epoch of ``train_fast`` in batches of 64, ``max_lr`` 0.01.
    (Lesson 05.)"""
    train_fast(net, x, y, epochs=1, batch_size=64, max_lr=0.01)
