"""Lesson 04's answers (``handwritten.reference.convolution``), against the lesson's worked examples and a
cross-correlation written out as loops."""

from __future__ import annotations

import pytest
import torch

from handwritten.reference import convolution

X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
X2 = torch.stack([X, X + 1])                                # the lesson's two input channels
K2 = torch.stack([K, K + 1])


def loops(X, K):
    h, w = K.shape
    return torch.tensor([[float((X[i:i + h, j:j + w] * K).sum()) for j in range(X.shape[1] - w + 1)]
                         for i in range(X.shape[0] - h + 1)], dtype=torch.float64)


def test_corr2d_is_the_lessons_worked_example():
    assert convolution.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]


@pytest.mark.parametrize("x_shape,k_shape", [((5, 7), (2, 3)), ((4, 4), (1, 1)), ((3, 6), (3, 6)), ((6, 2), (4, 1))])
def test_corr2d_slides_the_kernel_without_flipping_it(x_shape, k_shape):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(x_shape, generator=g, dtype=torch.float64)
    K = torch.randn(k_shape, generator=g, dtype=torch.float64)
    got = convolution.corr2d(X, K)
    assert got.dtype == torch.float64 and torch.allclose(got, loops(X, K))


def test_corr2d_of_integers_is_float32():
    got = convolution.corr2d(torch.arange(9).reshape(3, 3), torch.tensor([[0, 1], [2, 3]]))
    assert got.dtype == torch.float32 and got.tolist() == [[19.0, 25.0], [37.0, 43.0]]


def test_corr2d_multi_in_sums_the_channels():
    assert convolution.corr2d_multi_in(X2, K2).tolist() == [[56.0, 72.0], [104.0, 120.0]]


def test_corr2d_multi_in_out_stacks_one_map_per_output_channel():
    got = convolution.corr2d_multi_in_out(X2, torch.stack([K2, K2 + 1, K2 + 2]))
    assert got.tolist() == [[[56.0, 72.0], [104.0, 120.0]], [[76.0, 100.0], [148.0, 172.0]],
                            [[96.0, 128.0], [192.0, 224.0]]]


def test_pool2d_max_and_avg_with_stride_1():
    assert convolution.pool2d(X, (2, 2)).tolist() == [[4.0, 5.0], [7.0, 8.0]]
    assert convolution.pool2d(X, (2, 2), "avg").tolist() == [[2.0, 3.0], [5.0, 6.0]]


def test_pool2d_padding_never_wins_a_max_and_counts_as_zero_in_an_average():
    X4 = torch.arange(16.0).reshape(4, 4)
    assert convolution.pool2d(X4, (3, 3), padding=(1, 1), stride=(2, 2)).tolist() == [[5.0, 7.0], [13.0, 15.0]]
    assert convolution.pool2d(X4 - 20, (3, 3), padding=(1, 1), stride=(2, 2)).tolist() == [[-15.0, -13.0],
                                                                                            [-7.0, -5.0]]
    # the top-left window holds 0, 1, 4, 5 and five padded zeros: 10 / 9
    assert convolution.pool2d(X4, (3, 3), "avg", (1, 1), (2, 2))[0, 0].item() == pytest.approx(10 / 9)


@pytest.mark.parametrize("args,expected", [
    (((8, 8), (3, 3), (1, 1), (1, 1)), (8, 8)),
    (((8, 8), (5, 3), (2, 1), (1, 1)), (8, 8)),
    (((8, 8), (3, 3), (1, 1), (2, 2)), (4, 4)),
    (((8, 8), (3, 5), (0, 1), (3, 4)), (2, 2)),
    (((28, 28), (5, 5), (0, 0), (1, 1)), (24, 24)),
])
def test_conv_output_shape_is_what_nn_conv2d_makes(args, expected):
    assert convolution.conv_output_shape(*args) == expected


@pytest.mark.parametrize("layers,expected", [
    ([], 1), ([(3, 1)], 3), ([(3, 1), (3, 1)], 5), ([(5, 1), (2, 2), (5, 1), (2, 2)], 16), ([(3, 2), (3, 1)], 7),
])
def test_receptive_field_adds_k_minus_1_times_the_strides_below(layers, expected):
    assert convolution.receptive_field(layers) == expected


def test_influence_is_nonzero_exactly_on_the_receptive_field():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AvgPool2d(2), torch.nn.Conv2d(2, 1, 3))
    grad = convolution.influence(net, torch.rand(16, 16), 2, 1)
    rows, cols = grad.ne(0).nonzero().unbind(1)
    assert grad.shape == (16, 16) and convolution.receptive_field([(3, 1), (2, 2), (3, 1)]) == 8
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 11, 2, 9)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_conv_forward_is_loops_over_images_filters_and_positions(stride, pad):
    g = torch.Generator().manual_seed(stride)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    out = convolution.conv_forward(x, w, b, stride, pad)
    assert out.shape == (2, 4, (6 + 2 * pad - 3) // stride + 1, (7 + 2 * pad - 2) // stride + 1)
    for n in range(2):
        for f in range(4):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    window = xp[n, :, i * stride:i * stride + 3, j * stride:j * stride + 2]
                    assert out[n, f, i, j].item() == pytest.approx(float((window * w[f]).sum() + b[f]))


def test_im2col_times_the_flattened_kernels_is_the_convolution():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 2, 7, 5, generator=g), torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, generator=g)
    out = (w.reshape(4, -1) @ convolution.im2col(x, (3, 3), stride=2, pad=1) + b[:, None]).reshape(3, 4, 4, 3)
    assert torch.allclose(out, convolution.conv_forward(x, w, b, stride=2, pad=1), atol=1e-5)
