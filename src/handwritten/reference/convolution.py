"""Lesson 04, convolutions by hand: cross-correlation, its multi-channel forms, pooling and the output-shape
formula, computed by PyTorch (``F.conv2d`` is cross-correlation exactly as the lesson defines it, and
``F.max_pool2d`` / ``F.avg_pool2d`` pool with the same padding rules)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dtypes import as_float

__all__ = ["conv_output_shape", "corr2d", "corr2d_multi_in", "corr2d_multi_in_out", "pool2d"]


def corr2d(X, K):
    """The 2-D cross-correlation of the image ``X`` (h, w) with the kernel ``K`` (kh, kw): an
    (h - kh + 1, w - kw + 1) output, ``Y[i, j] = (X[i:i + kh, j:j + kw] * K).sum()``. (Lesson 04.)"""
    X, K = as_float(X, K)
    return F.conv2d(X[None, None], K[None, None])[0, 0]


def corr2d_multi_in(X, K):
    """Cross-correlation of ``X`` (c_i, h, w) with ``K`` (c_i, kh, kw), channel by channel, summed into one
    (h - kh + 1, w - kw + 1) map. (Lesson 04.)"""
    X, K = as_float(X, K)
    return F.conv2d(X[None], K[None])[0, 0]


def corr2d_multi_in_out(X, K):
    """Cross-correlation of ``X`` (c_i, h, w) with ``K`` (c_o, c_i, kh, kw): one ``corr2d_multi_in`` map per
    output channel, stacked into (c_o, h - kh + 1, w - kw + 1). (Lesson 04.)"""
    X, K = as_float(X, K)
    return F.conv2d(X[None], K)[0]


def pool2d(X, pool_size, mode="max", padding=(0, 0), stride=(1, 1)):
    """Max (``mode="max"``) or average (``"avg"``) pooling of the 2-D ``X`` over ``pool_size`` windows, stride 1
    unless given; padding as PyTorch pads: never picked by max, counted as zeros by avg. (Lesson 04.)"""
    (X,) = as_float(X)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    return pool(X[None, None], pool_size, stride=stride, padding=padding)[0, 0]


def conv_output_shape(input_size, kernel_size, padding=(0, 0), stride=(1, 1)):
    """(height, width) of what ``nn.Conv2d(kernel_size, padding=padding, stride=stride)`` makes of an
    ``input_size`` image, found by running ``F.conv2d`` on zeros. (Lesson 04.)"""
    x = torch.zeros(1, 1, *input_size)
    w = torch.zeros(1, 1, *kernel_size)
    return tuple(F.conv2d(x, w, padding=padding, stride=stride).shape[2:])
