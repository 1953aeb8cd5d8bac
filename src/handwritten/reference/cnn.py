"""Lesson 05, CNNs: the pieces the lesson's refactors are made of, and the evaluation and fast training loop
the later lessons use."""

from __future__ import annotations

import torch


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
