"""Lesson 01, pixels and tensors: two tensor drills and the pixel-similarity baseline, which calls an image a 3
when it is closer, in mean absolute difference, to the ideal 3 (the mean of the training 3s) than to the ideal 7."""

from __future__ import annotations

import torch

from .dtypes import as_float

__all__ = ["bottom_right_doubled", "is_3", "mnist_distance", "numbers_grid", "validation_accuracy"]


def numbers_grid(n):
    """The n x n tensor of the numbers 1 to n * n, row by row. (Lesson 01.)"""
    return torch.arange(1, n * n + 1).reshape(n, n)


def bottom_right_doubled(t):
    """``t`` doubled, then its last two rows and last two columns; ``t`` itself is left as it was. (Lesson 01.)"""
    return (t * 2)[-2:, -2:]


def mnist_distance(a, b):
    """The mean absolute difference (L1) over the last two dimensions, the pixels, broadcasting over the rest:
    one distance per image. (Lesson 01.)"""
    a, b = as_float(a, b)
    return (a - b).abs().mean((-1, -2))


def is_3(x, mean3, mean7):
    """True where the image (or each image of a batch) ``x`` is closer to the ideal 3 ``mean3`` than to the ideal
    7 ``mean7``; the lesson's ``is_3(x)`` reads the two from the notebook. (Lesson 01.)"""
    return mnist_distance(x, mean3) < mnist_distance(x, mean7)


def validation_accuracy(threes, sevens, is_3):
    """The fraction of the images in ``threes`` and ``sevens`` that ``is_3`` (a function of the images alone)
    classifies correctly: a 3 when it says True, a 7 when it says False. (Lesson 01.)"""
    right = int(is_3(threes).sum()) + int((~is_3(sevens)).sum())
    return right / (len(threes) + len(sevens))
