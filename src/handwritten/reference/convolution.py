"""Lesson 04, convolutions by hand: cross-correlation, its multi-channel forms, pooling and the output-shape
formula, computed by PyTorch (``F.conv2d`` is cross-correlation exactly as the lesson defines it)."""

from __future__ import annotations

import torch.nn.functional as F

from .dtypes import as_float


def corr2d(X, K):
    """The 2-D cross-correlation of the image ``X`` (h, w) with the kernel ``K`` (kh, kw): an
    (h - kh + 1, w - kw + 1) output, ``Y[i, j] = (X[i:i + kh, j:j + kw] * K).sum()``. (Lesson 04.)"""
    X, K = as_float(X, K)
    return F.conv2d(X[None, None], K[None, None])[0, 0]
