"""Lesson 04, convolutions by hand: cross-correlation, its multi-channel forms, pooling, the output-shape
formula, the receptive field and a whole convolution layer (batch, channels, bias, padding, stride), computed by
PyTorch (``F.conv2d`` is cross-correlation exactly as the lesson defines it, and ``F.max_pool2d`` /
``F.avg_pool2d`` pool with the same padding rules). Lesson 07's backward pass of a convolution builds on
``conv_forward`` and ``im2col``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dtypes import as_float

__all__ = ["conv_forward", "conv_output_shape", "corr2d", "corr2d_multi_in", "corr2d_multi_in_out", "im2col",
           "influence", "pool2d", "receptive_field"]


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


def receptive_field(layers):
    """The side of the square of input pixels that one unit of the last layer of a stack can depend on, for
    ``layers`` a list of ``(kernel_size, stride)`` pairs (convolutions and poolings alike, first layer first):
    each layer adds ``(kernel_size - 1)`` times the distance, in input pixels, between neighbouring units of the
    layer below it, and that distance is the product of the strides below. Padding changes neither. (Lesson 04.)"""
    size, jump = 1, 1
    for kernel_size, stride in layers:
        size += (kernel_size - 1) * jump
        jump *= stride
    return size


def influence(net, x, i, j):
    """The gradient of ``net``'s output unit ``[0, 0, i, j]`` (first image, first channel, row ``i``, column
    ``j``) with respect to the 2-D image ``x``: an ``x``-shaped tensor, non-zero only on pixels that unit
    depends on. (Lesson 04.)"""
    (x,) = as_float(x)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x[None, None])[0, 0, i, j], x)
    return grad


def conv_forward(x, w, b, stride=1, pad=0):
    """A convolution layer's forward pass, CS231n's ``conv_forward_naive``: ``x`` (N, C, H, W) images, ``w``
    (F, C, kh, kw) kernels, ``b`` (F,) biases, ``pad`` zeros on every side, the window moved ``stride`` pixels at
    a time; the output is (N, F, H', W') with H' = (H + 2 pad - kh) // stride + 1. (Lesson 04; lesson 07 writes
    its backward pass.)"""
    x, w, b = as_float(x, w, b)
    return F.conv2d(x, w, b, stride=stride, padding=pad)


def im2col(x, kernel_size, stride=1, pad=0):
    """Every window a ``kernel_size`` kernel sees in ``x`` (N, C, H, W), as the columns of an
    (N, C * kh * kw, H' * W') tensor, each column ordered as ``w[f].flatten()`` is: then ``w.reshape(F, -1) @
    im2col(x)`` is the convolution, one matrix multiply. (Lesson 04; lesson 07 undoes it with ``F.fold``.)"""
    (x,) = as_float(x)
    return F.unfold(x, kernel_size, padding=pad, stride=stride)
