"""The course's reference models (handwritten.models): LeNet in its four variants and the PyTorch tutorial's CNN,
which lesson 05 builds on, and lesson 06's ConvNet with its shipped weights. (How the weights are made and checked:
tests/tools/test_train_pretrained.py.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handwritten import models
from handwritten.data import load_mnist


def test_lenet_shapes_and_parameters():
    net = models.LeNet()
    assert sum(p.numel() for p in net.parameters()) == 61_706
    x = torch.zeros(1, 1, 28, 28)
    shapes = []
    for layer in net:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14) and shapes[3] == (16, 10, 10)
    assert shapes[5] == (16, 5, 5) and shapes[6] == (400,) and shapes[-1] == (10,)
    assert isinstance(net[1], nn.Sigmoid) and isinstance(net[2], nn.AvgPool2d)   # the classic one
    relu = models.LeNet(nn.ReLU, nn.MaxPool2d)
    assert isinstance(relu[1], nn.ReLU) and isinstance(relu[2], nn.MaxPool2d)


def test_mnist_cnn_takes_rows_or_images():
    torch.manual_seed(0)
    net = models.Mnist_CNN()
    x = torch.rand(3, 784)
    assert net(x).shape == (3, 10)
    assert torch.equal(net(x), net(x.view(3, 1, 28, 28)))


# ---------------------------------------------------------------- lesson 06: the ConvNet and its pretrained weights


@pytest.fixture(scope="module")
def mnist():
    return load_mnist("sample", quiet=True)


@pytest.fixture(scope="module")
def net():
    return models.load_pretrained()


def test_pretrained_network_is_trained_and_in_eval_mode(net, mnist):
    assert isinstance(net, models.ConvNet) and not net.training
    x = mnist.test_images[1000:].float()[:, None] / 255
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == mnist.test_labels[1000:]).float().mean().item()
    assert accuracy > 0.95, accuracy  # 96.4% on the sample's held-out half when the weights were made


def test_weights_are_small_float16_package_data():
    assert models.WEIGHTS.is_file() and models.WEIGHTS.parent.name == "weights"
    assert models.WEIGHTS.stat().st_size < 800_000
    saved = torch.load(models.WEIGHTS, weights_only=True)
    assert all(t.dtype == torch.float16 for t in saved["state_dict"].values())


def test_retrieve_features_matches_the_forward_pass(net, mnist):
    x = mnist.test_images[:3].float()[:, None] / 255
    maps1, maps2 = net.retrieve_features(x[:1])
    assert maps1.shape == (1, 4, 28, 28) and maps2.shape == (1, 8, 14, 14)
    maps1, maps2 = net.retrieve_features(x)
    head = net.fc2(torch.relu(net.fc1(net.pool(maps2).flatten(1))))
    assert torch.allclose(torch.log_softmax(head, 1), net(x), atol=1e-5)
    assert torch.allclose(net(x).exp().sum(1), torch.ones(3), atol=1e-5)  # log_softmax over the classes


def test_the_weights_load_into_any_network_with_the_same_layers(net):
    class Other(models.ConvNet):
        def forward(self, x):
            return super().forward(x) * 2

    other = models.load_pretrained(Other())
    assert torch.equal(other.conv1.weight, net.conv1.weight)


def test_pretrained_history_has_a_snapshot_and_a_record_per_step():
    history = models.pretrained_history()
    snapshots, steps, record = history["snapshots"], history["steps"], history["record"]
    assert len(snapshots) == len(steps) == len(record) > 10
    assert steps[0] == 0 and steps == sorted(steps)
    assert [tuple(t.shape) for t in snapshots[0]] == [(4, 1, 5, 5), (4,), (8, 4, 5, 5), (8,)]
    assert not torch.equal(snapshots[0][0], snapshots[-1][0])
    assert record[-1][1] < record[0][1]  # the validation error fell
    assert "SGD" in history["recipe"]
