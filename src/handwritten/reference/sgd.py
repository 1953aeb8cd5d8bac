"""Lesson 02, SGD from scratch: the seven steps of gradient descent, first on a parabola, then on the 3s and
7s."""

from __future__ import annotations

import torch


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
