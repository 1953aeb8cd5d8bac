"""Lesson 05's answers (``handwritten.reference.cnn``), against values worked out by hand and against the course's
LeNet: the checks of lesson 05 and ``handwritten.train`` stand on them. (``evaluate_accuracy`` is tested through
``handwritten.train`` in tests/test_train.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handwritten import models
from handwritten.reference import cnn as reference


def test_lambda_applies_its_function_learns_nothing_and_fits_in_sequential():
    flatten = reference.Lambda(lambda x: x.view(x.size(0), -1))
    double = reference.Lambda(lambda x: x * 2)
    assert double(torch.tensor([1.0, -2.0])).tolist() == [2.0, -4.0]
    assert list(flatten.parameters()) == []
    net = nn.Sequential(flatten, nn.Linear(4, 1))
    assert net(torch.ones(3, 1, 2, 2)).shape == (3, 1)


def test_preprocess_views_rows_as_one_channel_images_and_keeps_the_labels():
    x, y = torch.arange(2 * 784.0).reshape(2, 784), torch.tensor([3, 7])
    images, labels = reference.preprocess(x, y)
    assert images.shape == (2, 1, 28, 28) and images[1, 0, 0, 1].item() == 785.0
    assert labels is y


def test_wrapped_data_loader_has_the_length_of_its_loader_and_starts_again_on_every_pass():
    dl = DataLoader(TensorDataset(torch.arange(10.0), torch.arange(10)), batch_size=4)
    wrapped = reference.WrappedDataLoader(dl, lambda xb, yb: (xb * 10, yb + 1))
    assert len(wrapped) == 3
    for _ in range(2):
        batches = list(wrapped)
        assert [yb.tolist() for _, yb in batches] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
        assert batches[0][0].tolist() == [0.0, 10.0, 20.0, 30.0]


def test_the_table_of_shapes_is_what_the_course_lenet_gives():
    net, x, seen = models.LeNet(), torch.zeros(1, 1, 28, 28), []
    for layer in net:
        x = layer(x)
        if not isinstance(layer, nn.Sigmoid):   # activations change no shape: not in the table
            seen.append(tuple(x.shape[1:]))
    assert list(reference.lenet_shapes().values()) == seen
    assert list(reference.lenet_shapes()) == ["conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "fc2", "fc3"]


class _Counting(nn.Module):
    """A linear classifier that counts its training-mode forward passes."""

    def __init__(self):
        super().__init__()
        self.linear, self.batches = nn.Linear(2, 2), []

    def forward(self, x):
        if self.training:
            self.batches.append(len(x))
        return self.linear(x.flatten(1))


def test_train_fast_steps_once_per_batch_the_last_one_smaller_and_returns_each_epochs_mean_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g)
    y = (x[:, 0] > x[:, 1]).long()                 # linearly separable
    torch.manual_seed(0)
    net = _Counting()
    losses = reference.train_fast(net, x, y, epochs=8, batch_size=16, max_lr=0.5)
    assert net.batches == [16, 16, 16, 2] * 8      # math.ceil(50 / 16) = 4 steps per epoch: OneCycleLR did not raise
    assert len(losses) == 8 and all(isinstance(v, float) and 0 < v < math.log(2) * 2 for v in losses)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean().item() > 0.9


def test_train_fast_reports_the_mean_over_images_not_batches():
    # max_lr=0: nothing moves (OneCycleLR starts at max_lr / 25 = 0), so the epoch's loss is the loss of the
    # untrained net over all images, whatever the order
    x, y = torch.randn(10, 2), torch.randint(0, 2, (10,))
    torch.manual_seed(0)
    net = _Counting()
    with torch.no_grad():
        expected = nn.functional.cross_entropy(net(x), y).item()
    assert reference.train_fast(net, x, y, epochs=1, batch_size=4, max_lr=0.0) == [pytest.approx(expected)]


def test_layer_shapes_works_out_what_the_network_gives_without_running_it():
    net = nn.Sequential(nn.Conv2d(2, 4, (3, 5), stride=(2, 1), padding=(1, 2)), nn.ReLU(),
                        nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d((2, 1)), nn.AdaptiveAvgPool2d((2, 3)),
                        nn.Flatten(), nn.Linear(24, 3))
    seen = []
    for layer in net:
        layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    net(torch.zeros(1, 2, 33, 20))
    assert reference.layer_shapes(net, (2, 33, 20)) == seen
    assert reference.layer_shapes(models.LeNet(), (1, 28, 28))[-1] == (10,)


def test_batch_norm_is_nn_batch_norm_2d_in_both_modes():
    ours, theirs = reference.BatchNorm(3, momentum=0.2), nn.BatchNorm2d(3, momentum=0.2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(2, 3, 3, 2, generator=g) * 3 + 1
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert torch.allclose(ours.running_var, theirs.running_var) and torch.allclose(ours.running_mean,
                                                                                   theirs.running_mean)
    ours.eval(), theirs.eval()
    x = torch.randn(4, 3, 2, 2, generator=g)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
