"""Reference models, and the small pretrained weights that ship with the package.

    from handwritten.models import ConvNet, load_pretrained, pretrained_history
    net = load_pretrained()                 # a trained ConvNet, in eval mode, at once
    history = pretrained_history()          # its conv kernels and error rates during training

``ConvNet`` is lesson 06's network: two 5x5 convolutions (1 -> 4 -> 8 channels, padding 2), each
followed by ReLU and 2x2 max pooling, then 392 -> 512 -> 10 dense layers with dropout, and
``retrieve_features(x)`` returning both convolutional layers' feature maps. Its ``forward`` ends
with ``log_softmax`` over the classes (``dim=1``): one distribution per image.

The weights (``weights/convnet.pt``, float16) were trained on the bundled MNIST sample by
``tools/train_pretrained.py``, which regenerates them (byte for byte on one machine; on another, to the same
accuracy: ``weights/README.md``).
"""

from __future__ import annotations

import pathlib

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = pathlib.Path(__file__).with_name("weights") / "convnet.pt"
IMAGE_SIZE = 28
NUM_CLASSES = 10
DEPTH = (4, 8)


class ConvNet(nn.Module):
    """conv(1->4, 5x5, pad 2) -> ReLU -> pool -> conv(4->8) -> ReLU -> pool -> fc 392->512 -> ReLU
    -> dropout -> fc 512->10 -> log_softmax over the classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, DEPTH[0], 5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(DEPTH[0], DEPTH[1], 5, padding=2)
        self.fc1 = nn.Linear(IMAGE_SIZE // 4 * IMAGE_SIZE // 4 * DEPTH[1], 512)
        self.fc2 = nn.Linear(512, NUM_CLASSES)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)

    def retrieve_features(self, x):
        """The feature maps of both convolutional layers, after ReLU and before pooling:
        (N, 4, 28, 28) and (N, 8, 14, 14) for N 28x28 images."""
        feature_map1 = F.relu(self.conv1(x))
        feature_map2 = F.relu(self.conv2(self.pool(feature_map1)))
        return feature_map1, feature_map2


_cache: dict = {}


def _load() -> dict:
    if "file" not in _cache:
        if not WEIGHTS.is_file():
            raise FileNotFoundError(f"the pretrained weights {WEIGHTS} are missing: reinstall the handwritten "
                                    "package, or regenerate them with `uv run python tools/train_pretrained.py`.")
        _cache["file"] = torch.load(WEIGHTS, weights_only=True)
    return _cache["file"]


def load_pretrained(model: nn.Module | None = None) -> nn.Module:
    """A trained ``ConvNet`` in eval mode; or load the weights into ``model`` (any module with the
    layers ``conv1``, ``conv2``, ``fc1`` and ``fc2`` of the same shapes) and return it."""
    model = ConvNet() if model is None else model
    state = {name: t.float() for name, t in _load()["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()


def pretrained_history() -> dict:
    """How the pretrained network got there: ``snapshots``, a list of ``[conv1.weight, conv1.bias,
    conv2.weight, conv2.bias]`` taken during training (float32); ``steps``, the batch number of
    each; ``record``, (training error %, validation error %) at each; and ``recipe``, a short text."""
    saved = _load()
    return {
        "snapshots": [[t.float() for t in snap] for snap in saved["snapshots"]],
        "steps": list(saved["steps"]),
        "record": [tuple(float(v) for v in r) for r in saved["record"]],
        "recipe": saved["recipe"],
    }


# ---------------------------------------------------------------- lesson 05: CNNs


class Mnist_CNN(nn.Module):
    """The PyTorch tutorial's CNN: three 3x3 convolutions with stride 2 (1 -> 16 -> 16 -> 10 channels,
    28 -> 14 -> 7 -> 4 pixels), each followed by ReLU, then the mean of each 4x4 map: ten scores.
    It takes flat (N, 784) rows or (N, 1, 28, 28) images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1)

    def forward(self, xb):
        xb = xb.view(-1, 1, 28, 28)
        xb = F.relu(self.conv1(xb))
        xb = F.relu(self.conv2(xb))
        xb = F.relu(self.conv3(xb))
        xb = F.avg_pool2d(xb, 4)
        return xb.view(-1, xb.size(1))


def LeNet(activation: type[nn.Module] = nn.Sigmoid, pool: type[nn.Module] = nn.AvgPool2d) -> nn.Sequential:
    """LeNet-5 for 28x28 digits, as ``nn.Sequential``: conv 1->6 (5x5, padding 2), activation, 2x2 pool,
    conv 6->16 (5x5), activation, 2x2 pool, flatten (400), dense 120, 84, 10 with the activation between
    them. The classic one uses sigmoid and average pooling; ``LeNet(nn.ReLU, nn.MaxPool2d)`` trains faster."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), activation(), pool(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), activation(), pool(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), activation(),
        nn.Linear(120, 84), activation(),
        nn.Linear(84, 10),
    )
