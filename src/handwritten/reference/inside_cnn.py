"""Lesson 06, inside a CNN: a validation set split off the test set, counting right answers, predicting one
image at a time, the training loop that records error rates and snapshots the kernels, the shift test's
shifted digits, and error analysis (a confusion matrix, its most confused pair). The lesson's network,
``ConvNet``, lives in ``handwritten.models``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, SubsetRandomSampler

__all__ = ["SHIFT_DIRECTIONS", "as_mnist", "confusion_matrix", "most_confused", "predict_one_by_one", "random_shift",
           "rightness", "shift_by", "shift_image", "split_test_set", "train"]

SHIFT_DIRECTIONS = ("left", "right", "up", "down")


def split_test_set(dataset, n_val: int, batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """``(validation_loader, test_loader)`` over ``dataset``: its first ``n_val`` indices and the rest, each drawn
    by a ``SubsetRandomSampler`` in a new order every epoch. (Lesson 06.)"""
    indices = range(len(dataset))
    validation_loader = DataLoader(dataset, batch_size=batch_size, sampler=SubsetRandomSampler(indices[:n_val]))
    test_loader = DataLoader(dataset, batch_size=batch_size, sampler=SubsetRandomSampler(indices[n_val:]))
    return validation_loader, test_loader


def rightness(predictions: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(number of right predictions, number of labels)`` for a batch of class scores, one row per image: counts,
    which the caller adds up over batches. (Lesson 06.)"""
    pred = predictions.detach().argmax(1)
    return (pred == labels.view_as(pred)).sum(), len(labels)


def predict_one_by_one(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class ``model`` predicts for each image, one forward pass (a batch of one) per image, in evaluation mode
    and without gradients. (Lesson 06.)"""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + 1]).argmax(1) for i in range(len(images))])


def train(net: nn.Module, train_loader, validation_loader, epochs: int = 1, lr: float = 0.05,
          record_every: int = 20) -> tuple[list, list]:
    """Train ``net`` with SGD (momentum 0.9) and the cross-entropy loss; after the step of every batch whose index
    is a multiple of ``record_every``, append to ``record`` (training error %, validation error %) and to
    ``weights`` copies of ``[conv1.weight, conv1.bias, conv2.weight, conv2.bias]``. Returns
    ``(record, weights)``. (Lesson 06.)"""
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    record, weights = [], []
    for _ in range(epochs):
        train_rights = []
        for batch_idx, (data, target) in enumerate(train_loader):
            net.train()
            output = net(data)
            loss = criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_rights.append(rightness(output, target))
            if batch_idx % record_every == 0:
                net.eval()
                with torch.no_grad():
                    val_rights = [rightness(net(images), labels) for images, labels in validation_loader]
                train_right = float(sum(r for r, _ in train_rights)) / sum(n for _, n in train_rights)
                val_right = float(sum(r for r, _ in val_rights)) / sum(n for _, n in val_rights)
                record.append((100 - 100 * train_right, 100 - 100 * val_right))
                weights.append([p.detach().clone() for p in (net.conv1.weight, net.conv1.bias,
                                                             net.conv2.weight, net.conv2.bias)])
    return record, weights


def shift_image(image: torch.Tensor, pixels: int, direction: str = "left") -> torch.Tensor:
    """``image`` (any shape ending in height, width) moved ``pixels`` pixels towards ``direction``; what moves
    in from the opposite border is zero, and a shift as wide as the image leaves nothing. Lesson 06's
    ``shift_left(img, w)`` is ``shift_image(img, w, "left")``."""
    if direction not in SHIFT_DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(SHIFT_DIRECTIONS)}, not {direction!r}")
    pixels = int(pixels)
    if pixels < 0:
        raise ValueError(f"the shift must be 0 or more pixels, not {pixels}")
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    if direction == "left" and pixels < w:
        out[..., :, :w - pixels] = image[..., :, pixels:]
    elif direction == "right" and pixels < w:
        out[..., :, pixels:] = image[..., :, :w - pixels]
    elif direction == "up" and pixels < h:
        out[..., :h - pixels, :] = image[..., pixels:, :]
    elif direction == "down" and pixels < h:
        out[..., pixels:, :] = image[..., :h - pixels, :]
    return out


def shift_by(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``images`` moved ``dy`` pixels down and ``dx`` pixels right (negative: up, left), zeros coming in."""
    moved = shift_image(images, abs(dx), "right" if dx >= 0 else "left")
    return shift_image(moved, abs(dy), "down" if dy >= 0 else "up")


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """A batch ``(N, C, H, W)`` with each image moved by its own ``(dy, dx)``, each drawn uniformly from
    ``-max_shift`` to ``max_shift``, zeros coming in: lesson 06's augmentation."""
    n, m = images.shape[0], int(max_shift)
    dy, dx = torch.randint(-m, m + 1, (n,)), torch.randint(-m, m + 1, (n,))
    return torch.stack([shift_by(image, int(y), int(x)) for image, y, x in zip(images, dy, dx)])


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """The ``(n_classes, n_classes)`` counts of each (true class, predicted class) pair: row ``i``, column ``j`` is
    how many images of class ``i`` were predicted as ``j``; the diagonal holds the right answers. One
    ``bincount``, no loop over the images. (Lesson 06.)"""
    pairs = labels.long().flatten() * n_classes + predicted.long().flatten()
    return torch.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def most_confused(confusion: torch.Tensor) -> tuple[int, int, int]:
    """``(true class, predicted class, count)`` of the largest entry of ``confusion`` off its diagonal, as plain
    ints: the mistake the network makes most often. (Lesson 06.)"""
    off = confusion.clone()
    off.fill_diagonal_(-1)
    index = int(off.flatten().argmax())
    true, predicted = divmod(index, confusion.shape[1])
    return true, predicted, int(confusion[true, predicted])


def as_mnist(drawing: torch.Tensor) -> torch.Tensor:
    """A digit drawn on a canvas of any size, ``(H, W)``, ink positive (any scale), prepared as MNIST's digits were
    (LeCun et al.): cropped to its ink, scaled with anti-aliasing, keeping its aspect ratio, to fit a 20x20 box,
    and placed in a 28x28 image so that its centre of mass is at the centre. Values from 0 to 1; a blank drawing
    gives a blank image. (Where the centre of mass lies so far to one side that the box would leave the image,
    the box is kept inside it.) For lesson 06's canvas: your own handwriting through the network."""
    ink = drawing.detach().float().clamp(min=0)
    if float(ink.max()) <= 0:
        return torch.zeros(28, 28)
    ink = ink / ink.max()
    rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
    crop = ink[int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]
    h, w = crop.shape
    size = (max(1, round(20 * h / max(h, w))), max(1, round(20 * w / max(h, w))))
    box = F.interpolate(crop[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    box = box.clamp(0, 1)
    total = box.sum()
    cy = float((box.sum(1) * (torch.arange(size[0]) + 0.5)).sum() / total)
    cx = float((box.sum(0) * (torch.arange(size[1]) + 0.5)).sum() / total)
    top = min(max(round(14 - cy), 0), 28 - size[0])
    left = min(max(round(14 - cx), 0), 28 - size[1])
    out = torch.zeros(28, 28)
    out[top:top + size[0], left:left + size[1]] = box
    return out
