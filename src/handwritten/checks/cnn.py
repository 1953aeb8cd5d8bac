"""Checks for lesson 05, CNNs: ``Lambda``, ``preprocess``, ``WrappedDataLoader``, ``LeNet`` and the table of
its layer shapes, ``evaluate_accuracy`` and ``train_fast``, the fast training loop of a trained CNN.

The oracle is PyTorch, through the course's answers: ``handwritten.reference.cnn`` and ``models.LeNet``. A later
exercise is checked with the reference versions of the earlier ones in place, and the trained-model checks train
the course's LeNet (not the student's) with the student's loop and measure it with the reference
``evaluate_accuracy``: a wrong LeNet or a wrong ``evaluate_accuracy`` costs only its own tests. Every call into the
student's code goes through ``_core.call``.

While graded, these checks run in the grader and the student's objects stay in their kernel (``_remote``): what
the student's code must be given and cannot be sent there (a DataLoader, a network, a LeNet to train) is built
there by ``observe``, from data sent from here; the functions given to Lambda are the course's, defined here. What
the student's code did comes back as data (outputs, the calls a probe noted, parameters, the trained weights) and
is judged here: the trained weights go into the check's own LeNet, measured here.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import env, models
from ..reference import cnn as reference
from ..reference.batching import TensorBatches
from ._core import (Probe, as_number, call, close, compare, cpu_clock, fail, generator, mnist, observe,
                    params_vector, passed, passed_hidden, randn, references_in_place, seeded, train_then_check)

__all__ = [
    "CHALLENGE", "CHALLENGE_LINE", "THRESHOLD", "batch_norm", "batch_norm_hidden", "challenge", "challenge_hidden",
    "challenge_terms", "evaluate_accuracy", "evaluate_accuracy_hidden", "lambda_layer", "lambda_layer_hidden",
    "layer_shapes", "layer_shapes_hidden", "lenet", "lenet_hidden", "lenet_shapes", "lenet_shapes_hidden",
    "preprocess", "preprocess_hidden", "train_fast_record", "train_fast_record_hidden", "trained", "trained_hidden",
    "wrapped", "wrapped_hidden",
]

LENET_PARAMETERS = 61_706


# ---------------------------------------------------------------- Lambda

LAMBDA_HINT = "Lambda(func) keeps func in __init__ (self.func = func) and forward(x) returns self.func(x)."


# The functions the checks give Lambda are the course's, defined here (partials of them for a closure's
# values): a lambda could not be sent to the student's kernel while graded.


def _times(factor, t):
    return t * factor


def _plus(shift, t):
    return t + shift


def _flatten(t):
    return t.view(t.size(0), -1)


def _built_lambda(cls, func, case):
    """``Lambda(func)``, which must be a module (``observe``: built beside the student's class, and kept there)."""
    layer = call("Lambda", cls, func, hint=LAMBDA_HINT)
    if not isinstance(layer, nn.Module):
        fail(f"Lambda({case}) is a {type(layer).__name__}, not an nn.Module: nn.Sequential only takes modules. "
             f"Subclass nn.Module and call super().__init__() first.")
    return layer


def _make_lambda(cls, func, case):
    return observe(_built_lambda, cls, func, case)


def _parameter_count(module):
    return len(list(module.parameters()))


def _in_sequential(layer, weight, bias, x):
    """``nn.Sequential(layer, nn.Linear)`` with the linear layer's ``weight`` and ``bias`` sent by the check, on ``x``
    (``observe``: the Sequential is built beside the student's layer)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return call("nn.Sequential with your Lambda", nn.Sequential(layer, linear), x, hint=LAMBDA_HINT)


def _gradient_through(cls, x):
    """The gradient of ``Lambda(t * w)(x).sum()`` with respect to ``w``, all ones (``observe``: ``w`` is made
    beside the layer, where the backward pass runs)."""
    w = torch.ones(len(x), requires_grad=True)
    call("Lambda", _built_lambda(cls, partial(_times, w), "t * w"), x).sum().backward()
    return w.grad


def _check_lambda(cls, func, x, case):
    layer = _make_lambda(cls, func, case)
    got = call("Lambda", layer, x, hint=LAMBDA_HINT)
    expected = func(x)
    if isinstance(got, torch.Tensor) and got.shape == x.shape and close(got, x) and not close(expected, x):
        fail(f"Lambda({case}) returned its input unchanged: forward must apply the function it was given, "
             f"return self.func(x).")
    compare(f"Lambda({case})", got, expected)
    if observe(_parameter_count, layer):
        fail(f"Lambda({case}) has parameters: a Lambda layer only applies a function, it learns nothing.")
    return layer


def lambda_layer(cls):
    x = torch.arange(12.0).reshape(2, 6)
    _check_lambda(cls, partial(_times, 2), x, "lambda t: t * 2")
    images = torch.rand(3, 1, 4, 4, generator=generator(5))
    flatten = _check_lambda(cls, _flatten, images, "a flattening view")
    linear = nn.Linear(16, 2)
    out = observe(_in_sequential, flatten, linear.weight.detach(), linear.bias.detach(), images)
    compare("nn.Sequential(Lambda(flatten), nn.Linear(16, 2))", out, linear(images.view(3, -1)))
    passed("Lambda", 3)


def lambda_layer_hidden(cls, seed):
    g = generator(seed)
    x = randn(g, 5, 3, 4, dtype=torch.float64)
    shift = randn(g, 4, dtype=torch.float64)
    _check_lambda(cls, partial(_plus, shift), x, "a closure adding a random vector, float64")
    _check_lambda(cls, F.relu, randn(g, 7, 2), "torch.relu")
    # two layers keep their own function (not one stored on the class)
    a = _make_lambda(cls, partial(_plus, 1), "t + 1")
    b = _make_lambda(cls, partial(_times, 10), "t * 10")
    y = torch.ones(2)
    compare("Lambda(t + 1) after a second Lambda was made", call("Lambda", a, y), y + 1)
    compare("Lambda(t * 10)", call("Lambda", b, y), y * 10)
    # gradients flow through it
    compare("the gradient through Lambda(t * w)", observe(_gradient_through, cls, torch.arange(3.0)),
            torch.arange(3.0))
    passed_hidden("Lambda")


# ---------------------------------------------------------------- preprocess

PREPROCESS_HINT = ("preprocess(x, y) returns x as images, x.view(-1, 1, 28, 28) (batch, channel, height, width), "
                   "and y unchanged.")


def _check_preprocess(fn, x, y, case):
    result = call("preprocess", fn, x, y, hint=PREPROCESS_HINT)
    if not isinstance(result, tuple | list) or len(result) != 2:
        fail(f"preprocess for {case}: return the pair (images, labels), got {type(result).__name__}.")
    xb, yb = result
    expected = x.view(-1, 1, 28, 28)

    def hint(got, want):
        if got == (len(x), 28, 28):
            return "The channel dimension is missing: a convolution wants (batch, channels, height, width)."
        if got[:1] == (1,) and len(x) != 1:
            return "The batch must come first: (batch, 1, 28, 28), not (1, batch, 28, 28)."
        if len(got) == 4 and got[-2:] == (28, 28) and got[0] * got[1] == len(x):
            return "(batch, 1, 28, 28): one channel per image, the batch first."
        return PREPROCESS_HINT

    compare(f"preprocess for {case}: the images", xb, expected, shape_hint=hint)
    compare(f"preprocess for {case}: the labels", yb, y)
    if isinstance(yb, torch.Tensor) and yb.dtype != y.dtype:
        fail(f"preprocess for {case}: the labels changed dtype ({y.dtype} to {yb.dtype}): return y unchanged.")


def preprocess(fn):
    g = generator(7)
    x = torch.rand(5, 784, generator=g)
    y = torch.randint(0, 10, (5,), generator=g)
    _check_preprocess(fn, x, y, "5 flat images")
    passed("preprocess", 1)


def preprocess_hidden(fn, seed):
    g = generator(seed)
    for n, dtype in [(1, torch.float32), (3, torch.float64), (64, torch.float32)]:
        x = randn(g, n, 784, dtype=dtype)
        y = torch.randint(0, 10, (n,), generator=g)
        _check_preprocess(fn, x, y, f"{n} image(s), {dtype}")
    passed_hidden("preprocess")


# ---------------------------------------------------------------- WrappedDataLoader

WRAPPED_HINT = ("WrappedDataLoader(dl, func) keeps both; __len__ returns len(self.dl); __iter__ loops over "
                "self.dl and yields func(*batch) for every batch.")


def _data_loader(x, y, batch_size):
    """The tensors ``x``, ``y`` in order, in batches: a DataLoader (built by the check, and by ``observe`` beside the
    student's class for it to wrap, since a loader cannot be sent there)."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def _doubled_and_shifted(a, b):
    return a * 2, b + 1


def _row_sums(a, b):
    return a.sum(1), b


def _check_wrapped(cls, dl, func, case, twin=None):
    """``twin``: what the student's class wraps, ``dl`` built anew beside it (``dl`` itself when it is data)."""
    wrapped = call("WrappedDataLoader", cls, dl if twin is None else twin, func, hint=WRAPPED_HINT)
    length = call("len(WrappedDataLoader(...))", len, wrapped, hint=WRAPPED_HINT)
    if length != len(dl):
        fail(f"WrappedDataLoader for {case}: len() is {length}, but the loader it wraps has {len(dl)} batches. "
             f"__len__ should return len(self.dl).")
    expected = [func(*b) for b in dl]
    for attempt in ("the first pass", "the second pass"):
        got = call("iterating over WrappedDataLoader", list, wrapped, hint=WRAPPED_HINT)
        if len(got) != len(expected):
            extra = (" Every `for` loop over it must start again: make __iter__ loop over self.dl, do not keep "
                     "one iterator made in __init__." if attempt == "the second pass" else "")
            fail(f"WrappedDataLoader for {case}: {attempt} gave {len(got)} batches, expected {len(expected)}. "
                 f"Training loops go over the data once per epoch, so it must work twice.{extra}")
        for i, (batch, want) in enumerate(zip(got, expected)):
            if not isinstance(batch, tuple | list) or len(batch) != len(want):
                fail(f"WrappedDataLoader for {case}: batch {i} should be what func returns, the pair {len(want)} "
                     f"items long; got {type(batch).__name__}. Yield func(*batch): the * unpacks (xb, yb).")
            for name, part, ref in zip(("xb", "yb"), batch, want):
                compare(f"WrappedDataLoader for {case}, {attempt}, batch {i}: {name}", part, ref)


def wrapped(cls):
    g = generator(11)
    x, y = torch.rand(10, 784, generator=g), torch.randint(0, 10, (10,), generator=g)
    _check_wrapped(cls, _data_loader(x, y, 4), reference.preprocess,
                   "10 images in batches of 4, with the reference preprocess", twin=observe(_data_loader, x, y, 4))
    passed("WrappedDataLoader", 2)


def wrapped_hidden(cls, seed):
    g = generator(seed)
    x, y = randn(g, 13, 6), torch.randint(0, 3, (13,), generator=g)
    _check_wrapped(cls, _data_loader(x, y, 5), _doubled_and_shifted, "another function and batch size",
                   twin=observe(_data_loader, x, y, 5))
    batches = [(randn(g, 2, 3), torch.arange(2)) for _ in range(3)]
    _check_wrapped(cls, batches, _row_sums, "a plain list of batches")
    passed_hidden("WrappedDataLoader")


# ---------------------------------------------------------------- LeNet


def _layer_outputs(net, x):
    """The output shapes of the convolutions and dense layers of ``net`` for ``x``, in call order; and the
    failure its forward raised, if any (reported after the shapes seen so far)."""
    shapes, hooks = [], []
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            hooks.append(module.register_forward_hook(
                lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape[1:])))))
    out, failure = None, None
    try:
        out = call("LeNet", net, x, explain=lambda e: f"LeNet on a batch of {len(x)} images of 1×28×28 raised "
                                                      f"{type(e).__name__}: {e}")
    except AssertionError as error:
        failure = error
    finally:
        for h in hooks:
            h.remove()
    return shapes, out, failure


EXPECTED_LAYERS = [("Conv2d", (6, 28, 28)), ("Conv2d", (16, 10, 10)), ("Linear", (120,)), ("Linear", (84,)),
                   ("Linear", (10,))]
LAYER_NAMES = ["the first convolution", "the second convolution", "the first dense layer", "the second dense layer",
               "the last dense layer"]


def _built_lenet(fn):
    """``LeNet()``, which must be a module (``observe``: built beside the student's function, and kept there)."""
    net = call("LeNet", fn, hint="LeNet() returns a new network, for example an nn.Sequential of its layers.")
    if not isinstance(net, nn.Module):
        fail(f"LeNet() should return an nn.Module (an nn.Sequential, say), got {type(net).__name__}.")
    return net


def _seeded_lenets(fn, seed, n):
    """``n`` LeNets made one after the other with torch's random state set to ``seed`` (``observe``)."""
    return seeded(seed, lambda: tuple(_built_lenet(fn) for _ in range(n)))


def _parameters(net):
    return [p.detach() for p in net.parameters()]


def _lenet_seen(net, x):
    """What ``net`` does with ``x`` (``observe``): the shapes of its layers' outputs, its output, the message of
    the failure its forward raised, and its parameters."""
    shapes, out, failure = _layer_outputs(net, x)
    return shapes, out, None if failure is None else str(failure), _parameters(net)


def _eval_output(net, x):
    """``net``'s output for ``x`` in eval mode, without gradients (``observe``)."""
    net.eval()
    with torch.no_grad():
        return call("LeNet", net, x)


def _gradients_reached(net, x, y):
    """Whether each parameter of ``net`` gets a gradient from the cross-entropy of its output for ``x`` against ``y``,
    in training mode (``observe``: the backward pass runs beside the network)."""
    net.train()
    F.cross_entropy(call("LeNet", net, x), y).backward()
    return [p.grad is not None for p in net.parameters()]


def _check_lenet_shapes(net, n):
    """Check the student's ``net`` on a batch of ``n`` random digits: the batch and the parameters it has."""
    x = torch.rand(n, 1, 28, 28, generator=generator(n))
    shapes, out, failure, params = observe(_lenet_seen, net, x)
    for name, (kind, want), got in zip(LAYER_NAMES, EXPECTED_LAYERS, shapes):
        if got == (kind, want):
            continue
        if name == "the first convolution" and got[1] == (6, 24, 24):
            fail("LeNet: the first convolution gives 6×24×24 maps, not 6×28×28: a 5×5 kernel on a 28×28 digit "
                 "needs padding=2 to keep the size (28 + 2·2 - 5 + 1 = 28).")
        fail(f"LeNet on a batch of {n}: {name} outputs {got[0]} {got[1]}, expected {kind} {want}.")
    if failure is not None:
        fail(failure)
    if len(shapes) != len(EXPECTED_LAYERS):
        fail(f"LeNet has {sum(k == 'Conv2d' for k, _ in shapes)} convolutions and "
             f"{sum(k == 'Linear' for k, _ in shapes)} dense layers; it should have 2 and 3.")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n, 10):
        fail(f"LeNet on a batch of {n} should output ({n}, 10): ten scores per image; got "
             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
    count = sum(p.numel() for p in params)
    if count != LENET_PARAMETERS:
        fail(f"LeNet has {count:,} parameters, expected {LENET_PARAMETERS:,}.")
    return x, params


def _check_lenet_values(net, x, params, case):
    """Put the student's weights ``params`` into the course's LeNet (in order) and compare the outputs: this checks
    the activations and the pooling, which leave no trace in the shapes."""
    variants = {
        "sigmoid and average pooling": models.LeNet(),
        "ReLU": models.LeNet(nn.ReLU, nn.AvgPool2d),
        "max pooling": models.LeNet(nn.Sigmoid, nn.MaxPool2d),
        "ReLU and max pooling": models.LeNet(nn.ReLU, nn.MaxPool2d),
    }
    got = observe(_eval_output, net, x)
    with torch.no_grad():
        outputs = {}
        for name, ref in variants.items():
            for p, q in zip(ref.parameters(), params):
                p.copy_(q)
            outputs[name] = ref.eval()(x)
    mistakes = [(f"these are the outputs of LeNet with {name}. This exercise asks for the classic LeNet: "
                 f"sigmoid after every layer but the last, and average pooling (the lesson compares the others later).",
                 out) for name, out in outputs.items() if name != "sigmoid and average pooling"]
    compare(f"LeNet's output for {case}", got, outputs["sigmoid and average pooling"], mistakes=mistakes,
            atol=1e-5)


def lenet(fn):
    net = observe(_built_lenet, fn)
    x, params = _check_lenet_shapes(net, 1)
    _check_lenet_values(net, x, params, "one random image")
    passed("LeNet", 3)


def lenet_hidden(fn, seed):
    net, other = observe(_seeded_lenets, fn, seed, 2)
    x, params = _check_lenet_shapes(net, 7)
    _check_lenet_values(net, x, params, "7 random images")
    if all(torch.equal(p, q) for p, q in zip(params, observe(_parameters, other))):
        fail("LeNet() returns networks with identical weights: each call should make a new, randomly "
             "initialised network.")
    if not all(observe(_gradients_reached, net, x, torch.arange(7) % 10)):
        fail("LeNet: some parameters get no gradient: every layer must be used in forward.")
    passed_hidden("LeNet")


# ---------------------------------------------------------------- the table of shapes

# The layer of ``models.LeNet()`` (an nn.Sequential) each entry of the table describes.
TABLE_LAYERS = {"conv1": 0, "pool1": 2, "conv2": 3, "pool2": 5, "flatten": 6, "fc1": 7, "fc2": 9, "fc3": 11}
VARIANTS = {"sigmoid and average pooling": (nn.Sigmoid, nn.AvgPool2d),
            "ReLU and average pooling": (nn.ReLU, nn.AvgPool2d),
            "sigmoid and max pooling": (nn.Sigmoid, nn.MaxPool2d),
            "ReLU and max pooling": (nn.ReLU, nn.MaxPool2d)}


def _as_shape(value):
    if isinstance(value, torch.Size | tuple | list):
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, int):
        return (value,)
    return None


def _measured_shapes(net, n: int = 1) -> dict:
    """What the course's ``net`` really gives for a batch of ``n`` digits, layer by layer, without the batch
    dimension: measured with hooks (the table is not checked against itself)."""
    seen = {}
    hooks = [net[i].register_forward_hook(lambda m, i, o, key=key: seen.__setitem__(key, tuple(o.shape[1:])))
             for key, i in TABLE_LAYERS.items()]
    with torch.no_grad():
        net(torch.zeros(n, 1, 28, 28))
    for h in hooks:
        h.remove()
    return seen


def _table(fn) -> dict:
    table = call("lenet_shapes", fn)
    if not isinstance(table, dict):
        fail(f"lenet_shapes() should return a dict of shapes by layer name, got {type(table).__name__}.")
    return table


def _check_table(table, seen, where=""):
    for key, want in seen.items():
        if key not in table:
            fail(f"lenet_shapes: the table has no entry {key!r}.")
        got = _as_shape(table[key])
        if got is None:
            fail(f"lenet_shapes: the shape of {key} should be a tuple of whole numbers, got {table[key]!r}.")
        if got[:1] == (1,) and got[1:] == want:   # with the batch dimension: fine
            continue
        if got != want:
            fail(f"lenet_shapes: {key} is {want}, not {got}{where}. Work it out layer by layer: a k×k convolution "
                 f"with padding p takes n to n + 2p - k + 1, a 2×2 pooling with stride 2 halves it.")


def lenet_shapes(fn):
    seen = _measured_shapes(models.LeNet())
    _check_table(_table(fn), seen)
    passed("the table of LeNet's shapes", len(seen))


def lenet_shapes_hidden(fn, seed):
    """The same table for every LeNet the lesson trains (activations and the kind of pooling change no shape), on a
    batch of digits whose size comes from ``seed``; and every size a whole number, as PyTorch needs it (the
    visible check reads 14.0 as 14: a halving with / instead of //)."""
    table = _table(fn)
    n = int(torch.randint(2, 65, (1,), generator=generator(seed)))
    for name, (activation, pool) in VARIANTS.items():
        _check_table(table, _measured_shapes(models.LeNet(activation, pool), n),
                     f" (LeNet with {name}, a batch of {n} digits)")
    for key in TABLE_LAYERS:
        value = table[key]
        sizes = value if isinstance(value, torch.Size | tuple | list) else (value,)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in sizes):
            fail(f"lenet_shapes: {key} is {value!r}: a shape is made of whole numbers (int), and PyTorch refuses "
                 f"any other. Halving with / gives a float (28 / 2 = 14.0): use // (28 // 2 = 14).")
    passed_hidden("the table of LeNet's shapes")


# ---------------------------------------------------------------- evaluate_accuracy

EVALUATE_HINT = ("the prediction for each image is the argmax of its row of scores, over the classes (dim=1); "
                 "count the right ones over every batch, and divide by the number of images.")


def _dropout_network(weight, bias):
    """A linear classifier with these weights behind heavy dropout, in a Probe that notes, at every call, the mode
    and whether gradients were recorded."""
    linear = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return Probe(nn.Sequential(nn.Dropout(0.8), linear))


def _dropout_problem(seed, n_batches, batch, n_in=8, n_classes=4, dtype=torch.float32):
    """A linear classifier behind heavy dropout, and batches labelled so that it is right on most of them in
    eval mode; in train mode dropout makes it right far less often."""
    g = generator(seed)
    net = _dropout_network(randn(g, n_classes, n_in, dtype=dtype), torch.zeros(n_classes, dtype=dtype))
    linear = net.net[1]
    batches = []
    for size in batch if isinstance(batch, list) else [batch] * n_batches:
        x = randn(g, size, n_in, dtype=dtype)
        with torch.no_grad():
            y = linear(x).argmax(dim=1)
        wrong = torch.rand(size, generator=g) < 0.3          # about 30 % of the labels are wrong
        y = torch.where(wrong, (y + 1) % n_classes, y)
        batches.append((x, y))
    return net, batches


def _expected_accuracy(net, batches):
    net.eval()   # and it stays so: the check measures the mistakes it names in eval mode too
    with torch.no_grad():
        right = sum(int((net.net(x).argmax(dim=1) == y).sum()) for x, y in batches)
    return right / sum(len(y) for _, y in batches)


def _evaluated(fn, weight, bias, batches):
    """``evaluate_accuracy`` of the dropout network with these weights, given in training mode, on an iterator over
    ``batches`` (``observe``: the network is built beside the student's function): its result, and how it called
    the network (the input's shape, the mode, whether gradients were recorded)."""
    net = _dropout_network(weight, bias)
    result = call("evaluate_accuracy", fn, net, iter(batches), hint=EVALUATE_HINT)
    return result, [tuple(c) for c in net.calls]


def _check_evaluate(fn, net, batches, case):
    expected = _expected_accuracy(net, batches)
    linear = net.net[1]
    result, calls = observe(_evaluated, fn, linear.weight.detach(), linear.bias.detach(), batches)
    if not calls:
        fail(f"evaluate_accuracy for {case}: the network was never called.")
    if any(training for _, training, _ in calls):
        fail(f"evaluate_accuracy for {case}: the network ran in training mode, with dropout switching inputs off. "
             f"Call net.eval() first.")
    if any(grad for _, _, grad in calls):
        fail(f"evaluate_accuracy for {case}: gradients were recorded. Evaluate under torch.no_grad(): it is "
             f"faster and keeps no graph in memory.")
    value = as_number("evaluate_accuracy", result, "the accuracy")
    if math.isclose(value, 100 * expected, rel_tol=1e-6):
        fail(f"evaluate_accuracy for {case}: {value} is a percentage; return a fraction between 0 and 1.")
    if not math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9):
        sizes = {len(y) for _, y in batches}
        per_batch = sum(((net.net(x).argmax(dim=1) == y).float().mean().item()) for x, y in batches) / len(batches)
        if len(sizes) > 1 and math.isclose(value, per_batch, rel_tol=1e-6):
            fail(f"evaluate_accuracy for {case}: {value:.6g} is the mean of the batches' accuracies, but the "
                 f"batches differ in size: count right predictions and images over all batches, then divide.")
        fail(f"evaluate_accuracy for {case}: got {value:.6g}, expected {expected:.6g}. Hint: {EVALUATE_HINT}")


def evaluate_accuracy(fn):
    net, batches = _dropout_problem(3, 3, 10)
    _check_evaluate(fn, net, batches, "3 batches of 10, a network with dropout")
    passed("evaluate_accuracy", 3)


def evaluate_accuracy_hidden(fn, seed):
    net, batches = _dropout_problem(seed, 0, [16, 16, 5], n_classes=6)
    _check_evaluate(fn, net, batches, "batches of 16, 16 and 5, six classes")
    net, batches = _dropout_problem(seed + 1, 1, 4, n_in=3, n_classes=4, dtype=torch.float64)
    _check_evaluate(fn, net, batches, "one square batch (4 images, 4 classes), float64")
    net, batches = _dropout_problem(seed + 2, 4, 9, n_classes=10)
    _check_evaluate(fn, net, batches, "4 batches of 9, ten classes")
    passed_hidden("evaluate_accuracy")


# ---------------------------------------------------------------- train_fast: a trained CNN

# The validation accuracy the course's LeNet must reach when trained with the student's train_fast on the lesson's
# training split (data.split_validation, seed 0). Measured on the bundled sample with the reference train_fast, seeds
# 0-5 (the seed fixes the weights; the shuffling order is the student's code's own), trained / untrained / trained
# without zero_grad (the mutant that learns least):
# - the visible check (ReLU, max pooling), all 6,666 training digits for 2 epochs in batches of 128, max_lr 0.01, all
#   1,334 validation digits: 0.942-0.951 / 0.086-0.104 / 0.100-0.118;
# - the same while graded, 750 digits for 2 epochs in batches of 16, the first 1,000 validation digits:
#   0.847-0.893 / 0.083-0.106 / 0.097-0.299;
# - the hidden check (ReLU, average pooling), 700 digits for 2 epochs in batches of 16, max_lr 0.02, the first
#   1,000 validation digits: 0.775-0.869 / 0.083-0.112 / 0.094-0.366.
# (Until lesson 05 carved its validation digits out of the training set these were measured on test digits.)
# Full MNIST only helps a trained model. The sizes leave a last, smaller batch (750 = 46 * 16 + 14, 700 = 43 * 16
# + 12), so that a total_steps that forgets it fails.
THRESHOLD = 0.7
GRADED_TEST_DIGITS = 1_000   # while graded, and in the hidden check: 1,000 validation digits measure 0.7 well enough

TRAIN_HINT = ("train_fast(net, x, y, epochs, batch_size, max_lr): Adam over net.parameters(), "
              "OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * math.ceil(len(x) / batch_size)), and for each "
              "epoch a new torch.randperm order, a step per batch (zero_grad, backward, step, scheduler.step()).")


def _explain_steps(case, n, batch_size, error):
    """The message of a train_fast that stepped OneCycleLR past its total_steps (None for any other error)."""
    if "Tried to step" not in str(error):
        return None
    return (f"train_fast for {case}: OneCycleLR was stepped more often than its total_steps. With {n} images in "
            f"batches of {batch_size} there are math.ceil({n} / {batch_size}) = {math.ceil(n / batch_size)} batches "
            f"per epoch, the last one smaller: count it in total_steps.\n"
            f"train_fast raised {type(error).__name__}: {error}\nHint: {TRAIN_HINT}")


def _trained_weights(fn, make_model, seed, x, y, epochs, batch_size, max_lr, case):
    """Build ``make_model()`` and train it with the student's ``train_fast``, torch's random state set to ``seed``
    (the check builds its own model under the same seed: the same weights), and return what train_fast returned and
    the trained weights (``observe``: the training runs beside the student's code; the check loads the weights into
    its own model and measures it)."""
    def train():
        net = make_model()
        result = call("train_fast", fn, net, x, y, epochs, batch_size, max_lr, hint=TRAIN_HINT,
                      explain=partial(_explain_steps, case, len(x), batch_size))
        return result, dict(net.state_dict())

    return seeded(seed, train)


def _check_trained(fn, make_model, n_train, epochs, batch_size, max_lr, seed, case, n_test=None):
    x, y, vx, vy = _challenge_data()   # the lesson's split: training digits to train, validation digits to measure
    x, y = x[:n_train], y[:n_train]
    test = TensorBatches(vx[:n_test], vy[:n_test], 500)

    def train(net):
        with references_in_place(fn, evaluate_accuracy=reference.evaluate_accuracy):
            result, weights = observe(_trained_weights, fn, make_model, seed, x, y, epochs, batch_size, max_lr, case)
        try:
            net.load_state_dict(weights)
        except (RuntimeError, TypeError, KeyError, AttributeError) as error:
            fail(f"train_fast for {case}: the trained weights no longer fit the network it was given ({error}). "
                 f"Train the network's own parameters; do not replace its layers.")
        return result

    values = []

    def epoch_losses(run):
        losses = run.result
        if not isinstance(losses, list | tuple) or len(losses) != epochs:
            fail(f"train_fast for {case}: return a list of {epochs} numbers, the mean training loss of each epoch; "
                 f"got {losses!r:.80}.")
        values.extend(as_number("train_fast", v, f"the loss of epoch {i + 1}") for i, v in enumerate(losses))

    run = train_then_check(
        seed=seed, make_model=make_model, train=train, accuracy=lambda net: reference.evaluate_accuracy(net, test),
        threshold=THRESHOLD, check_result=epoch_losses,
        message=lambda run: f"train_fast for {case}: after training, the network gets {run.accuracy:.3f} of the "
                            f"validation digits right, below {THRESHOLD} (untrained: {run.untrained:.3f}). Did you "
                            f"zero the gradients before every backward, step the optimiser and the scheduler after "
                            f"every batch, and train for every epoch? {TRAIN_HINT}")
    if not all(math.isfinite(v) and 0 < v < 2.4 for v in values):
        fail(f"train_fast for {case}: the epoch losses {values} are not mean cross-entropy losses of a network "
             f"that learns (they start below log 10 ≈ 2.3 and fall).")
    return run.accuracy


def _lenet_relu_max():
    return models.LeNet(nn.ReLU, nn.MaxPool2d)


def trained(fn):
    n_train, epochs, bs, n_test = (750, 2, 16, GRADED_TEST_DIGITS) if env.grading() else (None, 2, 128, None)
    digits = n_train or "all the training"
    acc = _check_trained(fn, _lenet_relu_max, n_train, epochs, bs, 0.01, seed=0, n_test=n_test,
                         case=f"LeNet with ReLU and max pooling, {digits} digits, {epochs} epoch(s)")
    print(f"validation accuracy {acc:.3f} (threshold {THRESHOLD}).")
    passed("train_fast", 1)


def _lenet_relu_avg():
    return models.LeNet(nn.ReLU, nn.AvgPool2d)


def trained_hidden(fn, seed):
    _check_trained(fn, _lenet_relu_avg, 700, 2, 16, 0.02, seed=seed,
                   n_test=GRADED_TEST_DIGITS,
                   case="LeNet with ReLU and average pooling, 700 digits for 2 epochs, batches of 16, max_lr 0.02")
    passed_hidden("train_fast")


# ---------------------------------------------------------------- train_fast: its record and its mechanics

RECORD_HINT = ("return a list with one plain number per epoch: the mean training loss of that epoch's batches, each "
               "batch's loss weighted by its size (loss.item() * len(idx)), divided by len(x); start the total again "
               "at every epoch.")


def _tiny_classifier(weight, bias):
    """``nn.Sequential(nn.Flatten(), nn.Linear)`` with these weights: a tiny network train_fast can train exactly."""
    linear = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), linear)


def _fast_probed(fn, weight, bias, x, y, epochs, batch_size, max_lr, seed):
    """``fn`` trains the tiny classifier behind a ``Probe``, handed over in eval mode, with torch's random state set
    to ``seed`` (``observe``: in the kernel): what it returned, its parameters afterwards, and for every forward pass
    the batch's size, the mode and whether autograd was recording."""
    probe = Probe(_tiny_classifier(weight, bias)).eval()
    result = seeded(seed, lambda: call("train_fast", fn, probe, x, y, epochs, batch_size, max_lr, hint=TRAIN_HINT,
                                       explain=partial(_explain_steps, "a tiny network", len(x), batch_size)))
    return {"result": result, "params": params_vector(probe),
            "calls": [(c.shape[0], c.training, c.grad) for c in probe.calls]}


def _fast_simulated(weight, bias, x, y, epochs, batch_size, max_lr, seed, *, zero=True, schedule="batch"):
    """What train_fast gives on the tiny problem, right (the default) or with one of the usual mistakes: the
    record in each of the ways a student might keep it, and the parameters afterwards."""
    net = _tiny_classifier(weight, bias)   # built before the seed, as the student's is: nn.Linear draws numbers

    def run():
        opt = torch.optim.Adam(net.parameters(), lr=max_lr)
        per_epoch = math.ceil(len(x) / batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lr, total_steps=epochs * (per_epoch if schedule == "batch" else 1))
        record = {"weighted": [], "unweighted": [], "sum": [], "last": [], "running": []}
        running = 0.0
        for _ in range(epochs):
            order = torch.randperm(len(x))
            losses, sizes = [], []
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                if zero:
                    opt.zero_grad()
                loss.backward()
                opt.step()
                if schedule == "batch":
                    scheduler.step()
                losses.append(loss.item())
                sizes.append(len(idx))
            if schedule == "epoch":
                scheduler.step()
            weighted = sum(v * n for v, n in zip(losses, sizes))
            running += weighted
            record["weighted"].append(weighted / len(x))
            record["unweighted"].append(sum(losses) / len(losses))
            record["sum"].append(sum(losses))
            record["last"].append(losses[-1])
            record["running"].append(running / len(x))
        return record, params_vector(net)

    return seeded(seed, run)


def _fast_problem(seed, n, classes, dtype):
    g = generator(seed)
    x = randn(g, n, 1, 2, 3, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y, randn(g, classes, 6, dtype=dtype, scale=0.3), torch.zeros(classes, dtype=dtype)


def _check_fast_record(fn, seed, n, classes, epochs, batch_size, max_lr, case, dtype=torch.float32):
    x, y, weight, bias = _fast_problem(seed, n, classes, dtype)
    with references_in_place(fn, evaluate_accuracy=reference.evaluate_accuracy):
        seen = observe(_fast_probed, fn, weight, bias, x, y, epochs, batch_size, max_lr, seed)
    record, params = _fast_simulated(weight, bias, x, y, epochs, batch_size, max_lr, seed)
    where = f"train_fast for {case}"
    result = seen["result"]
    if not isinstance(result, list | tuple):
        fail(f"{where}: return the list of the epochs' mean training losses, not {result!r:.80}.")
    if len(result) != epochs:
        fail(f"{where}: it returned {len(result)} losses for {epochs} epochs: one mean loss per epoch, appended "
             f"after the epoch's last batch. (Train for the `epochs` you are given, not a number of your own.)")
    if any(isinstance(v, torch.Tensor) for v in result):
        fail(f"{where}: the losses are tensors; store plain Python numbers (loss.item()): a tensor that is part of "
             f"the graph keeps every batch's graph alive.")
    losses = [as_number("train_fast", v, f"the loss of epoch {i + 1}") for i, v in enumerate(result)]
    calls = seen["calls"]
    if any(not training for _, training, _ in calls):
        fail(f"{where} (a network handed over in eval mode): some batches ran in eval mode. Call net.train() at the "
             f"start of every epoch: a network with dropout or batch norm would otherwise train in the wrong mode.")
    sizes = sorted({size for size, _, _ in calls})
    want = sorted({batch_size, n % batch_size} - {0})
    if calls and sizes != want:
        fail(f"{where}: the network saw batches of {sizes} images; with {n} images in batches of {batch_size} "
             f"they hold {want}. Slice the batches with the batch_size argument.")
    if not close(seen["params"], params, atol=1e-5):
        kinds = {"the gradients were never zeroed: call opt.zero_grad() before every backward()":
                 dict(zero=False),
                 "the scheduler was stepped once per epoch: call scheduler.step() after every batch, and give "
                 "OneCycleLR the total number of batches": dict(schedule="epoch"),
                 "the learning rate never followed the one-cycle schedule: make OneCycleLR and step it after "
                 "every batch": dict(schedule=None)}
        for message, mistake in kinds.items():
            if close(seen["params"], _fast_simulated(weight, bias, x, y, epochs, batch_size, max_lr, seed,
                                                     **mistake)[1], atol=1e-5):
                fail(f"{where}: {message}.")
        if max_lr != 0.01 and close(seen["params"], _fast_simulated(weight, bias, x, y, epochs, batch_size, 0.01,
                                                                    seed)[1], atol=1e-5):
            fail(f"{where}: it trained with max_lr 0.01, not the max_lr argument ({max_lr}).")
        fail(f"{where}: after training, the parameters are not those of Adam(lr=max_lr) with "
             f"OneCycleLR(max_lr=max_lr, total_steps=epochs * math.ceil(len(x) / batch_size)), a torch.randperm "
             f"order each epoch, and zero_grad, backward, step, scheduler.step() for every batch. {TRAIN_HINT}")
    for k, got in enumerate(losses):
        if math.isclose(got, record["weighted"][k], rel_tol=1e-4, abs_tol=1e-6):
            continue
        names = {"unweighted": "the plain mean of the batches' losses, but the last batch is smaller: weight each "
                               "batch's loss by its size",
                 "sum": "the sum of the batches' losses: divide by the number of images, so that it is a mean loss "
                        "per image",
                 "last": "the loss of the epoch's last batch only: average over all of the epoch's batches",
                 "running": "the mean over every epoch so far: start the total again at every epoch"}
        for kind, message in names.items():
            if math.isclose(got, record[kind][k], rel_tol=1e-4, abs_tol=1e-6) and \
                    not math.isclose(record[kind][k], record["weighted"][k], rel_tol=1e-4):
                fail(f"{where}: the loss of epoch {k + 1} ({got:.5f}) is {message}.")
        fail(f"{where}: the loss of epoch {k + 1} is {got:.5f}, but that epoch's batches had a mean loss of "
             f"{record['weighted'][k]:.5f}. Hint: {RECORD_HINT}")


def train_fast_record(fn):
    _check_fast_record(fn, 4, 10, 3, 3, 4, 0.05, "a tiny network, 10 images in batches of 4, 3 epochs, max_lr 0.05")
    passed("train_fast's record", 1)


def train_fast_record_hidden(fn, seed):
    n = (13, 14, 16, 17)[int(torch.randint(0, 4, (1,), generator=generator(seed)))]   # batches of 5 leave a remainder
    _check_fast_record(fn, seed, n, 4, 2, 5, 0.2, f"a tiny float64 network, {n} images in batches of 5, 2 epochs",
                       dtype=torch.float64)
    passed_hidden("train_fast's record")


# ---------------------------------------------------------------- layer_shapes: the formula, for any network

SHAPES_HINT = ("go through the layers in order, keeping the current shape (channels, height, width): a convolution or "
               "a pooling takes each side n to (n + 2p - k) // s + 1 (its kernel_size, padding and stride may be ints "
               "or (height, width) pairs), an adaptive pooling to its output_size, nn.Flatten multiplies what is left, "
               "nn.Linear gives (out_features,); any other layer keeps the shape.")


def _shape_network(name):
    """The networks the checks of ``layer_shapes`` use, by name: (the network, the input shapes it takes)."""
    if name == "lenet":
        return models.LeNet(), [(1, 28, 28)]
    if name == "tutorial":
        return nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten()), [(1, 28, 28), (1, 64, 48)]
    if name == "odd":
        return nn.Sequential(
            nn.Conv2d(2, 4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2)), nn.BatchNorm2d(4), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d((2, 1)), nn.Conv2d(4, 5, 1),
            nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Dropout(0.5), nn.Linear(30, 7)), [(2, 33, 20), (2, 18, 9)]
    raise ValueError(name)


def _shape_network_on_meta(name):
    """``_shape_network(name)``'s network with its weights on the meta device (``observe``: built in the kernel and
    kept there): every attribute is there, but it cannot run, so its shapes are worked out, not measured."""
    with torch.device("meta"):
        return _shape_network(name)[0]


def _real_shapes(name, input_shape):
    """What each layer of the network really gives for one input of ``input_shape``, measured here with hooks."""
    net, _ = _shape_network(name)
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:]))) for layer in net]
    with torch.no_grad():
        net.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return net, seen


def _explain_meta(error):
    if "meta" not in str(error):
        return None
    return ("layer_shapes tried to run the network, but the checks give it a network whose weights are on the "
            "'meta' device: every layer has its attributes (kernel_size, stride, out_features ...) but no values, "
            f"so it cannot run. Work each shape out from the attributes. ({type(error).__name__}: {error})")


def _check_layer_shapes(fn, name, input_shape):
    remote = observe(_shape_network_on_meta, name)
    net, want = _real_shapes(name, input_shape)
    got = call("layer_shapes", fn, remote, input_shape, hint=SHAPES_HINT, explain=_explain_meta)
    where = f"layer_shapes for an input of {input_shape}"
    if not isinstance(got, list | tuple):
        fail(f"{where}: return a list of shapes, one per layer, not {got!r:.80}.")
    if len(got) != len(want):
        fail(f"{where}: {len(got)} shapes for a network of {len(want)} layers: one shape per layer, activations "
             f"and flattening included.")
    for i, (layer, shape, expected) in enumerate(zip(net, got, want)):
        as_tuple = _as_shape(shape)
        if as_tuple is None or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in
                                       (shape if isinstance(shape, torch.Size | tuple | list) else (shape,))):
            fail(f"{where}: the shape after layer {i} ({layer}) should be a tuple of whole numbers (int), got "
                 f"{shape!r}. Divide with //, not /.")
        if as_tuple == expected:
            continue
        hint = SHAPES_HINT
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and len(expected) == 3:
            hint = (f"this layer has kernel_size={layer.kernel_size}, padding={layer.padding}, stride={layer.stride}: "
                    f"each side n becomes (n + 2p - k) // s + 1, with the height's numbers for the height and the "
                    f"width's for the width.")
        fail(f"{where}: after layer {i}, {layer}, the shape is {expected}, not {as_tuple}. {hint}")


def layer_shapes(fn):
    _check_layer_shapes(fn, "lenet", (1, 28, 28))
    _check_layer_shapes(fn, "tutorial", (1, 28, 28))
    passed("layer_shapes", 2)


def layer_shapes_hidden(fn, seed):
    g = generator(seed)
    _check_layer_shapes(fn, "tutorial", (1, 64, 48))
    height, width = (int(v) for v in torch.randint(18, 40, (2,), generator=g))
    _check_layer_shapes(fn, "odd", (2, height, width))
    passed_hidden("layer_shapes")


# ---------------------------------------------------------------- BatchNorm

BATCH_NORM_HINT = ("in training mode, normalise each channel by the mean and the variance of the batch over its "
                   "images and pixels (dims 0, 2 and 3; the variance with unbiased=False), and move running_mean and "
                   "running_var momentum of the way towards them (running_var towards the unbiased variance, "
                   "n / (n - 1) times it), under torch.no_grad(); in eval mode, normalise with running_mean and "
                   "running_var and update nothing. Then weight * x_hat + bias, channel by channel.")


def _batch_norm_run(cls, channels, eps, momentum, weight, bias, batches, grad_out, eval_x):
    """The student's ``BatchNorm(channels, eps, momentum)`` with this ``weight`` and ``bias`` (``observe``: in the
    kernel): its output for each of ``batches`` in training mode and the running statistics after each; the
    gradients of ``(output * grad_out).sum()`` for the first batch (input, weight, bias); then, in eval mode, its
    output for ``eval_x`` and the statistics after it. It stops at the first output that is not a tensor."""
    layer = call("BatchNorm", cls, channels, eps=eps, momentum=momentum)
    if not isinstance(layer, nn.Module):
        fail(f"BatchNorm(...) should make an nn.Module, got {type(layer).__name__}.")
    layer = layer.to(weight.dtype)   # a module's parameters and buffers in the dtype of the inputs, as nn.BatchNorm2d's
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    seen = {"train": [], "stats": [], "graph": False, "grads": None, "eval": None, "after_eval": None}

    def stats():
        mean, var = layer.running_mean, layer.running_var
        seen["graph"] = seen["graph"] or any(t.requires_grad or t.grad_fn is not None for t in (mean, var))
        return mean.detach().clone(), var.detach().clone()

    layer.train()
    for i, x in enumerate(batches):
        x = x.clone().requires_grad_(i == 0)
        out = call("BatchNorm in training mode", layer, x, hint=BATCH_NORM_HINT)
        if not isinstance(out, torch.Tensor):
            seen["train"].append(out)
            return seen
        if i == 0 and out.shape == grad_out.shape and out.requires_grad:
            (out * grad_out).sum().backward()
            seen["grads"] = [x.grad, layer.weight.grad, layer.bias.grad]
        seen["train"].append(out.detach())
        seen["stats"].append(stats())
    layer.eval()
    with torch.no_grad():
        out = call("BatchNorm in eval mode", layer, eval_x, hint=BATCH_NORM_HINT)
    seen["eval"] = out.detach() if isinstance(out, torch.Tensor) else out
    seen["after_eval"] = stats()
    return seen


def _batch_norm_problem(seed, n, channels, height, width, dtype, steps=3):
    g = generator(seed)
    batches = [randn(g, n, channels, height, width, dtype=dtype, scale=2.0) + randn(g, 1, channels, 1, 1, dtype=dtype)
               for _ in range(steps)]
    weight = 1 + randn(g, channels, dtype=dtype, scale=0.5)
    bias = randn(g, channels, dtype=dtype)
    return batches, weight, bias, randn(g, n, channels, height, width, dtype=dtype), randn(g, n, channels, height,
                                                                                             width, dtype=dtype)


def _bn_reference(weight, bias, channels, eps, momentum, dtype):
    layer = nn.BatchNorm2d(channels, eps=eps, momentum=momentum).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _normalised(x, mean, var, weight, bias, eps):
    c = (slice(None), None, None)
    return weight[c] * (x - mean[c]) / torch.sqrt(var[c] + eps) + bias[c]


def _check_batch_norm(cls, seed, n, channels, height, width, eps, momentum, case, dtype=torch.float32):
    batches, weight, bias, grad_out, eval_x = _batch_norm_problem(seed, n, channels, height, width, dtype)
    seen = observe(_batch_norm_run, cls, channels, eps, momentum, weight, bias, batches, grad_out, eval_x)
    where = f"BatchNorm for {case}"
    ref = _bn_reference(weight, bias, channels, eps, momentum, dtype).train()
    running_mean, running_var = torch.zeros(channels, dtype=dtype), torch.ones(channels, dtype=dtype)
    for i, x in enumerate(batches):
        x = x.clone().requires_grad_(i == 0)
        expected = ref(x)
        got = seen["train"][i] if i < len(seen["train"]) else None
        mean, var = x.detach().mean(dim=(0, 2, 3)), x.detach().var(dim=(0, 2, 3), unbiased=False)
        mistakes = [
            ("in training mode each channel is normalised by the batch's own mean and variance, over its images and "
             "every pixel (dims 0, 2, 3), not over the images only.",
             weight[:, None, None] * (x.detach() - x.detach().mean(0)) / torch.sqrt(x.detach().var(0, unbiased=False)
                                                                                     + eps) + bias[:, None, None]),
            ("the batch's variance normalises with unbiased=False (divide by n): PyTorch keeps the unbiased one "
             "(n - 1) for running_var only.",
             _normalised(x.detach(), mean, x.detach().var(dim=(0, 2, 3)), weight, bias, eps)),
            ("the output is x_hat without the learned scale and shift: return weight * x_hat + bias.",
             _normalised(x.detach(), mean, var, torch.ones_like(weight), torch.zeros_like(bias), eps)),
            ("in training mode normalise with the batch's statistics, not the running ones.",
             _normalised(x.detach(), running_mean, running_var, weight, bias, eps)),
        ]
        compare(f"{where}: the output for training batch {i + 1}", got, expected.detach(), mistakes=mistakes,
                atol=1e-4)
        if i == 0:
            grads = seen["grads"]
            if grads is None or grads[0] is None:
                fail(f"{where}: no gradient reached the input: compute the output from x with torch operations "
                     f"(no .detach(), no torch.no_grad() around the normalisation).")
            (expected * grad_out).sum().backward()
            detached = weight[:, None, None] * grad_out / torch.sqrt(var[:, None, None] + eps)
            compare(f"{where}: the gradient with respect to the input", grads[0], x.grad, atol=1e-4, mistakes=[
                ("it is the gradient as if the batch's mean and variance were constants. They are computed from x: "
                 "let the gradient flow through them (compute them from x, not under torch.no_grad() or from "
                 "x.detach()); only the running statistics are updated without gradients.", detached)])
            for name, g, r in (("weight", grads[1], ref.weight.grad), ("bias", grads[2], ref.bias.grad)):
                if g is None:
                    fail(f"{where}: the {name} gets no gradient: use self.{name} in the output.")
                compare(f"{where}: the gradient with respect to {name}", g, r, atol=1e-4)
        unbiased = x.detach().var(dim=(0, 2, 3))
        stat_mistakes = {
            "mean": [("the momentum is the weight of the new batch, as in nn.BatchNorm2d: running_mean = "
                      "(1 - momentum) * running_mean + momentum * batch mean (Dive into Deep Learning writes it the "
                      "other way round).", (momentum * running_mean + (1 - momentum) * mean)),
                     ("running_mean was not updated: in training mode, move it momentum of the way towards the "
                      "batch's mean.", running_mean)],
            "var": [("running_var moves towards the unbiased variance of the batch (n / (n - 1) times the one that "
                     "normalises), as nn.BatchNorm2d does.", (1 - momentum) * running_var + momentum * var),
                    ("the momentum is the weight of the new batch, as in nn.BatchNorm2d: running_var = "
                     "(1 - momentum) * running_var + momentum * unbiased batch variance.",
                     momentum * running_var + (1 - momentum) * unbiased),
                    ("running_var was not updated: in training mode, move it momentum of the way towards the "
                     "batch's unbiased variance.", running_var)],
        }
        running_mean, running_var = ref.running_mean.detach().clone(), ref.running_var.detach().clone()
        got_mean, got_var = seen["stats"][i]
        compare(f"{where}: running_mean after training batch {i + 1}", got_mean, running_mean,
                mistakes=stat_mistakes["mean"], atol=1e-5)
        compare(f"{where}: running_var after training batch {i + 1}", got_var, running_var,
                mistakes=stat_mistakes["var"], atol=1e-5)
    if seen["graph"]:
        fail(f"{where}: running_mean or running_var is part of autograd's graph: update them under torch.no_grad() "
             f"(or from detached values), else every step keeps the graph of all the batches before it.")
    ref.eval()
    with torch.no_grad():
        expected = ref(eval_x)
    batch_stats = _normalised(eval_x, eval_x.mean(dim=(0, 2, 3)), eval_x.var(dim=(0, 2, 3), unbiased=False), weight,
                              bias, eps)
    compare(f"{where}: the output in eval mode", seen["eval"], expected, atol=1e-4, mistakes=[
        ("in eval mode normalise with running_mean and running_var: these are the batch's own statistics, so a "
         "network's answer for one digit would depend on the other digits of its batch.", batch_stats)])
    after_mean, after_var = seen["after_eval"]
    if not (close(after_mean, running_mean) and close(after_var, running_var)):
        fail(f"{where}: the running statistics changed in eval mode: update them only while self.training is True.")


def batch_norm(cls):
    _check_batch_norm(cls, 2, 4, 3, 3, 2, 1e-5, 0.1, "batches of 4 images of 3 channels of 3×2 pixels")
    passed("BatchNorm", 3)


def batch_norm_hidden(cls, seed):
    g = generator(seed)
    n = int(torch.randint(2, 6, (1,), generator=g))
    _check_batch_norm(cls, seed, n, 5, 1, 1, 1e-3, 0.3, f"batches of {n} images of 5 channels of 1×1 pixel, eps=1e-3, "
                      f"momentum=0.3, float64", dtype=torch.float64)
    _check_batch_norm(cls, seed + 1, 2, 2, 4, 5, 1e-5, 0.05, "batches of 2 images of 2 channels of 4×5 pixels, "
                      "momentum=0.05")
    passed_hidden("BatchNorm")


# ---------------------------------------------------------------- the challenge

# The challenge's terms by data set: (validation accuracy to reach, seconds of training on one core). The course's
# recipe (reference.challenge_model, challenge_train: LeNet with ReLU and max pooling, one epoch of train_fast in
# batches of 64, max_lr 0.01) on the bundled sample, on the 2-core machine the course is built on: 0.939-0.944 of
# 1,000 validation digits (seeds 0, 1), in 1.1 s when the machine was otherwise idle and up to 4.3 s when other
# graders shared its two cores. What counts is the CPU time of the kernel's processes, read by the grader from
# outside: other work on the machine stretches the wall clock (to 9.7 s, with two test suites beside it), far less
# the CPU time. Full MNIST has 7.5 times the training digits: the same recipe takes about 7.5 times as long
# (estimated from its time per digit here, not measured on full MNIST) and reaches more, so there the target and the
# budget are raised together.
CHALLENGE = {"sample": (0.90, 8.0), "full": (0.97, 40.0)}
CHALLENGE_SEED = 0
CHALLENGE_STOP = 1.5        # the training is stopped at this many times the budget of CPU time (runaway code is told
CHALLENGE_WALL = 4.0        # so, promptly), or of the wall clock's (code that waits, or works in other processes)
CHALLENGE_TRY = 2.0         # seconds the graded visible check gives challenge_train on 64 digits
CHALLENGE_DIGITS = 1_000    # validation digits the challenge measures on, chosen (seeded) by the grader
CHALLENGE_LINE = "challenge: {seconds:.2f} s of training, validation accuracy {accuracy:.4f}"


def challenge_terms() -> tuple[str, float, float]:
    """The data set the lesson runs on ("sample" or "full"), and the challenge's target accuracy and seconds."""
    from ..data import load_mnist

    kind = load_mnist(quiet=True).kind
    return (kind, *CHALLENGE.get(kind, CHALLENGE["sample"]))


def _challenge_data():
    """The lesson's split of the training digits (``data.split_validation``, seed 0): (training images, labels,
    validation images, labels), images (N, 1, 28, 28) in [0, 1]."""
    from ..data import split_validation

    x, y = mnist("train", shape=(1, 28, 28))
    return split_validation(x, y)


class _Overtime(BaseException):   # not an Exception: a student's `except Exception` does not swallow it
    """The challenge's training ran past its stop."""


class _Entry:
    """A student's challenge network and the digits it trains on, kept in their kernel between the check's requests."""

    def __init__(self, net, x, y):
        self.net, self.x, self.y = net, x, y


def _challenge_build(model_fn, seed, names):
    """``challenge_model()``, built with torch's random state set to ``seed``, and the training digits, their classes
    renamed by ``names`` (``observe``: in the kernel, where it stays)."""
    x, y, _, _ = _challenge_data()
    y = names[y]
    net = seeded(seed, lambda: call("challenge_model", model_fn, hint="challenge_model() returns a new network."))
    if not isinstance(net, nn.Module):
        fail(f"challenge_model() should return an nn.Module, got {type(net).__name__}.")
    return _Entry(net, x, y)


@contextlib.contextmanager
def _stopped_after(seconds, wall=None):
    """Raise ``_Overtime`` in the code run inside once it has used ``seconds`` of CPU time, or ``wall`` seconds have
    passed (and every 0.25 s after, should one be caught), where a signal can reach it (the main thread: a
    kernel's); run it on one torch thread. Yields a dict whose "threads" is the thread count the code left."""
    import signal
    import threading

    def overtime(signum, frame):
        raise _Overtime()

    seen = {"threads": 1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    timers = ((signal.SIGPROF, signal.ITIMER_PROF, seconds), (signal.SIGALRM, signal.ITIMER_REAL, wall or seconds))
    alarm = threading.current_thread() is threading.main_thread()
    previous = []
    if alarm:
        for signum, timer, after in timers:
            previous.append(signal.signal(signum, overtime))
            signal.setitimer(timer, after, 0.25)
    try:
        yield seen
    finally:
        if alarm:
            for (signum, timer, _), handler in zip(timers, previous):
                signal.setitimer(timer, 0)
                signal.signal(signum, handler)
        seen["threads"] = torch.get_num_threads()
        torch.set_num_threads(threads)


def _challenge_train(entry, train_fn, seed, stop_after, wall):
    """``challenge_train(net, x, y)`` on one thread with torch's random state set to ``seed``, stopped after
    ``stop_after`` seconds of CPU time or ``wall`` seconds (``observe``: in the kernel). Returns whether it finished,
    and the thread count it left. The grader measures the time itself, from outside, around this request."""
    finished = True
    try:
        with _stopped_after(stop_after, wall) as seen:
            seeded(seed, lambda: call("challenge_train", train_fn, entry.net, entry.x, entry.y,
                                      hint="challenge_train(net, x, y) trains net on the images x and labels y."))
    except _Overtime:
        finished = False
    return finished, seen["threads"]


def _challenge_same(model_fn, seed):
    """The tensors of the network (parameters and buffers, by name) that ``challenge_model()`` builds the same from
    two seeds, other than those of one or two values (zeros, ones, an identity): weights made beforehand
    (``observe``: in the kernel)."""
    nets = [seeded(s, lambda: call("challenge_model", model_fn)) for s in (seed, seed + 1)]
    if not all(isinstance(net, nn.Module) for net in nets):
        return []
    states = [{**dict(net.named_parameters()), **dict(net.named_buffers())} for net in nets]
    return [name for name, value in states[0].items()
            if torch.is_tensor(value) and value.is_floating_point() and isinstance(states[1].get(name), torch.Tensor)
            and states[1][name].shape == value.shape and torch.equal(states[1][name].detach(), value.detach())
            and torch.unique(value.detach()).numel() > 2]


def _challenge_scores(entry, images):
    """The challenge network's scores for ``images``, in eval mode, without gradients (``observe``)."""
    entry.net.eval()
    with torch.no_grad():
        return call("your challenge network", entry.net, images)


def _challenge_run(model_fn, train_fn, seed):
    """Build, train (timed here) and measure the student's challenge entry: (seconds, accuracy, message or None)."""
    kind, target, budget = challenge_terms()
    _, _, vx, vy = _challenge_data()
    pick = torch.randperm(len(vy), generator=generator(seed + 100))[:CHALLENGE_DIGITS]
    # The ten classes renamed for this run: what challenge_train is handed is all a network can learn them from, so
    # weights trained beforehand (in an earlier cell, in challenge_model, or loaded) score as chance.
    names = torch.randperm(10, generator=generator(seed + 200))
    images, labels = vx[pick], names[vy[pick]]
    same = observe(_challenge_same, model_fn, seed)
    if same:
        fail(f"the challenge: challenge_model() should build a new network each time, but from two different seeds "
             f"it built {', '.join(same[:3])}{' and more' if len(same) > 3 else ''} the same: weights made before "
             f"the timed training (kept from an earlier cell, or loaded) are not allowed. Create every layer inside "
             f"challenge_model; its own random initialisation is what the seed sets.")
    entry = observe(_challenge_build, model_fn, seed, names)
    clock = cpu_clock()
    start = clock()
    finished, threads = observe(_challenge_train, entry, train_fn, seed, CHALLENGE_STOP * budget,
                                CHALLENGE_WALL * budget)
    seconds = clock() - start
    scores = observe(_challenge_scores, entry, images)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(labels), 10):
        fail(f"the challenge network should give ({len(labels)}, 10) scores for {len(labels)} digits of 1×28×28, got "
             f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}.")
    accuracy = float((scores.argmax(dim=1) == labels).double().mean()) if bool(torch.isfinite(scores).all()) else 0.0
    print(CHALLENGE_LINE.format(seconds=seconds, accuracy=accuracy)
          + f" (target {target:.0%} within {budget:g} s on the {kind} data).")
    terms = f"The target: {target:.0%} of {len(labels):,} validation digits within {budget:g} s of training."
    if not finished:
        return seconds, accuracy, (f"the challenge: challenge_train was stopped after "
                                   f"{CHALLENGE_STOP * budget:g} s of CPU time (or {CHALLENGE_WALL * budget:g} s on "
                                   f"the clock), past the budget. {terms} Train less (fewer digits or epochs, "
                                   f"a smaller network), or faster (larger batches, Adam, one cycle).")
    if threads != 1:
        return seconds, accuracy, (f"the challenge is on one core: challenge_train left torch using {threads} threads. "
                                   f"Do not change torch.set_num_threads.")
    if seconds > budget:
        return seconds, accuracy, (f"the challenge: the training took {seconds:.2f} s of CPU time, over the budget of "
                                   f"{budget:g} s. {terms} The time is the grader's, on its machine: leave a "
                                   f"margin.")
    if accuracy < target:
        return seconds, accuracy, (f"the challenge: the trained network gets {accuracy:.1%} of the validation digits "
                                   f"right, below the target. {terms} (The classes were renamed for this run: a "
                                   f"network learns them only from the y that challenge_train is handed.)")
    return seconds, accuracy, None


def _challenge_interface(model_fn, train_fn):
    """What a graded visible check of the challenge looks at (the timed run is the hidden test's): a network from
    challenge_model that gives ten scores per digit, and challenge_train on a handful of digits."""
    net = observe(_challenge_model_only, model_fn)
    x, y = mnist("train", stop=64, shape=(1, 28, 28))
    if not observe(_challenge_train_small, net, train_fn, x, y, CHALLENGE_TRY):
        fail(f"the challenge: challenge_train was stopped after {CHALLENGE_TRY:g} s on 64 digits: does it end?")
    scores = observe(_challenge_scores_of, net, x[:8])
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (8, 10):
        fail(f"the challenge network should give (8, 10) scores for 8 digits of 1×28×28, got "
             f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}.")


def _challenge_model_only(model_fn):
    """``challenge_model()`` (``observe``: built in the kernel, and kept there)."""
    net = seeded(CHALLENGE_SEED, lambda: call("challenge_model", model_fn))
    if not isinstance(net, nn.Module):
        fail(f"challenge_model() should return an nn.Module, got {type(net).__name__}.")
    return net


def _challenge_train_small(net, train_fn, x, y, stop_after):
    """``challenge_train`` on a few digits: that it runs, and stops (``observe``). Whether it finished."""
    try:
        with _stopped_after(stop_after):
            seeded(CHALLENGE_SEED, lambda: call("challenge_train", train_fn, net, x, y))
    except _Overtime:
        return False
    return True


def _challenge_scores_of(net, images):
    net.eval()
    with torch.no_grad():
        return call("your challenge network", net, images)


def challenge(model_fn, train_fn):
    """Your own run: the challenge, timed, against its target. While graded, only that the entry runs (the
    hidden test trains it, timed by the grader)."""
    if env.grading():
        _challenge_interface(model_fn, train_fn)
        passed("the challenge's network", 1)
        return
    seconds, accuracy, problem = _challenge_run(model_fn, train_fn, CHALLENGE_SEED)
    if problem:
        fail(problem)
    passed("the challenge", 1)


def challenge_hidden(model_fn, train_fn, seed):
    """The grader trains the entry once, with torch's random state set to ``seed``, times it and measures it on
    validation digits it chooses."""
    seconds, accuracy, problem = _challenge_run(model_fn, train_fn, seed)
    if problem:
        fail(problem)
    passed_hidden("the challenge")
