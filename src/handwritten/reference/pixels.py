"""Lesson 01, pixels and tensors: two tensor drills; the pixel-similarity baseline, which calls an image a 3 when
it is closer, in mean absolute difference, to the ideal 3 (the mean of the training 3s) than to the ideal 7;
colour images as channels; and a nearest-neighbour classifier of all ten digits (its distance matrix, its vote,
its confusion matrix)."""

from __future__ import annotations

import torch

from .dtypes import as_float

__all__ = ["LUMA", "bottom_right_doubled", "confusion_matrix", "distance_matrix", "is_3", "knn_predict",
           "mnist_distance", "numbers_grid", "rgb_to_grey", "validation_accuracy"]


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
    7 ``mean7``; the lesson's ``is_3(x)`` reads the two from the notebook. Images as the dataset stores them
    (integers from 0 to 255) are first scaled to [0, 1], as the ideal digits were. (Lesson 01.)"""
    if not x.is_floating_point():
        x = x.float() / 255
    return mnist_distance(x, mean3) < mnist_distance(x, mean7)


def validation_accuracy(threes, sevens, is_3):
    """The fraction of the images in ``threes`` and ``sevens`` that ``is_3`` (a function of the images alone)
    classifies correctly: a 3 when it says True, a 7 when it says False. (Lesson 01.)"""
    right = int(is_3(threes).sum()) + int((~is_3(sevens)).sum())
    return right / (len(threes) + len(sevens))


# ---------------------------------------------------------------- colour channels


LUMA = (0.299, 0.587, 0.114)
"""How much red, green and blue count in a grey level (ITU-R BT.601, what Pillow's ``convert("L")`` uses)."""


def rgb_to_grey(images):
    """Colour images laid out (..., 3, H, W), channels first, as grey images (..., H, W): the weighted sum
    ``LUMA`` of their red, green and blue channels. (Lesson 01.)"""
    weights = torch.tensor(LUMA, dtype=images.dtype).reshape(3, 1, 1)
    return (images * weights).sum(-3)


# ---------------------------------------------------------------- nearest neighbours


def distance_matrix(a, b):
    """The Euclidean (L2) distance between every image of ``a`` (M, H, W) and every image of ``b`` (N, H, W), as
    an (M, N) tensor: entry [i, j] is the distance between ``a[i]`` and ``b[j]``. Computed exactly, in float64,
    then given the dtype of the inputs (``as_float``'s rule). (Lesson 01.)"""
    dtype = as_float(a, b)[0].dtype
    a64 = a.reshape(len(a), -1).double()
    b64 = b.reshape(len(b), -1).double()
    return ((a64[:, None, :] - b64[None, :, :]) ** 2).sum(-1).sqrt().to(dtype)


def knn_predict(distances, train_labels, k):
    """For each row of ``distances`` (M, N), the label that most of its ``k`` nearest training images (the ``k``
    smallest distances) have; a tie goes to the smallest label. (Lesson 01.)"""
    nearest = distances.topk(k, dim=1, largest=False).indices
    votes = torch.nn.functional.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(1)
    return votes.argmax(1)


def confusion_matrix(predicted, actual, n_classes: int = 10):
    """The (10, 10) counts: entry [i, j] is how many images of class ``i`` (``actual``) were called ``j``
    (``predicted``). (Lesson 01.)"""
    return torch.bincount(actual * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes,
                                                                                                   n_classes)
