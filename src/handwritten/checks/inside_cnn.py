"""Checks for lesson 06, inside a CNN: the validation split, ``rightness``, ``predict_one_by_one``,
``ConvNet`` (its ``log_softmax`` and ``retrieve_features``), ``train`` (record, snapshots and a
trained network), a vectorised ``shift_left``, and error analysis: ``confusion_matrix`` and ``most_confused``.

The oracles are PyTorch, the course's answers (``handwritten.reference.inside_cnn``) and
``handwritten.models.ConvNet`` (the lesson's network, done right). The checks bring their own data
(the MNIST the notebook uses, from the process's memo) and their own loaders, so they never depend
on a variable the student may have changed. A mistake costs only its own tests: ``train`` is checked
on the course's ``ConvNet`` with the course's ``rightness`` in place, and ``retrieve_features`` never
goes through ``forward``.

While graded, the checks run in the grader: what has to sit beside the student's code (a network behind a
``Probe``, a dataset and its loaders, a training run) is built in the student's kernel through ``observe``, which
brings back only what that code produced, to be judged in the grader; a trained network is measured in the
grader, its weights loaded into a ``ConvNet`` built there.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset

from .. import env
from ..models import ConvNet, load_pretrained
from ..reference.cnn import evaluate_accuracy
from ..reference.inside_cnn import confusion_matrix as reference_confusion
from ..reference.inside_cnn import most_confused as reference_most_confused
from ..reference.inside_cnn import predict_one_by_one as reference_one_by_one
from ..reference.inside_cnn import rightness as reference_rightness
from ..reference.inside_cnn import shift_by
from ..reference.inside_cnn import shift_image
from ._core import (CountOps, Probe, Trained, as_number, as_tensor, call, close, compare, fail, generator, mnist,
                    not_hard_coded, observe, params_vector, passed, passed_hidden, rand, randn, references_in_place,
                    require_accuracy, seeded)

__all__ = [
    "HIDDEN", "VISIBLE", "VISIBLE_GRADED", "confusion_matrix", "confusion_matrix_hidden", "convnet",
    "convnet_hidden", "features", "features_hidden", "most_confused", "most_confused_hidden", "predict_one_by_one",
    "predict_one_by_one_hidden", "random_shift", "random_shift_hidden", "rightness", "rightness_hidden",
    "shift_left", "shift_left_hidden", "shift_left_vectorised", "shift_left_vectorised_hidden", "snapshots",
    "snapshots_hidden", "split_test_set", "split_test_set_hidden", "trained", "trained_hidden", "visible_run",
]

# The lesson's recipe, as the training checks run it: SGD with momentum, this learning rate.
LR = 0.05


class NotesConvNet(nn.Module):
    """The network as the lesson's notes wrote it: ``log_softmax`` over dim 0, the batch."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(4, 8, 5, padding=2)
        self.fc1 = nn.Linear(392, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 392)
        x = F.dropout(F.relu(self.fc1(x)), training=self.training)
        return F.log_softmax(self.fc2(x), dim=0)


def _digits(indices) -> torch.Tensor:
    """MNIST test digits as the network takes them: float (N, 1, 28, 28) in [0, 1]."""
    images, _ = mnist("test", shape=(1, 28, 28), dtype=None)
    return images[indices].float() / 255


# ---------------------------------------------------------------- the validation split


def _numbered(n: int) -> TensorDataset:
    """n tiny items whose label is their own index, so a loader's batches show which items it drew."""
    return TensorDataset(torch.zeros(n, 1, 2, 2), torch.arange(n))


def _drawn(loader) -> list[int]:
    return [int(i) for _, labels in loader for i in labels]


def _split_drawn(fn, n: int, n_val: int, batch_size: int | None) -> tuple[list[int], list[int]]:
    """Split ``n`` numbered items with the student's ``split_test_set`` and draw every batch of both loaders: the
    items each drew (``observe``: the dataset and the loaders live beside the student's function). Fails only
    what is not a subset loader of that dataset."""
    dataset = _numbered(n)
    args = (dataset, n_val) if batch_size is None else (dataset, n_val, batch_size)
    result = call("split_test_set", fn, *args)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail("split_test_set should return two DataLoaders: (validation_loader, test_loader).")
    for name, loader in zip(("validation_loader", "test_loader"), result):
        if not isinstance(loader, DataLoader):
            fail(f"{name} should be a torch.utils.data.DataLoader, not {type(loader).__name__}.")
        if loader.dataset is not dataset:
            fail(f"{name} should load from the dataset it was given: DataLoader(dataset, ..., sampler=...).")
        if not isinstance(loader.sampler, SubsetRandomSampler):
            fail(f"{name} should draw its images with sampler=SubsetRandomSampler(indices) "
                 f"(it uses {type(loader.sampler).__name__}): that is what makes it a subset of the dataset, "
                 f"in a new random order each epoch.")
        expected_batch = batch_size or 64
        if loader.batch_size != expected_batch:
            fail(f"{name} has batch_size {loader.batch_size}, expected {expected_batch}"
                 + (" (the default)." if batch_size is None else "."))
    validation, test = (call(f"iterating over {name}", _drawn, loader)
                        for name, loader in zip(("validation_loader", "test_loader"), result))
    return validation, test


def _check_split(fn, n: int, n_val: int, batch_size: int | None):
    case = f"a dataset of {n} images, n_val={n_val}" + (f", batch_size={batch_size}" if batch_size else "")
    validation, test = observe(_split_drawn, fn, n, n_val, batch_size)
    if len(validation) == n - n_val and len(test) == n_val and n_val != n - n_val:
        fail(f"split_test_set for {case}: the two sets are swapped. The validation set is the first "
             f"n_val = {n_val} images, the test set the rest.")
    if len(validation) != n_val:
        hint = (" Use the n_val argument: the notes' 5,000 was half of MNIST's 10,000 test images."
                if len(validation) in (5000, min(5000, n)) else "")
        fail(f"split_test_set for {case}: the validation loader draws {len(validation)} images, "
             f"expected n_val = {n_val}.{hint}")
    shared = set(validation) & set(test)
    if shared:
        fail(f"split_test_set for {case}: {len(shared)} image(s) are in both sets (index {min(shared)}, say). "
             f"Validation and test must not overlap, or the test score is no longer measured on digits the "
             f"choices were not made on. Validation gets indices[:n_val], test indices[n_val:].")
    if len(test) != n - n_val or set(validation) | set(test) != set(range(n)):
        fail(f"split_test_set for {case}: the test loader draws {len(test)} images, expected the other "
             f"{n - n_val}; together the two sets should hold each image exactly once.")
    if set(validation) != set(range(n_val)):
        fail(f"split_test_set for {case}: the validation set should be the first n_val indices, "
             f"range(len(dataset))[:n_val].")


def split_test_set(fn):
    """Visible check: the sample's test split in two halves, and a tiny dataset."""
    _check_split(fn, 2000, 1000, 64)
    _check_split(fn, 10, 4, 3)
    passed("split_test_set", 2)


def split_test_set_hidden(fn, seed):
    g = generator(seed)
    _check_split(fn, 30, 12, None)
    for _ in range(4):
        n = int(torch.randint(5, 300, (1,), generator=g))
        n_val = int(torch.randint(1, n, (1,), generator=g))
        batch = int(torch.randint(1, 100, (1,), generator=g))
        _check_split(fn, n, n_val, batch)
    passed_hidden("split_test_set")


# ---------------------------------------------------------------- rightness


def _count(what: str, value) -> int:
    number = as_number("rightness", value, what)
    if math.isfinite(number) and number != int(number):
        fail(f"{what} is {number}, not a whole number: rightness returns counts, (number right, number of "
             f"labels), not an accuracy. The caller adds the counts up over batches and divides at the end.")
    if not math.isfinite(number):
        fail(f"rightness: {what} is {number}, not a count.")
    return int(number)


def _check_rightness(fn, predictions, labels, case):
    result = call("rightness", fn, predictions, labels,
                  hint="Did you take the maximum over dim 0 (the batch) instead of dim 1 (the classes)?")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"rightness should return a pair (number right, number of labels), not {type(result).__name__}.")
    rights, total = _count("the number right", result[0]), _count("the number of labels", result[1])
    expected, n = reference_rightness(predictions, labels)
    expected = int(expected)
    if total != n:
        fail(f"rightness for {case}: the second number is the number of labels, {n}; got {total}.")
    if rights == expected:
        return
    over_batch = predictions.argmax(0)
    mistakes = [
        (int((over_batch == labels).sum()) if over_batch.shape == labels.shape else None,
         "the maximum is taken over dim 0, the batch: each image's prediction is the largest of its own row, "
         "over dim 1 (the classes)."),
        (n - expected, "this counts the wrong predictions; rightness counts the right ones."),
        (int((predictions.max(1)[0] == labels).sum()),
         "torch.max(predictions, 1) returns (values, indices): the predicted class is the index, [1]."),
    ]
    for wrong, description in mistakes:
        if wrong is not None and rights == wrong and wrong != expected:
            fail(f"rightness for {case}: {description}")
    fail(f"rightness for {case}: {rights} right, expected {expected}.")


def rightness(fn):
    """Visible check: a batch of 10 (as many images as classes) and a batch of 64."""
    g = generator(6)
    cases = []
    for n in (10, 64):
        scores = randn(g, n, 10)
        labels = torch.randint(0, 10, (n,), generator=g)
        labels[: n // 2] = scores[: n // 2].argmax(1)  # about half of them right
        cases.append((scores, labels, f"a batch of {n} images"))
    for scores, labels, case in cases:
        _check_rightness(fn, scores, labels, case)
    passed("rightness", 2)


def rightness_hidden(fn, seed):
    g = generator(seed)
    for n, dtype in ((1, torch.float32), (7, torch.float64), (100, torch.float32), (33, torch.float64)):
        scores = randn(g, n, 10, dtype=dtype)
        labels = torch.randint(0, 10, (n,), generator=g)
        labels[: n // 3] = scores[: n // 3].argmax(1)
        _check_rightness(fn, scores.requires_grad_(), labels, f"a random {str(dtype)[6:]} batch of {n}")
    passed_hidden("rightness")


# ---------------------------------------------------------------- predict_one_by_one


def _one_by_one_seen(fn, network: type, images) -> tuple:
    """Run the student's ``predict_one_by_one`` on the pretrained weights in a ``network``, left in training mode
    (as a network is after training: the function must switch to eval itself), behind a ``Probe``: what it
    returned, and each forward pass's input shape and mode (``observe``: the network lives beside the function)."""
    probe = Probe(load_pretrained(network())).train()
    got = call("predict_one_by_one", fn, probe, images)
    return got, [(shape, training) for shape, training, _ in probe.calls]


def _check_one_by_one(fn, network, images, expected, case):
    got, calls = observe(_one_by_one_seen, fn, network, images)
    got = as_tensor("predict_one_by_one", got)
    n = len(images)
    batches = [shape for shape, _ in calls]
    if any(len(shape) == 4 and shape[0] > 1 for shape in batches):
        fail(f"predict_one_by_one for {case}: it called the model with a batch of "
             f"{max(s[0] for s in batches if len(s) == 4)} images. Feed them one at a time, each as a "
             f"batch of one: model(images[i:i + 1]).")
    if any(len(shape) != 4 for shape in batches):
        fail(f"predict_one_by_one for {case}: the model got an input of shape "
             f"{next(s for s in batches if len(s) != 4)}; give it a batch of one image, shape (1, 1, 28, 28): "
             f"images[i:i + 1] or images[i].unsqueeze(0).")
    if len(batches) != n:
        fail(f"predict_one_by_one for {case}: it called the model {len(batches)} times for {n} images; "
             f"call it once per image.")
    if any(training for _, training in calls):
        fail(f"predict_one_by_one for {case}: the model was still in training mode. Call model.eval() "
             f"first: in training mode dropout zeroes random units and the predictions change from run to run.")
    if got.numel() == n:
        got = got.reshape(n)
    compare("predict_one_by_one", got, expected.to(got.dtype), case=case,
            shape_hint=lambda g, e: "Return one predicted class per image: a tensor of shape (N,).")


def predict_one_by_one(fn):
    """Visible check: eight test digits, through the pretrained network and the notes' network."""
    images = _digits(range(8))
    fixed = load_pretrained()
    expected = reference_one_by_one(fixed, images)
    _check_one_by_one(fn, ConvNet, images, expected, "eight test digits and the fixed network")
    _check_one_by_one(fn, NotesConvNet, images, torch.zeros(8, dtype=torch.long),
                      "eight test digits and the notes' network (one at a time, every digit is a 0)")
    passed("predict_one_by_one", 2)


def predict_one_by_one_hidden(fn, seed):
    g = generator(seed)
    fixed = load_pretrained()
    n_test = len(mnist("test", dtype=None)[1])
    for n in (1, 5):
        images = _digits(torch.randint(0, n_test, (n,), generator=g))
        _check_one_by_one(fn, ConvNet, images, reference_one_by_one(fixed, images), f"{n} random test digit(s)")
    passed_hidden("predict_one_by_one")


# ---------------------------------------------------------------- ConvNet: its layers and forward

LAYERS = [("conv1", nn.Conv2d, (4, 1, 5, 5), "nn.Conv2d(1, 4, 5, padding=2)"),
          ("conv2", nn.Conv2d, (8, 4, 5, 5), "nn.Conv2d(4, 8, 5, padding=2)"),
          ("fc1", nn.Linear, (512, 392), "nn.Linear(392, 512)"),
          ("fc2", nn.Linear, (10, 512), "nn.Linear(512, 10)")]
FORWARD_HINT = "After two 2x2 poolings each image is 8 maps of 7x7 = 392 numbers: x.view(-1, 392) or x.flatten(1)."


def _instantiate(cls):
    net = call("ConvNet()", cls)
    if not isinstance(net, nn.Module):
        fail("ConvNet should be a subclass of nn.Module (class ConvNet(nn.Module): ...).")
    for name, kind, shape, how in LAYERS:
        layer = getattr(net, name, None)
        if not isinstance(layer, kind):
            fail(f"ConvNet needs a layer self.{name} = {how}.")
        if tuple(layer.weight.shape) != shape:
            fail(f"self.{name}.weight has shape {tuple(layer.weight.shape)}, expected {shape}: "
                 f"self.{name} = {how}.")
        if layer.bias is None:
            fail(f"self.{name} should have a bias (the default): {how}.")
    for name in ("conv1", "conv2"):
        if tuple(getattr(net, name).padding) != (2, 2):
            fail(f"self.{name} needs padding=2: with a 5x5 kernel, that keeps a 28x28 image 28x28.")
    return net


def _layer_weights(source: nn.Module) -> dict:
    """The four layers' weights and biases of ``source``, as data: what the student's network is given."""
    return {name: (getattr(source, name).weight.detach(), getattr(source, name).bias.detach()) for name, *_ in LAYERS}


def _with_weights_of(cls, weights: dict) -> nn.Module:
    """The student's network with the four layers' ``weights`` (``_layer_weights``), in eval mode."""
    net = _instantiate(cls)
    with torch.no_grad():
        for name, (weight, bias) in weights.items():
            getattr(net, name).weight.copy_(weight)
            getattr(net, name).bias.copy_(bias)
    return net.eval()


def _reference_with_random_weights(seed):
    return seeded(seed, lambda: ConvNet().eval())


def _reference_logits(ref, x):
    with torch.no_grad():
        h = ref.pool(F.relu(ref.conv1(x)))
        h = ref.pool(F.relu(ref.conv2(h)))
        return ref.fc2(F.relu(ref.fc1(h.flatten(1))))


def _forward_seen(cls, weights, x) -> tuple:
    """The student's network with ``weights``, in eval mode, run twice on ``x``: both outputs (``observe``)."""
    net = _with_weights_of(cls, weights)
    with torch.random.fork_rng(devices=[]):
        out = as_tensor("ConvNet.forward", call("ConvNet.forward", net, x, hint=FORWARD_HINT))
        again = call("ConvNet.forward", net, x, hint=FORWARD_HINT)
    return out, again


def _check_forward(cls, ref, x, case):
    out, again = observe(_forward_seen, cls, _layer_weights(ref), x)
    out = as_tensor("ConvNet.forward", out)
    n = len(x)
    if tuple(out.shape) != (n, 10):
        fail(f"ConvNet.forward for {case}: the output has shape {tuple(out.shape)}, expected ({n}, 10): "
             f"one row of 10 class log-probabilities per image.")
    if not close(out, again):
        fail(f"ConvNet.forward for {case}: in eval mode two calls give different outputs, so dropout is still "
             f"active. Use F.dropout(x, training=self.training) (or an nn.Dropout layer), which does nothing "
             f"after model.eval().")
    logits = _reference_logits(ref, x)
    expected = F.log_softmax(logits, dim=1)
    if close(out, expected):
        return
    columns = out.detach().double().exp().sum(0)
    if close(out, F.log_softmax(logits, dim=0)) or close(columns, torch.ones_like(columns)):
        fail(f"ConvNet.forward for {case}: log_softmax over dim=0 normalises over the batch: each class's "
             f"column sums to probability 1 across the images, instead of each image's row across the classes, "
             f"so an image's prediction depends on the other images in the batch (and a batch of one is all "
             f"zeros: class 0). Use F.log_softmax(x, dim=1).")
    if close(out, logits):
        fail(f"ConvNet.forward for {case}: these are raw scores; forward should end with "
             f"F.log_softmax(x, dim=1), log-probabilities of the 10 classes.")
    fail(f"ConvNet.forward for {case}: wrong values. The order is conv1, ReLU, pool, conv2, ReLU, pool, "
         f"flatten, fc1, ReLU, dropout, fc2, log_softmax over dim 1.")


def _training_mode_seen(cls, x) -> tuple:
    """A new student's network, in training mode, run twice on ``x`` (dropout drawing from seed 0): both outputs
    (``observe``)."""
    net = _instantiate(cls)
    net.train()
    return seeded(0, lambda: tuple(call("ConvNet.forward", net, x, hint=FORWARD_HINT) for _ in range(2)))


def _check_training_mode(cls, x, case):
    first, second = observe(_training_mode_seen, cls, x)
    rows = as_tensor("ConvNet.forward", first).detach().double().exp().sum(1)
    if not close(rows, torch.ones_like(rows)):
        fail(f"ConvNet.forward for {case}, in training mode: each row should be log-probabilities "
             f"(F.log_softmax(x, dim=1)).")
    if close(first, second):
        fail(f"ConvNet.forward for {case}, in training mode: two calls give the same output, so there is no "
             f"dropout. Add F.dropout(x, training=self.training) after fc1's ReLU.")


def convnet(cls):
    """Visible check: five test digits through the pretrained weights, in eval and training mode."""
    x = _digits(range(5))
    _check_forward(cls, load_pretrained(), x, "five test digits")
    _check_forward(cls, load_pretrained(), x[:1], "a single digit")
    _check_training_mode(cls, x, "five test digits")
    passed("ConvNet", 3)


def convnet_hidden(cls, seed):
    g = generator(seed)
    for n in (1, 3, 64):
        x = rand(g, n, 1, 28, 28)
        _check_forward(cls, _reference_with_random_weights(seed + n), x, f"a random batch of {n}")
    passed_hidden("ConvNet")


# ---------------------------------------------------------------- ConvNet.retrieve_features


def _feature_hint(which, got, expected):
    if len(got) != 4:
        return "Keep the batch dimension: for N images the maps are (N, channels, height, width)."
    if which == 1 and got[1:] == (4, 14, 14):
        return ("That is after pooling: feature_map1 is conv1's output after ReLU, before the pool "
                "(which only comes next).")
    if which == 2 and got[1:] == (8, 7, 7):
        return "That is after the second pooling: feature_map2 is conv2's output after ReLU, before pooling."
    if which == 2 and got[1:] == (8, 28, 28):
        return "conv2 sees the pooled first layer: pool feature_map1 before giving it to conv2."
    return None


def _features_seen(cls, weights, x):
    """What the student's network with ``weights`` returns from ``retrieve_features(x)`` (``observe``)."""
    net = _with_weights_of(cls, weights)
    return call("retrieve_features", net.retrieve_features, x)


def _first_feature_map(cls, weights, x):
    """The first of the maps ``retrieve_features`` returns (``not_hard_coded`` compares two digits')."""
    return observe(_features_seen, cls, weights, x)[0]


def _check_features(cls, ref, x, case):
    maps = observe(_features_seen, cls, _layer_weights(ref), x)
    if not isinstance(maps, (tuple, list)) or len(maps) != 2:
        fail("retrieve_features should return two tensors: (feature_map1, feature_map2).")
    with torch.no_grad():
        conv1 = ref.conv1(x)
        expected1 = F.relu(conv1)
        conv2 = ref.conv2(ref.pool(expected1))
        expected2 = F.relu(conv2)
    for which, got, expected, raw in ((1, maps[0], expected1, conv1), (2, maps[1], expected2, conv2)):
        layer = f"conv{which}"
        compare(f"retrieve_features (feature_map{which})", got, expected, case=case,
                shape_hint=lambda g, e, which=which: _feature_hint(which, g, e),
                mistakes=[(f"these are {layer}'s outputs before the ReLU; the maps are F.relu({layer}(...)), "
                           f"as forward computes them.", raw)])


def features(cls):
    """Visible check: one test digit (maps 4x28x28 and 8x14x14), with the pretrained weights."""
    ref = load_pretrained()
    _check_features(cls, ref, _digits(range(1)), "one test digit")
    not_hard_coded("retrieve_features", functools.partial(_first_feature_map, cls, _layer_weights(ref)),
                   [(_digits([1]),), (_digits([2]),)])
    passed("retrieve_features", 1)


def features_hidden(cls, seed):
    g = generator(seed)
    for n in (3, 1):
        x = rand(g, n, 1, 28, 28)
        _check_features(cls, _reference_with_random_weights(seed + n), x, f"a random batch of {n}")
    passed_hidden("retrieve_features")


# ---------------------------------------------------------------- train: record, snapshots, a trained network


@dataclass(frozen=True)
class TrainingRun:
    """What a ``train`` check trains: a fresh ``ConvNet`` on the training digits ``first:first + n_train``, in
    batches of ``batch_size``, validated on the first ``n_val`` test digits; the accuracy it must then reach on
    1,000 held-out test digits (1000:2000)."""

    first: int
    n_train: int
    epochs: int
    batch_size: int
    record_every: int
    threshold: float
    n_val: int = 500
    other: bool = False  # "other digits": not those of the visible check

    @property
    def batches(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    def case(self, record: bool = True) -> str:
        epochs = "one epoch" if self.epochs == 1 else f"{'two' if self.epochs == 2 else self.epochs} epochs"
        digits = f"{self.n_train:,} {'other ' if self.other else ''}digits"
        return f"{epochs} of {digits}" + (f", record_every={self.record_every}" if record else "")


# Test accuracy (on 1,000 held-out digits) a network trained by a correct ``train`` must reach in the checks'
# runs, with the lesson's lr 0.05, measured on the bundled sample over six seeds (6, 1943, 1-4) with the
# instructor's train; "broken" is the best of: without zero_grad, without step, with the notes' lr 0.001.
# - The self-check, one epoch of 8,000 digits in batches of 64: 0.91-0.93. Untrained 0.10; without zero_grad
#   0.10, without step 0.14, with the notes' lr 0.001 0.25.
VISIBLE = TrainingRun(first=0, n_train=8000, epochs=1, batch_size=64, record_every=25, threshold=0.85)
VISIBLE_SEED = 6
# While graded the checks train less (the whole graded run must take a few seconds): batches of 32, which learn
# more per digit seen at the start than batches of 64, and cost less per step; 63 steps for the visible run
# (it was 125) and 66 for the hidden one (it was 126). record_every puts the last record at the last batch, so
# a correct record's last validation entry is the trained network's validation error.
# - Graded, one epoch of 2,000 digits: 0.740-0.840; broken 0.095-0.357 (untrained and without step 0.090-0.139,
#   without zero_grad 0.095-0.106, lr 0.001 0.099-0.357).
# - Hidden, two epochs of 1,056 other digits: 0.759-0.850; broken 0.095-0.260 (without step 0.090-0.139,
#   without zero_grad 0.095-0.109, lr 0.001 0.096-0.260).
VISIBLE_GRADED = TrainingRun(first=0, n_train=2000, epochs=1, batch_size=32, record_every=31, threshold=0.6)
HIDDEN = TrainingRun(first=4000, n_train=1056, epochs=2, batch_size=32, record_every=16, threshold=0.6, other=True)

_runs: dict = {}  # where the student's train runs: what each configuration's training returned, once per train
_untrained: dict = {}  # here: each seed's fresh network, (its weights, its accuracy); no student code in them


def _run(fn, config: TrainingRun, seed: int) -> dict:
    """Train a fresh course ``ConvNet`` with the student's ``train`` (the course's ``rightness`` in place), as
    ``config`` says, and measure it here: the trained weights are loaded into a ``ConvNet`` built here, which alone
    is measured on 1,000 held-out test digits (an accuracy computed beside the student's code could be forged)."""
    held_out = mnist("test", start=1000, stop=2000, shape=(1, 28, 28))
    if seed not in _untrained:
        fresh = seeded(seed, ConvNet)  # the network the student's train is given: the same seed, the same weights
        _untrained[seed] = params_vector(fresh), evaluate_accuracy(fresh, _batches(*held_out))
    initial, untrained = _untrained[seed]
    if untrained >= config.threshold:
        fail(f"the untrained model already reaches {untrained:.3f}: the check itself is broken.")
    seen = observe(_trained_seen, fn, asdict(config), seed)
    net = ConvNet()
    try:
        net.load_state_dict(seen["state"])
    except (RuntimeError, TypeError, ValueError) as error:
        fail(f"train for {config.case()}: after training, the network no longer has the layers of the ConvNet it "
             f"was given ({error}); train should train that network in place, not change it.")
    run = Trained(net, seen["result"], evaluate_accuracy(net, _batches(*held_out)), untrained)
    return dict(run=run, config=config, initial=initial, shared=seen["shared"], log=seen["log"],
                validation=mnist("test", stop=config.n_val, shape=(1, 28, 28)))


def _trained_seen(fn, fields: dict, seed: int) -> dict:
    """Train a fresh course ``ConvNet``, built from ``seed``, with the student's ``train``, as the ``TrainingRun``
    ``fields`` say: what ``train`` returned, the trained weights, and which of the snapshots' tensors are the live
    weights' own memory (``observe``: the network and the loaders live beside ``train``). Each configuration trains
    once per ``train``."""
    config = TrainingRun(**fields)
    key = (fn, config, seed)
    if key not in _runs:
        _runs[key] = _train(fn, config, seed)
    return _runs[key]


class _Watched(ConvNet):
    """The course's ``ConvNet``, keeping a log of its forward passes: the mode it was in, whether gradients were
    on, and the classes it predicted. (Its state_dict is a ``ConvNet``'s.)"""

    def __init__(self, log: list):
        super().__init__()
        self.log = log

    def forward(self, x):
        out = super().forward(x)
        self.log.append({"what": "forward", "training": self.training, "grad": torch.is_grad_enabled(),
                         "predicted": out.detach().argmax(1)})
        return out


class _Logged(DataLoader):
    """A ``DataLoader`` that writes into ``log`` when a pass over it starts and ends, and each batch's labels."""

    def __init__(self, *args, kind: str, log: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind, self.log = kind, log

    def __iter__(self):
        self.log.append({"what": "start", "kind": self.kind})
        for data, target in super().__iter__():
            self.log.append({"what": "batch", "kind": self.kind, "labels": target.clone()})
            yield data, target
        self.log.append({"what": "end", "kind": self.kind})


def _train(fn, config: TrainingRun, seed: int) -> dict:
    log: list = []
    train_set = mnist("train", start=config.first, stop=config.first + config.n_train, shape=(1, 28, 28))
    train_loader = _Logged(TensorDataset(*train_set), batch_size=config.batch_size, shuffle=True,
                           generator=generator(seed), kind="train", log=log)
    validation = mnist("test", stop=config.n_val, shape=(1, 28, 28))
    validation_loader = _Logged(TensorDataset(*validation), batch_size=250, kind="validation", log=log)

    def student_train():
        net = _Watched(log)
        with references_in_place(fn, rightness=reference_rightness):
            return net, call("train", fn, net, train_loader, validation_loader, epochs=config.epochs, lr=LR,
                             record_every=config.record_every)

    net, result = seeded(seed, student_train)
    live = [net.conv1.weight, net.conv1.bias, net.conv2.weight, net.conv2.bias]
    weights = result[1] if isinstance(result, (tuple, list)) and len(result) == 2 else None
    shared = [[isinstance(got, torch.Tensor) and got.data_ptr() == param.data_ptr()
               for got, param in zip(snapshot, live)] if isinstance(snapshot, (tuple, list)) else []
              for snapshot in (weights if isinstance(weights, (tuple, list)) else [])]
    return {"result": result, "state": dict(net.state_dict()), "shared": shared, "log": log}


def _batches(images, labels, size: int = 250):
    """Images and labels in batches (a forward pass over 250 images at a time is faster than over 1,000)."""
    return zip(images.split(size), labels.split(size))


def _validation_error(trained) -> float:
    """The trained network's error on the validation digits, in percent."""
    return 100 * (1 - evaluate_accuracy(trained["run"].model, _batches(*trained["validation"])))


def _replay(log: list) -> tuple[list[dict], set[str], int]:
    """What a training run's log says ``train`` did: for each whole pass over the validation loader, the entry it
    should have added to ``record`` (the epoch and batch index it followed; the training error % over that
    epoch's batches so far, by the first forward pass of each; the validation error % of the pass), the modes
    that were wrong ("train-eval", "validation-training", "validation-grad"), and how many training batches were
    taken. Worked out in the grader, from data."""
    entries, problems = [], set()
    kind, labels, fresh = None, None, False
    epoch, batch, right, seen, total_right, total_seen, train_batches = -1, -1, 0, 0, 0, 0, 0
    validation = [0, 0]
    for event in log:
        what = event["what"]
        if what == "start" and event["kind"] == "train":
            epoch, batch, right, seen = epoch + 1, -1, 0, 0
        elif what == "start":
            validation = [0, 0]
        elif what == "batch":
            kind, labels, fresh = event["kind"], event["labels"], True
            if kind == "train":
                batch, train_batches = batch + 1, train_batches + 1
        elif what == "forward" and fresh:  # the first forward pass after a batch is the one that batch went through
            fresh = False
            hits = int((event["predicted"] == labels).sum())
            if kind == "train":
                if not event["training"]:
                    problems.add("train-eval")
                right, seen = right + hits, seen + len(labels)
                total_right, total_seen = total_right + hits, total_seen + len(labels)
            else:
                if event["training"]:
                    problems.add("validation-training")
                if event["grad"]:
                    problems.add("validation-grad")
                validation = [validation[0] + hits, validation[1] + len(labels)]
        elif what == "end" and event["kind"] == "validation":
            def error(hits, n):
                return 100 - 100 * hits / n if n else None
            entries.append({"epoch": epoch, "batch": batch, "train": error(right, seen),
                            "all_epochs": error(total_right, total_seen),
                            "validation": error(*validation)})
    return entries, problems, train_batches


MODES = {
    "validation-training": "the validation digits went through the network in training mode: call net.eval() "
                           "before measuring the validation error (a network with dropout or batch norm "
                           "measures something else in training mode).",
    "validation-grad": "the validation digits went through the network with gradients on: measure the "
                       "validation error under torch.no_grad() (nothing is learnt from them, and autograd's "
                       "record of every operation only costs memory).",
    "train-eval": "a training batch went through the network in evaluation mode: after validating, put the "
                  "network back with net.train() (call it at the start of every batch).",
}


def _check_against_log(trained, record: list, case: str):
    """record, judged against what the run's log shows ``train`` did: the loaders it was given, the modes, and
    each entry's meaning (this epoch's training error so far, the whole validation set's error)."""
    config = trained["config"]
    entries, problems, train_batches = _replay(trained["log"])
    if train_batches == 0:
        fail(f"train for {case}: no batch was taken from the train_loader train was given: train on that "
             f"argument, not on a loader of the notebook's.")
    if not entries:
        fail(f"train for {case}: train never went through the validation_loader it was given: measure the "
             f"validation error on that argument, not on a loader of the notebook's (the notebook's "
             f"validation_loader is not the one a caller passes).")
    for problem in ("validation-training", "validation-grad", "train-eval"):
        if problem in problems:
            fail(f"train for {case}: {MODES[problem]}")
    if len(entries) != len(record):
        fail(f"train for {case}: record has {len(record)} entries, but train went through the whole "
             f"validation_loader {len(entries)} times: measure it once for each entry, every record_every "
             f"batches.")
    for k, (entry, expected) in enumerate(zip(record, entries)):
        where = f"entry {k} of record (epoch {expected['epoch']}, batch_idx {expected['batch']})"
        if expected["batch"] % config.record_every:
            fail(f"train for {case}: {where} was measured after batch_idx {expected['batch']}, which is not a "
                 f"multiple of record_every = {config.record_every}: record after the step of each batch whose "
                 f"batch_idx % record_every == 0.")
        train_error, validation_error = (as_number("train", value, "each error rate in record") for value in entry)
        if abs(validation_error - expected["validation"]) > 1e-3:
            fail(f"train for {case}: {where} gives the validation error as {validation_error:.3f}%, but the "
                 f"network got {expected['validation']:.3f}% of the validation digits wrong in that pass: count "
                 f"the right predictions over every batch of validation_loader, then 100 - 100 * right / total.")
        if abs(train_error - expected["train"]) > 1e-3:
            why = ("it is over every batch since training began; the training error is over this epoch's "
                   "batches so far: start counting again at each epoch."
                   if abs(train_error - expected["all_epochs"]) <= 1e-3 else
                   "the training error is 100 - 100 * right / total over this epoch's batches so far, this one "
                   "included, each counted with rightness(output, target) on the output it was trained on.")
            fail(f"train for {case}: {where} gives the training error as {train_error:.3f}%, but the network "
                 f"got {expected['train']:.3f}% of this epoch's training digits so far wrong: {why}")


def _check_record_and_snapshots(trained, case):
    run, config = trained["run"], trained["config"]
    result = run.result
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail("train should return two lists: (record, weights).")
    record, weights = result
    per_epoch = math.ceil(config.batches / config.record_every)
    expected = per_epoch * config.epochs
    n_record = call("len(record)", len, record,
                    explain=lambda error: f"record should be a list, not {type(record).__name__}.")
    if not isinstance(record, (tuple, list)):
        record = call("iterating over record", list, record)
    if n_record != expected:
        fail(f"train for {case}: record has {n_record} entries, expected {expected}: one whenever "
             f"batch_idx % record_every == 0, that is {per_epoch} per epoch of {config.batches} batches, "
             f"in each of the {config.epochs} epoch(s).")
    for entry in record:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            fail("each entry of record should be a pair (training error %, validation error %).")
        for value in entry:
            if isinstance(value, torch.Tensor):
                fail(f"train for {case}: record holds a tensor (shape {tuple(value.shape)}) where a plain "
                     f"number belongs: turn the count into a Python number, float(right), before "
                     f"100 - 100 * right / total (plots and prints tell a record of tensors from numbers).")
            number = as_number("train", value, "each error rate in record")
            if not 0 <= number <= 100:
                fail(f"record holds {number}: error rates are percentages, between 0 and 100.")
    last_val = as_number("train", record[-1][1], "each error rate in record")
    # Mostly wrong by the record, mostly right in fact: accuracies. (The graded runs record at their last batch,
    # so there a correct record's last entry is exactly the network's validation error.)
    if last_val > 50 and (val_error := _validation_error(trained)) < 50:
        fail(f"train for {case}: the last validation entry in record is {last_val:.1f}, but the network "
             f"gets only {val_error:.1f}% of the validation digits wrong: record should hold error "
             f"rates, 100 - accuracy in percent, not accuracies.")
    _check_against_log(trained, record, case)
    n_weights = call("len(weights)", len, weights,
                     explain=lambda error: f"weights should be a list, not {type(weights).__name__}.")
    if not isinstance(weights, (tuple, list)):
        weights = call("iterating over weights", list, weights)
    if n_weights != n_record:
        fail(f"train for {case}: weights has {n_weights} snapshots, record {n_record} entries; take a "
             f"snapshot each time you add to record.")
    net = run.model
    live = [net.conv1.weight, net.conv1.bias, net.conv2.weight, net.conv2.bias]
    shared = trained["shared"]  # reported where train ran: whether each tensor is a live weight's own memory
    for k, snapshot in enumerate(weights):
        if not isinstance(snapshot, (tuple, list)) or len(snapshot) != 4:
            fail("each snapshot should be [conv1.weight, conv1.bias, conv2.weight, conv2.bias].")
        for j, (got, param) in enumerate(zip(snapshot, live)):
            got = as_tensor("a snapshot", got)
            if tuple(got.shape) != tuple(param.shape):
                fail(f"a snapshot holds a tensor of shape {tuple(got.shape)} where {tuple(param.shape)} was "
                     f"expected: [conv1.weight, conv1.bias, conv2.weight, conv2.bias], in that order.")
            if k < len(shared) and j < len(shared[k]) and shared[k][j]:
                fail(f"train for {case}: the snapshots share memory with the network's live weights "
                     f"(net.conv1.weight.data is the weight itself, not a copy), so every snapshot changes as "
                     f"training goes on and all of them end up equal to the final weights. Append a copy: "
                     f"net.conv1.weight.data.clone().")
    if n_record > 1 and close(weights[0][0], weights[-1][0]):
        fail(f"train for {case}: the first and last snapshots of conv1's kernels are identical: take each "
             f"snapshot with .clone() after the step, as training goes on.")


def _check_trained(trained, case):
    threshold, initial = trained["config"].threshold, trained["initial"]

    def message(run):
        moved = not close(params_vector(run.model), initial)
        why = ("Did it call optimizer.zero_grad(), loss.backward() and optimizer.step() for every batch, "
               "with SGD(net.parameters(), lr=lr, momentum=0.9) and the lr it was given?"
               if moved else "The weights did not change at all: is optimizer.step() ever called, on "
               "net.parameters()?")
        return (f"train for {case}: the trained network gets {100 * run.accuracy:.1f}% of 1,000 test digits right; "
                f"a correct train reaches more than {100 * threshold:.0f}%. {why}")

    require_accuracy(trained["run"], threshold, message)


def visible_run() -> TrainingRun:
    """What the visible ``train`` checks train: less while nbgrader grades the notebook."""
    return VISIBLE_GRADED if env.grading() else VISIBLE


def snapshots(fn):
    """Visible check: train on 8,000 digits for one epoch, record_every=25 (less while graded): the record and
    the snapshots."""
    config = visible_run()
    _check_record_and_snapshots(_run(fn, config, VISIBLE_SEED), config.case())
    passed("train: record and snapshots", 1)


def trained(fn):
    """Visible check: the same run reaches the accuracy threshold."""
    config = visible_run()
    run = _run(fn, config, VISIBLE_SEED)
    _check_trained(run, config.case(record=False))
    passed(f"train: {100 * run['run'].accuracy:.1f}% of held-out test digits right", 1)


def snapshots_hidden(fn, seed):
    """Two epochs of other digits, in other batches: a record and snapshots for every epoch."""
    _check_record_and_snapshots(_run(fn, HIDDEN, seed), HIDDEN.case())
    passed_hidden("train: record and snapshots")


def trained_hidden(fn, seed):
    """The same run of two epochs reaches its accuracy threshold."""
    _check_trained(_run(fn, HIDDEN, seed), HIDDEN.case())
    passed_hidden("train: the trained network's accuracy")


# ---------------------------------------------------------------- shift_left

EMPTY_SLICE = "Careful with img[..., :-w]: when w = 0, :-0 is :0, an empty slice. Write img.shape[-1] - w."


def _shift_seen(fn, img, w) -> tuple:
    """What the student's ``shift_left(img, w)`` returned, and whether it changed ``img`` (``observe``: the image
    it changes is the one beside it)."""
    original = img.clone()
    got = call("shift_left", fn, img, w, hint=f"(for w = {w}) {EMPTY_SLICE}" if w == 0 else "")
    return got, not torch.equal(img, original)


def _check_shift(fn, img, w, case):
    got, changed = observe(_shift_seen, fn, img, w)
    got = as_tensor("shift_left", got)
    if changed:
        fail(f"shift_left for {case} changed its input: build a new tensor (torch.zeros_like(img)) and "
             f"leave img as it was.")
    expected = shift_image(img, w, "left")
    if got.dtype != img.dtype:
        fail(f"shift_left for {case}: the output is {got.dtype}, the input {img.dtype}; keep the dtype "
             f"(torch.zeros_like(img) does).")
    width = img.shape[-1]
    mistakes = [("the image moved right; shift_left moves it left: out[..., j] = img[..., j + w].",
                 shift_image(img, w, "right")),
                ("the columns that fall off the left edge came back on the right (torch.roll wraps around); "
                 "the last w columns must be zero.", torch.roll(img, -w, dims=-1))]
    if img.ndim >= 2 and img.shape[-2] > w:
        mistakes.append(("the image moved up: shift along the last dimension (the columns), not the rows.",
                         shift_image(img, w, "up")))
    for other in (w - 1, w + 1):
        if 0 <= other != w:
            mistakes.append((f"the image moved {other} pixels, not w = {w}.", shift_image(img, other, "left")))
    if w == 0 and got.shape == img.shape and not bool(got.any()) and bool(img.any()):
        fail(f"shift_left for {case}: with w = 0 the image should come back unchanged, but it is all zeros. "
             f"{EMPTY_SLICE}")
    if w >= width and got.shape == img.shape and bool(got.any()):
        fail(f"shift_left for {case}: shifting a {width}-pixel-wide image by w = {w} pixels leaves nothing; "
             f"the result should be all zeros. (A slice like :width - w goes negative here.)")
    compare("shift_left", got, expected, case=case, mistakes=mistakes,
            shape_hint=lambda g, e: "The shifted image has the same shape as the input.")


def shift_left(fn):
    """Visible check: the 5x6 example with w = 2, and a test digit shifted 3 pixels, as in the notes."""
    example = torch.arange(1.0, 31.0).reshape(5, 6)
    _check_shift(fn, example, 2, "the 5x6 example, w = 2")
    _check_shift(fn, _digits([0])[0, 0], 3, "a 28x28 test digit, w = 3")
    passed("shift_left", 2)


def shift_left_hidden(fn, seed):
    g = generator(seed)
    shapes = [(28, 28), (1, 28, 28), (4, 1, 28, 28), (7, 9), (2, 3, 5, 11)]
    for k, shape in enumerate(shapes):
        dtype = torch.float64 if k % 2 else torch.float32
        img = rand(g, *shape, dtype=dtype)
        width = shape[-1]
        for w in (0, 1, int(torch.randint(2, width, (1,), generator=g)), width - 1, width, width + 2):
            _check_shift(fn, img, w, f"a random {shape} {str(dtype)[6:]} image, w = {w}")
    passed_hidden("shift_left")


def _operations(fn, img, w) -> int:
    """How many tensor operations ``fn(img, w)`` makes (``observe``: counted where it runs)."""
    with CountOps() as counter:
        call("shift_left", fn, img, w)
    return counter.count


def _looping(counts: dict, over: str = "rows or columns") -> str | None:
    """A message if the operation counts, {shape: count}, grow with the image: a loop over pixels, rows,
    columns or images makes one or more per step."""
    ordered = sorted(counts, key=counts.get)
    few_shape, many_shape = ordered[0], ordered[-1]
    few, many = counts[few_shape], counts[many_shape]
    if many > few + 4 or few > 60:
        return (f"shift_left made {few} tensor operations for a {'x'.join(map(str, few_shape))} image and {many} "
                f"for a {'x'.join(map(str, many_shape))} one: it loops over {over}. Vectorise it: one "
                f"slice assignment, out[..., :width - w] = img[..., w:], moves every pixel at once.")
    return None


def shift_left_vectorised(fn):
    """shift_left must not loop over pixels: the number of tensor operations it makes must not grow
    with the image (a loop over columns makes one or two per column)."""
    counts = {(28, 28): observe(_operations, fn, torch.rand(28, 28), 3),
              (3, 40, 56): observe(_operations, fn, torch.rand(3, 40, 56), 5)}
    if message := _looping(counts):
        fail(message)
    passed(f"shift_left: vectorised, {counts[3, 40, 56]} tensor operations whatever the size", 2)


def shift_left_vectorised_hidden(fn, seed):
    """Other sizes, and batches of images: no loop over the images of a batch either. Shifts between 1 and
    the width - 1 only: 0 and the whole width are shift_left_hidden's."""
    g = generator(seed)

    def size(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    shapes = [(size(5, 12), size(5, 12)), (size(16, 32), 1, size(20, 40), size(20, 40)),
              (size(2, 4), size(40, 64), size(40, 64)), (size(8, 16), size(2, 3), size(10, 30), size(30, 60))]
    counts = {}
    for shape in shapes:
        counts[shape] = observe(_operations, fn, rand(g, *shape), size(1, shape[-1] - 1))
        if message := _looping(counts, over="rows, columns or the images of a batch"):
            fail(message)
    passed_hidden("shift_left: vectorised")


# ---------------------------------------------------------------- error analysis: confusion_matrix, most_confused


def _confusion_seen(fn, predicted, labels, n_classes) -> tuple:
    """What the student's ``confusion_matrix`` returned, and how many tensor operations it made (``observe``:
    counted where it runs)."""
    with CountOps() as counter:
        got = call("confusion_matrix", fn, predicted.clone(), labels.clone(), n_classes)
    return got, counter.count


def _predictions(g, n: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n labels, and predictions right about two times in three, wrong ones drawn at random."""
    labels = torch.randint(0, n_classes, (n,), generator=g)
    wrong = torch.randint(0, n_classes, (n,), generator=g)
    predicted = torch.where(torch.rand(n, generator=g) < 0.67, labels, wrong)
    return predicted, labels


def _check_confusion(fn, predicted, labels, n_classes, case) -> int:
    got, operations = observe(_confusion_seen, fn, predicted, labels, n_classes)
    got = as_tensor("confusion_matrix", got)
    expected = reference_confusion(predicted, labels, n_classes)
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        fail(f"confusion_matrix for {case}: the counts are {got.dtype}; a confusion matrix counts images, so it "
             f"holds integers (torch.long, as torch.bincount gives them).")
    compare("confusion_matrix", got, expected, case=case, shape_hint=lambda got, want: (
        f"One row and one column per class: n_classes = {n_classes}, whatever the largest label in this batch."),
        mistakes=(("rows and columns are swapped: row i should be the images whose true class is i, column j "
                   "those predicted as j.", expected.T),))
    return operations


def _looping_confusion(counts: dict) -> str | None:
    few, many = counts[min(counts)], counts[max(counts)]
    if many > few + 10:
        return (f"confusion_matrix made {few} tensor operations for {min(counts)} images and {many} for "
                f"{max(counts)}: it loops over the images. Count every (true, predicted) pair at once: "
                f"labels * n_classes + predicted numbers the pairs 0 to n_classes² - 1, and torch.bincount "
                f"counts them (or index_put_ with accumulate=True).")
    return None


def confusion_matrix(fn):
    """Visible check: a hand-made example of 6 images and 3 classes, then 2,000 random predictions over 10
    classes (and 200, to see that the number of operations does not grow with the images)."""
    predicted, labels = torch.tensor([0, 2, 1, 1, 2, 0]), torch.tensor([0, 1, 1, 2, 2, 0])
    _check_confusion(fn, predicted, labels, 3, "predicted [0, 2, 1, 1, 2, 0], labels [0, 1, 1, 2, 2, 0], 3 classes")
    g = generator(2006)
    counts = {n: _check_confusion(fn, *_predictions(g, n, 10), 10, f"{n:,} random predictions over 10 classes")
              for n in (200, 2000)}
    if message := _looping_confusion(counts):
        fail(message)
    passed("confusion_matrix", 3)


def confusion_matrix_hidden(fn, seed):
    """Other numbers of classes (a class that never occurs among the labels or predictions, n_classes larger than
    the largest label), int32 inputs, a single image, and no loop over 5,000 images."""
    g = generator(seed)
    one = torch.tensor([4]), torch.tensor([1])
    _check_confusion(fn, *one, 6, "a single image of class 1 predicted as 4, 6 classes")
    predicted, labels = _predictions(g, 300, 4)
    _check_confusion(fn, predicted, labels, 7, "300 predictions of classes 0-3, n_classes = 7")
    predicted, labels = _predictions(g, 500, 13)
    _check_confusion(fn, predicted.int(), labels.int(), 13, "500 int32 predictions over 13 classes")
    counts = {n: _check_confusion(fn, *_predictions(g, n, 10), 10, f"{n:,} random predictions over 10 classes")
              for n in (50, 5000)}
    if message := _looping_confusion(counts):
        fail(message)
    passed_hidden("confusion_matrix")


def _check_most_confused(fn, confusion, case):
    got = call("most_confused", fn, confusion.clone())
    true, predicted, count = expected = reference_most_confused(confusion)
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        fail(f"most_confused for {case}: return three numbers, (true class, predicted class, count); got "
             f"{type(got).__name__}{f' of length {len(got)}' if isinstance(got, (tuple, list)) else ''}.")
    if any(isinstance(value, torch.Tensor) for value in got):
        fail(f"most_confused for {case}: return plain Python ints, not tensors (int(...) or .item()).")
    if any(not isinstance(value, int) or isinstance(value, bool) for value in got):
        fail(f"most_confused for {case}: return plain Python ints; got {tuple(type(v).__name__ for v in got)}.")
    got = tuple(got)
    if got == expected:
        return
    diagonal = int(confusion.diagonal().argmax())
    if got[:2] == (diagonal, diagonal):
        fail(f"most_confused for {case}: ({diagonal}, {diagonal}) is on the diagonal, where the right answers are; "
             f"leave it out (set it below any count, or mask it) before looking for the largest entry.")
    if got == (predicted, true, count):
        fail(f"most_confused for {case}: got {got}, which is (predicted, true, count): the row is the true class, "
             f"the column the predicted one, so the answer is {expected}.")
    fail(f"most_confused for {case}: got {got}, expected {expected}: the largest count off the diagonal, as "
         f"(its row, its column, the count).")


def _confusions(g, n_classes: int) -> torch.Tensor:
    """A confusion matrix with a large diagonal and one largest entry off it, at a random place."""
    confusion = torch.randint(0, 20, (n_classes, n_classes), generator=g)
    confusion.fill_diagonal_(0)
    confusion += torch.diag(torch.randint(200, 400, (n_classes,), generator=g))
    i, j = torch.randperm(n_classes, generator=g)[:2].tolist()
    confusion[i, j] = 40
    return confusion


def most_confused(fn):
    """Visible check: a 3x3 example whose largest entry is on the diagonal, and a 10x10 one whose most confused
    pair lies below the diagonal."""
    example = torch.tensor([[50, 2, 7], [1, 60, 3], [9, 4, 70]])
    _check_most_confused(fn, example, "[[50, 2, 7], [1, 60, 3], [9, 4, 70]]")
    confusion = _confusions(generator(1998), 10)
    confusion[7, 2] = 45
    _check_most_confused(fn, confusion, "a 10x10 matrix")
    passed("most_confused", 2)


def most_confused_hidden(fn, seed):
    """Other sizes (2 to 20 classes), and the pair in the last row or column."""
    g = generator(seed)
    for n in (2, 4, 12, 20):
        confusion = _confusions(g, n)
        _check_most_confused(fn, confusion, f"a {n}x{n} matrix")
    confusion = _confusions(g, 11)
    confusion[10, 0] = 60
    _check_most_confused(fn, confusion, "an 11x11 matrix whose pair is in its last row")
    confusion[0, 10] = 70
    _check_most_confused(fn, confusion, "an 11x11 matrix whose pair is in its last column")
    passed_hidden("most_confused")


# ---------------------------------------------------------------- random_shift: the augmentation


def _random_shift_seen(fn, images, max_shift) -> tuple:
    """What the student's ``random_shift(images, max_shift)`` returned, and whether it changed ``images``
    (``observe``: the batch it changes is the one beside it)."""
    original = images.clone()
    got = call("random_shift", fn, images, max_shift)
    return got, not torch.equal(images, original)


def _check_random_shift(fn, images, max_shift, case):
    """Each output image must be its input moved by whole pixels, (dy, dx) within ±max_shift, zeros coming in;
    over the batch the shifts must vary, reach both ends of the range in both directions, and dy and dx be drawn
    apart. Random images (no zero pixel) leave one shift that fits each."""
    got, changed = observe(_random_shift_seen, fn, images, max_shift)
    got = as_tensor("random_shift", got)
    if changed:
        fail(f"random_shift for {case}: it changed the images it was given; return a new batch (the same images are "
             f"shifted again, differently, in the next epoch).")
    if tuple(got.shape) != tuple(images.shape):
        fail(f"random_shift for {case}: the output has shape {tuple(got.shape)}, expected {tuple(images.shape)}: "
             f"the same batch, each image moved inside its own frame.")
    m = int(max_shift)
    found = torch.full((len(images), 2), m + 1)  # (dy, dx) of each image; m + 1: none found yet
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            same = (shift_by(images, dy, dx) == got.detach().to(images.dtype)).flatten(1).all(1)
            found[same & (found[:, 0] > m)] = torch.tensor([dy, dx])
    missing = (found[:, 0] > m).nonzero().flatten()
    if len(missing):
        k = int(missing[0])
        rolled = any(torch.equal(torch.roll(images[k], (dy, dx), (-2, -1)), got[k].detach().to(images.dtype))
                     for dy in range(-m, m + 1) for dx in range(-m, m + 1))
        why = ("it is the image rolled: what leaves on one side comes back on the other. Pixels that come in "
               "must be zeros (pad, or slice into a batch of zeros)." if rolled else
               f"it is not the image moved by whole pixels, at most {m} in each direction, with zeros coming in.")
        fail(f"random_shift for {case}: image {k} of the output: {why}")
    if m == 0:
        return
    dys, dxs = found[:, 0], found[:, 1]
    if len(found.unique(dim=0)) == 1:
        fail(f"random_shift for {case}: every image of the batch moved by the same (dy, dx) = "
             f"{tuple(found[0].tolist())}; draw a shift for each image (torch.randint(..., (n,))), so that the "
             f"network sees each digit in many places.")
    for name, values in (("dy", dys), ("dx", dxs)):
        if int(values.max()) < m or int(values.min()) > -m:
            end = f"+{m}" if int(values.max()) < m else f"-{m}"
            fail(f"random_shift for {case}: over {len(images)} images, {name} never reached {end}: shifts are drawn "
                 f"from -max_shift to +max_shift, both included (torch.randint's high is excluded: "
                 f"torch.randint(-max_shift, max_shift + 1, ...)).")
    if torch.equal(dys, dxs) or torch.equal(dys, -dxs):
        fail(f"random_shift for {case}: dy and dx are always {'equal' if torch.equal(dys, dxs) else 'opposite'}: "
             f"the images only move along a diagonal. Draw dy and dx separately.")


def random_shift(fn):
    """Visible check: 500 random 1x10x10 images with max_shift 2, and 300 test digits with max_shift 3."""
    g = generator(2020)
    _check_random_shift(fn, torch.rand(500, 1, 10, 10, generator=g) + 0.1, 2,
                        "500 random 1x10x10 images, max_shift=2")
    digits = mnist("test", stop=300, shape=(1, 28, 28))[0]
    _check_random_shift(fn, digits + 0.01, 3, "300 test digits (plus 0.01, so that no pixel is 0), max_shift=3")
    passed("random_shift", 2)


def random_shift_hidden(fn, seed):
    """max_shift 0 (nothing moves), 1 and 4; three channels, images that are not square, float64."""
    g = generator(seed)
    _check_random_shift(fn, rand(g, 400, 3, 7, 9) + 0.1, 1, "400 random 3x7x9 images, max_shift=1")
    _check_random_shift(fn, rand(g, 800, 1, 12, 11, dtype=torch.float64) + 0.1, 4,
                        "800 random 1x12x11 float64 images, max_shift=4")
    _check_random_shift(fn, rand(g, 20, 1, 6, 6) + 0.1, 0, "20 random images, max_shift=0")
    passed_hidden("random_shift")
