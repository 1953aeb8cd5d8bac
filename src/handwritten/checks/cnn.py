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
from ._core import (Probe, as_number, call, close, compare, fail, generator, mnist, observe, passed, passed_hidden,
                    randn, references_in_place, seeded, train_then_check)

__all__ = [
    "THRESHOLD", "evaluate_accuracy", "evaluate_accuracy_hidden", "lambda_layer", "lambda_layer_hidden", "lenet",
    "lenet_hidden", "lenet_shapes", "lenet_shapes_hidden", "preprocess", "preprocess_hidden", "trained",
    "trained_hidden", "wrapped", "wrapped_hidden",
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

# The test accuracy the course's LeNet must reach when trained with the student's train_fast. Measured on the
# bundled sample with the reference train_fast, seeds 0-5 (the seed fixes the weights; the shuffling order is the
# student's code's own), trained / untrained / trained without zero_grad (the mutant that learns least):
# - the visible check (ReLU, max pooling), 8,000 digits for 2 epochs in batches of 128, max_lr 0.01, all 2,000 test
#   digits: 0.957-0.962 / 0.086-0.107 / 0.086-0.147;
# - the same while graded, 750 digits for 2 epochs in batches of 16, the first 1,000 test digits:
#   0.873-0.908 / 0.081-0.109 / 0.086-0.280 (it was 3,000 digits for one epoch in batches of 32:
#   0.913-0.936 / 0.086-0.107 / 0.104-0.482, three times the training);
# - the hidden check (ReLU, average pooling), 700 digits for 2 epochs in batches of 16, max_lr 0.02, the first
#   1,000 test digits: 0.816-0.882 / 0.079-0.116 / 0.086-0.104 (it was 3,000 digits for one epoch in batches of 32,
#   max_lr 0.005: 0.868-0.893 / 0.085-0.107 / 0.227-0.489).
# Full MNIST only helps a trained model. The sizes leave a last, smaller batch (750 = 46 * 16 + 14, 700 = 43 * 16
# + 12), so that a total_steps that forgets it fails.
THRESHOLD = 0.7
GRADED_TEST_DIGITS = 1_000   # while graded, and in the hidden check: 1,000 test digits measure 0.7 well enough

TRAIN_HINT = ("train_fast(net, x, y, epochs, batch_size, max_lr): Adam over net.parameters(), "
              "OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * math.ceil(len(x) / batch_size)), and for each "
              "epoch a new torch.randperm order, a step per batch (zero_grad, backward, step, scheduler.step()).")


def _trained_weights(fn, make_model, seed, x, y, epochs, batch_size, max_lr, case):
    """Build ``make_model()`` and train it with the student's ``train_fast``, torch's random state set to ``seed``
    (the check builds its own model under the same seed: the same weights), and return what train_fast returned and
    the trained weights (``observe``: the training runs beside the student's code; the check loads the weights into
    its own model and measures it)."""
    steps = math.ceil(len(x) / batch_size)

    def explain(error):
        if "Tried to step" not in str(error):
            return None
        return (f"train_fast for {case}: OneCycleLR was stepped more often than its total_steps. With {len(x)} "
                f"images in batches of {batch_size} there are math.ceil({len(x)} / {batch_size}) = {steps} batches "
                f"per epoch, the last one smaller: count it in total_steps.\n"
                f"train_fast raised {type(error).__name__}: {error}\nHint: {TRAIN_HINT}")

    def train():
        net = make_model()
        result = call("train_fast", fn, net, x, y, epochs, batch_size, max_lr, hint=TRAIN_HINT, explain=explain)
        return result, dict(net.state_dict())

    return seeded(seed, train)


def _check_trained(fn, make_model, n_train, epochs, batch_size, max_lr, seed, case, n_test=None):
    x, y = mnist("train", stop=n_train, shape=(1, 28, 28))
    test = TensorBatches(*mnist("test", stop=n_test, shape=(1, 28, 28)), 500)

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
        message=lambda run: f"train_fast for {case}: after training, the network gets {run.accuracy:.3f} of the test "
                            f"digits right, below {THRESHOLD} (untrained: {run.untrained:.3f}). Did you zero the "
                            f"gradients before every backward, step the optimiser and the scheduler after every "
                            f"batch, and train for every epoch? {TRAIN_HINT}")
    if not all(math.isfinite(v) and 0 < v < 2.4 for v in values):
        fail(f"train_fast for {case}: the epoch losses {values} are not mean cross-entropy losses of a network "
             f"that learns (they start below log 10 ≈ 2.3 and fall).")
    return run.accuracy


def _lenet_relu_max():
    return models.LeNet(nn.ReLU, nn.MaxPool2d)


def trained(fn):
    n_train, epochs, bs, n_test = (750, 2, 16, GRADED_TEST_DIGITS) if env.grading() else (8000, 2, 128, None)
    acc = _check_trained(fn, _lenet_relu_max, n_train, epochs, bs, 0.01, seed=0, n_test=n_test,
                         case=f"LeNet with ReLU and max pooling, {n_train} digits, {epochs} epoch(s)")
    print(f"test accuracy {acc:.3f} (threshold {THRESHOLD}).")
    passed("train_fast", 1)


def _lenet_relu_avg():
    return models.LeNet(nn.ReLU, nn.AvgPool2d)


def trained_hidden(fn, seed):
    _check_trained(fn, _lenet_relu_avg, 700, 2, 16, 0.02, seed=seed,
                   n_test=GRADED_TEST_DIGITS,
                   case="LeNet with ReLU and average pooling, 700 digits for 2 epochs, batches of 16, max_lr 0.02")
    passed_hidden("train_fast")
