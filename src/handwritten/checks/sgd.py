"""Checks for lesson 02, SGD from scratch: ``apply_step``, ``mnist_loss``, ``batch_accuracy``,
``BasicOptim``, ``train_model`` (which trains a linear 3-vs-7 model) and ``train_simple_net``.

The oracles are autograd, ``torch.optim.SGD`` and the course's answers, ``handwritten.reference.sgd``. A
mistake is penalised once: the checks of ``train_model`` and ``simple_net`` run with reference versions of
``mnist_loss``, ``batch_accuracy``, ``calc_grad``, ``validate_epoch``, ``BasicOptim`` (and, for the network,
``train_epoch`` and ``train_model``) in place, so a wrong loss costs the loss's tests and not the training
tests too. Every call into the student's code goes through ``_core.call``.

The training checks train on the 3s and 7s of the training split and measure accuracy on the 3s
and 7s of the test split. While nbgrader grades (``NBGRADER_EXECUTION``) they train on a subset
of 1,000 images: a trained model still gets far above ``THRESHOLD``, an untrained one stays
near chance.

While graded, the checks run in the grader and the student's objects stay in their kernel (``_remote``): what
must run beside them (a parameter stepped again and again, an optimiser, a model and its training, with the data
built there) runs through ``observe``, which only reports what the student's code did; every verdict is reached
here. A trained ``nn.Linear`` comes back as its ``state_dict`` and is measured in a model built here; a student's
network stays there and is measured by its scores on the images sent to it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import env
from ..reference import sgd as reference
from ..reference.batching import TensorBatches
from ._core import (Trained, as_number, as_tensor, call, close, compare, fail, generator, mnist, not_hard_coded,
                    observe, params_vector, passed, passed_hidden, rand, randn, references_in_place, require_accuracy,
                    seeded, train_then_check)

__all__ = [
    "apply_step", "apply_step_hidden", "basic_optim", "basic_optim_hidden", "batch_accuracy",
    "batch_accuracy_hidden", "linear_model", "linear_model_hidden", "mnist_loss", "mnist_loss_hidden",
    "simple_net", "simple_net_hidden", "training_data",
]

# A trained model gets 96-99 % of the validation 3s and 7s right (shortened or not, sample or full
# MNIST); an untrained one gets 35-83 % (300 random initialisations), one trained with a learning
# rate 1,000 times too small at most 88 %.
THRESHOLD = 0.90
LINEAR_LR = 1.0
GRADING_SUBSET = 1_000
BATCH_SIZE = 64
LINEAR_EPOCHS = 3
NET_EPOCHS = 8
ATOL = 1e-6  # the absolute tolerance of the comparisons below (with close's relative 1e-4)

# Everything the training exercises may call by name, in its reference version.
REFERENCES = dict(mnist_loss=reference.mnist_loss, batch_accuracy=reference.batch_accuracy,
                  calc_grad=reference.calc_grad, validate_epoch=reference.validate_epoch,
                  BasicOptim=reference.BasicOptim)

# ---------------------------------------------------------------- apply_step


def roller_coaster(n=20, seed=42, dtype=torch.float32):
    """The lesson's measurements: a noisy parabola, speed against time."""
    time = torch.arange(0, n, dtype=torch.float64)
    noise = randn(generator(seed), n, dtype=torch.float64)
    speed = noise * 3 + 0.75 * (time - (n - 1) / 2) ** 2 + 1
    return time.to(dtype), speed.to(dtype)


def _grad(params, time, speed):
    p = params.detach().clone().requires_grad_(True)
    reference.mse(reference.f(time, p), speed).backward()
    return p.grad


def _apply_step_run(fn, start, time, speed, lr, steps):
    """``fn`` called ``steps`` times on one parameter tensor made from ``start``, as the lesson's loop does
    (``observe``: in the kernel, where the tensor stays from call to call, its gradient too). After each call, the
    parameters, whether they still require grad, and what it returned; or, at the first call that failed, its
    message (judged in its turn, after the steps before it)."""
    params = start.clone().requires_grad_(True)
    seen = []
    for _ in range(steps):
        try:
            returned = call("apply_step", fn, params, time, speed, lr)
        except AssertionError as error:
            seen.append({"error": str(error)})
            break
        seen.append({"params": params.detach().clone(), "requires_grad": params.requires_grad,
                     "returned": returned})
    return seen


def _check_apply_step(fn, time, speed, start, lr, steps, case):
    with references_in_place(fn, f=reference.f, mse=reference.mse):
        seen = observe(_apply_step_run, fn, start, time, speed, lr, steps)
    before = start.clone()
    accumulated = torch.zeros_like(start)
    losses = []
    for k in range(steps):
        grad = _grad(before, time, speed)
        expected_loss = float(reference.mse(reference.f(time, before), speed))
        expected = before - lr * grad
        accumulated = accumulated + grad
        where = f"apply_step for {case}, step {k + 1}"
        step = seen[k] if k < len(seen) else {"error": f"{where}: no result came back."}
        if "error" in step:
            fail(step["error"])
        if not step["requires_grad"]:
            fail(f"{where}: params no longer requires grad. Change the values of the tensor you are "
                 f"given, and leave it a parameter that autograd tracks.")
        after = step["params"]
        if close(after, before, rtol=0, atol=0):
            fail(f"{where}: params did not change. Update the tensor you were given in place "
                 f"(`params.data -= lr * params.grad.data`, or `params -= lr * params.grad` inside "
                 f"`with torch.no_grad():`); `params = params - ...` only makes a new local tensor.")
        if not bool(torch.isfinite(after).all()):
            fail(f"{where}: params became inf or nan: is the step lr * gradient, with the lr you are given?")
        if not close(after, expected, atol=ATOL):
            if close(after, before + lr * grad, atol=ATOL):
                fail(f"{where}: the step went uphill, and the loss will grow: subtract the gradient, "
                     f"params -= lr * grad.")
            if k > 0 and close(after, before - lr * accumulated, atol=ATOL):
                fail(f"{where}: the first step was right but this one used the sum of this step's and "
                     f"the earlier steps' gradients: backward() adds to params.grad, so zero it after "
                     f"each step (params.grad = None, or params.grad.zero_()).")
            if close(after, before - grad, atol=ATOL):
                fail(f"{where}: the step is the whole gradient: multiply it by the learning rate lr.")
            fail(f"{where}: params should be {expected.tolist()}, got {after.tolist()}.")
        loss = as_number("apply_step", step["returned"], "the loss it returns")
        if not math.isclose(loss, expected_loss, rel_tol=1e-4, abs_tol=1e-6):
            after_loss = float(reference.mse(reference.f(time, after), speed))
            if math.isclose(loss, after_loss, rel_tol=1e-4, abs_tol=1e-6):
                fail(f"{where}: it returned the loss after the step ({loss:.6g}); return the loss "
                     f"computed before it ({expected_loss:.6g}), the one whose gradient was used.")
            fail(f"{where}: it returned {loss!r}; the mse loss before the step is {expected_loss:.6g}.")
        losses.append(loss)
        before = after.clone()
    if not all(b < a for a, b in zip(losses, losses[1:])):
        fail(f"apply_step for {case}: the loss should fall at every step, got {losses}.")
    return losses


LESSON_START = torch.tensor([-0.77, -0.75, 1.35])


def apply_step(fn):
    time, speed = roller_coaster()
    _check_apply_step(fn, time, speed, LESSON_START, lr=1e-5, steps=6,
                      case="the roller coaster with lr=1e-5")
    passed("apply_step", 6)


def apply_step_hidden(fn, seed):
    g = generator(seed)
    for n, scale, dtype, lr in [(30, 3.0, torch.float64, 0.02), (12, 1.0, torch.float32, 0.05)]:
        time = (rand(g, n, dtype=torch.float64) * scale).sort().values
        true = randn(g, 3, dtype=torch.float64)
        speed = reference.f(time, true) + 0.1 * randn(g, n, dtype=torch.float64)
        start = randn(g, 3, dtype=torch.float64)
        _check_apply_step(fn, time.to(dtype), speed.to(dtype), start.to(dtype), lr=lr, steps=8,
                          case=f"{n} random {str(dtype)[6:]} measurements with lr={lr}")
    passed_hidden("apply_step")


# ---------------------------------------------------------------- mnist_loss


def _loss_mistakes(predictions, targets):
    p = predictions.detach().double().sigmoid()
    raw = predictions.detach().double()
    t = targets
    return [
        ("the sigmoid is missing: apply predictions.sigmoid() first, so that every prediction is "
         "between 0 and 1.", torch.where(t == 1, 1 - raw, raw).mean()),
        ("the two branches of torch.where are swapped: where the target is 1 (a 3), the loss is "
         "1 - prediction, and where it is 0 (a 7), it is the prediction itself.",
         torch.where(t == 1, p, 1 - p).mean()),
        ("the loss is the mean over the images, not the sum: use .mean().", torch.where(t == 1, 1 - p, p).sum()),
        ("the sigmoid is applied twice.", torch.where(t == 1, 1 - p.sigmoid(), p.sigmoid()).mean()),
    ]


def _loss_outputs(fn, predictions, targets):
    """``fn(predictions, targets)`` and, when autograd tracks it, the predictions' gradient of its sum (``observe``:
    in the kernel, where the backward pass runs through the student's graph, a Function of their own included).
    A backward pass that failed gives its message, judged in its turn."""
    predictions = predictions.detach().clone().requires_grad_(True)
    got = call("mnist_loss", fn, predictions, targets.clone())
    seen = {"loss": got, "grad": None, "backward_error": None}
    if isinstance(got, torch.Tensor) and got.requires_grad:
        try:
            call("mnist_loss(...).backward()", got.sum().backward)
        except AssertionError as error:
            seen["backward_error"] = str(error)
        seen["grad"] = predictions.grad
    return seen


def _check_mnist_loss(fn, predictions, targets, case):
    seen = observe(_loss_outputs, fn, predictions.detach().clone(), targets.clone())
    got = as_tensor("mnist_loss", seen["loss"])
    expected = reference.mnist_loss(predictions.detach(), targets)
    if got.numel() != 1:
        fail(f"mnist_loss for {case}: it returned a tensor of shape {tuple(got.shape)}; the loss is "
             f"one number: take the .mean() of the per-image losses.")
    compare("mnist_loss", got.reshape(()), expected, case=case, mistakes=_loss_mistakes(predictions, targets))
    if not got.requires_grad:
        fail(f"mnist_loss for {case}: the loss does not depend on the predictions through autograd, so "
             f"backward() cannot train anything. Compute it with torch operations (no .item(), "
             f".detach() or torch.tensor(...) on the way).")
    if seen["backward_error"]:
        fail(seen["backward_error"])
    check = predictions.detach().clone().requires_grad_(True)
    reference.mnist_loss(check, targets).backward()
    if not isinstance(seen["grad"], torch.Tensor) or not close(seen["grad"], check.grad):
        fail(f"mnist_loss for {case}: the value is right but its gradient is not: compute it from "
             f"predictions.sigmoid() with torch.where (or arithmetic), nothing detached.")


def loss_examples():
    """The lesson's three images (a 3, a 7 and a 3), and a batch of four in training shape (N, 1)."""
    return [
        (torch.tensor([2.2, -0.4, -1.4]), torch.tensor([1, 0, 1]), "scores [2.2, -0.4, -1.4], targets [1, 0, 1]"),
        (torch.tensor([[-3.0], [0.5], [4.0], [-0.2]]), torch.tensor([[1], [0], [1], [0]]),
         "a batch of four in training shape (4, 1)"),
    ]


def mnist_loss(fn):
    examples = loss_examples()
    not_hard_coded("mnist_loss", fn, [(p, t) for p, t, _ in examples])
    for predictions, targets, case in examples:
        _check_mnist_loss(fn, predictions, targets, case)
    passed("mnist_loss", len(examples))


def mnist_loss_hidden(fn, seed):
    g = generator(seed)
    cases = []
    for i, n in enumerate([1, 7, 64, 200]):
        shape = (n, 1) if i % 2 else (n,)
        dtype = torch.float64 if i == 2 else torch.float32
        predictions = randn(g, *shape, dtype=dtype, scale=1 + 3 * i)
        targets = (torch.rand(*shape, generator=g) > 0.5).long()  # drawn in float32: the same cases as ever
        if i == 3:
            targets = targets.float()  # targets may come as floats too
        cases.append((predictions, targets, f"{n} random {str(dtype)[6:]} scores of shape {shape}"))
    cases.append((torch.tensor([[5.0], [-2.0]]), torch.tensor([[1], [1]]), "two 3s"))
    cases.append((torch.tensor([0.3, -4.0]), torch.tensor([0, 0]), "two 7s"))
    not_hard_coded("mnist_loss", fn, [(p, t) for p, t, _ in cases[:3]])
    for predictions, targets, case in cases:
        _check_mnist_loss(fn, predictions, targets, case)
    passed_hidden("mnist_loss")


# ---------------------------------------------------------------- batch_accuracy


def _accuracy_mistakes(xb, yb):
    n_threes = (yb == 1).double().mean()
    return [
        ("after a sigmoid every value is above 0, so `> 0` calls every image a 3: threshold the "
         "sigmoid at 0.5 (or the raw scores at 0).", n_threes),
        ("the raw scores were compared with 0.5 without the sigmoid: either apply xb.sigmoid() "
         "before `> 0.5`, or compare the raw scores with 0.", ((xb > 0.5) == yb).double().mean()),
        ("3s and 7s are swapped: a prediction above 0.5 (a score above 0) means a 3, label 1.",
         ((xb.sigmoid() <= 0.5) == yb).double().mean()),
        ("that is the number of correct predictions; the accuracy is their mean (.float().mean()).",
         ((xb > 0) == yb).double().sum()),
    ]


def _check_batch_accuracy(fn, xb, yb, case):
    got = as_number("batch_accuracy", call("batch_accuracy", fn, xb.clone(), yb.clone()), "the accuracy")
    expected = reference.batch_accuracy(xb, yb)
    for description, wrong in _accuracy_mistakes(xb, yb):
        if not close(wrong, expected, atol=1e-7) and close(got, wrong, atol=ATOL):
            fail(f"batch_accuracy for {case}: got {got:.4g}, expected {float(expected):.4g}: {description}")
    if not close(got, expected, atol=ATOL):
        fail(f"batch_accuracy for {case}: got {got:.4g}, expected {float(expected):.4g}.")


def _as_tensor_of(fn, xb, yb):
    """``fn(xb, yb)`` as a tensor, so that an answer returned as a Python number is compared too (``not_hard_coded``
    compares tensors). A function of the module, so that it can run in the kernel, beside ``fn``."""
    return torch.as_tensor(fn(xb, yb))


def accuracy_example():
    xb = torch.tensor([[2.0], [-1.0], [0.3], [-0.2], [-4.0], [0.4], [3.0]])
    yb = torch.tensor([[1], [0], [1], [0], [1], [1], [1]])
    return xb, yb


def batch_accuracy(fn):
    xb, yb = accuracy_example()
    cases = [(xb, yb, "seven scores [2, -1, 0.3, -0.2, -4, 0.4, 3] with targets [1, 0, 1, 0, 1, 1, 1]"),
             (-xb[:5], yb[:5], "the first five scores with their signs flipped")]
    not_hard_coded("batch_accuracy", _as_tensor_of, [(fn, x, y) for x, y, _ in cases])
    for x, y, case in cases:
        _check_batch_accuracy(fn, x, y, case)
    passed("batch_accuracy", len(cases))


def _random_scores(g, *shape, dtype=torch.float32):
    """Random scores kept away from 0, where float32's sigmoid rounds to exactly 0.5."""
    s = randn(g, *shape, dtype=torch.float64, scale=3)
    return (s + 0.01 * s.sign()).to(dtype)


def batch_accuracy_hidden(fn, seed):
    g = generator(seed)
    for i, n in enumerate([10, 33, 256, 3]):
        shape = (n, 1) if i % 2 == 0 else (n,)
        dtype = torch.float64 if i == 1 else torch.float32
        xb = _random_scores(g, *shape, dtype=dtype)
        yb = (torch.rand(*shape, generator=g) > 0.4).long()
        if i == 2:
            yb = yb.float()
        _check_batch_accuracy(fn, xb, yb, f"{n} random {str(dtype)[6:]} scores of shape {shape}")
    _check_batch_accuracy(fn, torch.tensor([[3.0], [2.0]]), torch.tensor([[0], [0]]), "two wrong predictions")
    _check_batch_accuracy(fn, torch.tensor([-3.0, 2.0, -0.7]), torch.tensor([0, 1, 0]), "three right predictions")
    passed_hidden("batch_accuracy")


# ---------------------------------------------------------------- BasicOptim


def _optim_problem(seed, dtype, shapes):
    g = generator(seed)
    params = [randn(g, *s, dtype=dtype) for s in shapes]
    inputs = [randn(g, 5, shapes[0][0], dtype=dtype) for _ in range(4)]
    return params, inputs


def _optim_loss(params, x):
    """A loss with a different gradient at every step: a small two-layer net on x."""
    out = x @ params[0]
    for p in params[1:]:
        out = out @ p if p.dim() == 2 else out + p
    return (out.tanh() - 0.5).pow(2).sum()


def _optim_steps(cls, params0, inputs, lr, as_generator):
    """``cls`` built on copies of ``params0`` (given as a generator, as ``model.parameters()`` is, or as a list),
    then for every input: backward, ``step()``, ``zero_grad()`` (``observe``: in the kernel, where the optimiser
    changes the tensors it holds). For every step, the parameters before and after it and the gradients left by
    zero_grad(); at the first call that failed, its message (judged in its turn, after what came before it)."""
    mine = [p.clone().requires_grad_(True) for p in params0]
    given = (p for p in mine) if as_generator else list(mine)
    opt = call("BasicOptim", cls, given, lr)
    seen = []
    for x in inputs:
        step = {"before": [p.detach().clone() for p in mine]}
        seen.append(step)
        _optim_loss(mine, x).backward()
        try:
            call("BasicOptim.step", opt.step)
            step["after"] = [p.detach().clone() for p in mine]
            call("BasicOptim.zero_grad", opt.zero_grad)
        except AssertionError as error:
            step["error"] = str(error)
            break
        step["grads"] = [None if p.grad is None else p.grad.detach().clone() for p in mine]
    return seen


def _run_optim(cls, params0, inputs, lr, as_generator, case):
    """Step ``cls`` and torch.optim.SGD side by side; fail at the first difference."""
    seen = observe(_optim_steps, cls, params0, inputs, lr, as_generator)
    ref = [p.clone().requires_grad_(True) for p in params0]
    sgd = torch.optim.SGD(ref, lr=lr)
    for k, x in enumerate(inputs):
        where = f"BasicOptim for {case}, step {k + 1}"
        step = seen[k] if k < len(seen) else {"error": f"{where}: no result came back."}
        _optim_loss(ref, x).backward()
        grads = [p.grad.clone() for p in ref]
        sgd.step()
        if "after" not in step:
            fail(step["error"])
        before, after = step["before"], step["after"]
        if all(close(a, b, rtol=0, atol=0) for a, b in zip(after, before)):
            fail(f"{where}: step() did not change the parameters. It should do p -= lr * p.grad for "
                 f"every parameter, changing the tensors in place (p.data -= ..., or p -= ... inside "
                 f"torch.no_grad()).")
        if len(after) != len(ref) or not all(close(a, r.detach(), atol=ATOL) for a, r in zip(after, ref)):
            if all(close(a, b + lr * gr, atol=ATOL) for a, b, gr in zip(after, before, grads)):
                fail(f"{where}: step() went uphill: subtract lr * p.grad, don't add it.")
            if all(close(a, b - gr, atol=ATOL) for a, b, gr in zip(after, before, grads)):
                fail(f"{where}: step() ignores the learning rate: the step is lr * p.grad.")
            fail(f"{where}: after step() the parameters differ from torch.optim.SGD's "
                 f"(p -= lr * p.grad, with lr={lr}).")
        if "error" in step:
            fail(step["error"])
        sgd.zero_grad()
        for grad in step["grads"]:
            if grad is not None and bool((grad != 0).any()):
                fail(f"{where}: after zero_grad() the gradients are still there. backward() adds to "
                     f"p.grad, so they would pile up from batch to batch: in zero_grad set p.grad = None "
                     f"(or call p.grad.zero_()) for every parameter.")


def _check_optim(cls, params0, inputs, lr, case):
    """With params as a generator (model.parameters()); if only that fails, say why."""
    try:
        _run_optim(cls, params0, inputs, lr, as_generator=True, case=case)
    except AssertionError as error:
        try:
            _run_optim(cls, params0, inputs, lr, as_generator=False, case=case)
        except AssertionError:
            raise error from None
        fail(f"BasicOptim for {case}: it works when params is a list but not with model.parameters(), "
             f"which is a generator: it can be walked through only once, so the second loop over it "
             f"finds nothing. Store a list in __init__: self.params = list(params).")


def basic_optim(cls):
    params0, inputs = _optim_problem(1, torch.float32, [(3, 2), (2,)])
    _check_optim(cls, params0, inputs[:3], 0.1, "the weight and bias of a layer, lr=0.1")
    passed("BasicOptim", 3)


def basic_optim_hidden(cls, seed):
    g = generator(seed)
    for dtype, lr, shapes in [(torch.float64, 0.5, [(4, 3), (3,), (3, 1), (1,)]),
                              (torch.float32, 1e-3, [(6, 2), (2,)])]:
        params0, inputs = _optim_problem(int(torch.randint(0, 10**6, (1,), generator=g)), dtype, shapes)
        _check_optim(cls, params0, inputs, lr, f"{len(shapes)} {str(dtype)[6:]} parameters, lr={lr}")
    passed_hidden("BasicOptim")


# ---------------------------------------------------------------- the data for training


def _threes_and_sevens(split, scale=True):
    """Flattened images of the split's 3s and 7s, scaled to [0, 1] (uint8 if not ``scale``), and labels (N, 1):
    1 for a 3, 0 for a 7."""
    threes = mnist(split, digit=3, shape=(28 * 28,), dtype=None)[0]
    sevens = mnist(split, digit=7, shape=(28 * 28,), dtype=None)[0]
    x = torch.cat([threes, sevens])
    if scale:
        x = x.float()
        x /= 255  # in place, after the cat: one float copy of the images (the same values as converting each first)
    y = torch.tensor([1] * len(threes) + [0] * len(sevens)).unsqueeze(1)
    return x, y


def training_data(graded=None, flip=False):
    """(train_x, train_y, valid_x, valid_y): the training split's 3s and 7s (uint8 images: TensorBatches scales
    them; a 1,000-image subset while graded) and the test split's. ``flip`` swaps the labels: 1 for a 7."""
    # the training images stay uint8 (TensorBatches scales each batch): no float copy beside the lesson's own
    x, y = _threes_and_sevens("train", scale=False)
    vx, vy = validation_data(flip)
    if graded if graded is not None else env.grading():
        keep = torch.randperm(len(x), generator=generator(2024))[:GRADING_SUBSET]
        x, y = x[keep], y[keep]
    if flip:
        y = 1 - y
    return x, y, vx, vy


def validation_data(flip=False):
    """(valid_x, valid_y): the test split's 3s and 7s, what a trained model is measured on (here, while graded:
    the kernel trains on its own copy of ``training_data``)."""
    vx, vy = _threes_and_sevens("test")
    return (vx, 1 - vy) if flip else (vx, vy)


def _loaders(graded, flip, batch_size, seed):
    """``train_dl`` (shuffled, in an order ``seed`` fixes) and ``valid_dl``, built where they are used: in the
    kernel while graded (a loader cannot cross the boundary)."""
    x, y, vx, vy = training_data(graded=graded, flip=flip)
    return TensorBatches(x, y, batch_size, shuffle=True, generator=generator(seed)), TensorBatches(vx, vy, 256)


def _forward(name, model, x):
    """The model's scores for the images ``x``, without recording gradients (``observe``, for a student's model:
    in the kernel, beside it)."""
    with torch.no_grad():
        return call(name, model, x)


def _scores(name, model, x):
    """A student's model's scores for the images ``x``, sent from here."""
    return observe(_forward, name, model, x)


def accuracy(model, x, y, name="the trained model") -> float:
    """The fraction of images a model built here classifies right: a score above 0 means label 1."""
    return float(((_forward(name, model, x) > 0).long() == y).float().mean())


# ---------------------------------------------------------------- train_model: the mechanics


def _tiny_problem(seed, dtype=torch.float32, n_batches=3, batch_size=5, d=4):
    g = generator(seed)
    x = randn(g, n_batches * batch_size, d, dtype=dtype)
    y = (torch.rand(n_batches * batch_size, 1, generator=g) > 0.5).long()
    weight = randn(g, 1, d, dtype=dtype)
    bias = randn(g, 1, dtype=dtype)
    return list(TensorBatches(x, y, batch_size)), list(TensorBatches(x, y, 2 * batch_size)), weight, bias


def _linear(weight, bias):
    model = nn.Linear(weight.shape[1], 1).to(weight.dtype)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return model


def _simulate(weight, bias, batches, lr, epochs, *, zero=True, first_only=False):
    """What training a linear model gives, right or with one of the usual mistakes."""
    model = _linear(weight, bias)
    opt = reference.BasicOptim(model.parameters(), lr)
    for _ in range(epochs):
        for xb, yb in batches[:1] if first_only else batches:
            reference.mnist_loss(model(xb), yb).backward()
            opt.step()
            if zero:
                opt.zero_grad()
    return params_vector(model)


def _train_tiny(fn, weight, bias, make_opt, lr, train_dl, valid_dl, epochs):
    """``fn`` trains ``_linear(weight, bias)`` with ``make_opt(its parameters, lr)`` (``observe``: in the kernel,
    where the model and its optimiser live): its parameters afterwards, and what it returned."""
    model = _linear(weight, bias)
    accuracies = call("train_model", fn, model, make_opt(model.parameters(), lr), train_dl, valid_dl, epochs)
    return {"params": params_vector(model), "accuracies": accuracies}


def _check_mechanics(fn, seed, dtype, epochs, lr, make_opt, case):
    train_dl, valid_dl, weight, bias = _tiny_problem(seed, dtype)
    with references_in_place(fn, **REFERENCES):
        seen = observe(_train_tiny, fn, weight, bias, make_opt, lr, train_dl, valid_dl, epochs)
    where = f"train_model for {case}"
    got, accuracies = seen["params"], seen["accuracies"]
    if not close(got, _simulate(weight, bias, train_dl, lr, epochs), atol=ATOL):
        start = params_vector(_linear(weight, bias))
        if close(got, start, rtol=0, atol=0):
            fail(f"{where}: the parameters never changed. For every batch: compute the loss with "
                 f"mnist_loss, call loss.backward(), then opt.step(), then opt.zero_grad() (zeroing "
                 f"between backward and step throws the gradients away). Use the model, opt and "
                 f"train_dl passed in as arguments.")
        if close(got, _simulate(weight, bias, train_dl, lr, epochs, zero=False), atol=ATOL):
            fail(f"{where}: the gradients accumulate from batch to batch: call opt.zero_grad() after "
                 f"every opt.step().")
        if close(got, _simulate(weight, bias, train_dl, lr, epochs, first_only=True), atol=ATOL):
            fail(f"{where}: only the first batch of each epoch was used: is there a `return` or "
                 f"`break` inside the loop over the batches?")
        for e in range(1, epochs):
            if close(got, _simulate(weight, bias, train_dl, lr, e), atol=ATOL):
                fail(f"{where}: it trained for {e} epoch(s) instead of {epochs}: is there a `return` "
                     f"inside the loop over the epochs?")
        fail(f"{where}: after {epochs} epochs the parameters are not what {epochs} epochs of "
             f"mnist_loss, backward, opt.step() and opt.zero_grad() on every batch give.")
    not_a_list = f"{where}: return the list of validation accuracies, one per epoch, not {accuracies!r}."
    accuracies = [as_number("train_model", a, "each accuracy")
                  for a in call("list(train_model(...))", list, accuracies, explain=lambda error: not_a_list)]
    if len(accuracies) != epochs:
        fail(f"{where}: it returned {len(accuracies)} accuracies for {epochs} epochs: append "
             f"validate_epoch(model, valid_dl) once after every epoch.")
    model = _linear(got[:-1].reshape(weight.shape), got[-1:])  # the trained parameters, in a model built here
    final = reference.validate_epoch(model, valid_dl)
    overall = accuracy(model, torch.cat([xb for xb, _ in valid_dl]), torch.cat([yb for _, yb in valid_dl]))
    if min(abs(accuracies[-1] - final), abs(accuracies[-1] - overall)) > 0.01:  # batch mean, or over all
        fail(f"{where}: the last accuracy it returned ({accuracies[-1]:.4f}) is not the trained model's "
             f"accuracy on valid_dl ({final:.4f}): measure it with validate_epoch after each epoch's "
             f"training.")


# ---------------------------------------------------------------- train_model: a trained linear model


def _not_trained(what, case, epochs, advice):
    """The message, a function of the ``Trained`` run, of a training check whose model did not learn."""
    def message(run: Trained) -> str:
        return (f"{what} for {case}: after {epochs} epochs it classifies {run.accuracy:.1%} of the validation "
                f"3s and 7s right; a trained model gets more than {THRESHOLD:.0%}, an untrained one about "
                f"50%. {advice}")
    return message


def _train_linear(fn, seed, make_opt, flip, batch_size, graded):
    """``fn`` trains nn.Linear(28 * 28, 1), built with torch's random state set to ``seed``, on the 3s and 7s
    (``observe``: in the kernel, with the data built there): the trained model's ``state_dict``."""
    train_dl, valid_dl = _loaders(graded, flip, batch_size, seed)

    def train():
        model = nn.Linear(28 * 28, 1)
        call("train_model", fn, model, make_opt(model.parameters(), LINEAR_LR), train_dl, valid_dl, LINEAR_EPOCHS)
        return {name: value.detach().clone() for name, value in model.state_dict().items()}

    return seeded(seed, train)


def _check_linear(fn, seed, make_opt, flip, case, batch_size=BATCH_SIZE):
    vx, vy = validation_data(flip)

    def train(model):
        with references_in_place(fn, **REFERENCES):
            state = observe(_train_linear, fn, seed, make_opt, flip, batch_size, env.grading())
        try:  # into the model built here (as the kernel built its own), and measured here
            model.load_state_dict(state)
        except (RuntimeError, TypeError, ValueError, AttributeError, KeyError):
            fail(f"train_model for {case}: after training, the model no longer has the parameters of "
                 f"nn.Linear(28 * 28, 1) (a (1, 784) weight and a (1,) bias): change their values only.")

    train_then_check(seed=seed, make_model=lambda: nn.Linear(28 * 28, 1), train=train,
                     accuracy=lambda model: accuracy(model, vx, vy), threshold=THRESHOLD,
                     message=_not_trained("train_model", case, LINEAR_EPOCHS, "Does every epoch go through "
                                          "every batch of train_dl, with opt.step() after backward()?"))


def linear_model(fn):
    _check_mechanics(fn, 7, torch.float32, 2, 0.5, reference.BasicOptim,
                     "a tiny linear model, 3 batches, 2 epochs")
    _check_linear(fn, 0, reference.BasicOptim, False, "nn.Linear(28 * 28, 1) on the 3s and 7s, lr=1")
    passed("train_model", 2)


def linear_model_hidden(fn, seed):
    g = generator(seed)
    sgd = torch.optim.SGD  # SGD(params, lr), as BasicOptim: a class of torch, so that it crosses to the kernel
    _check_mechanics(fn, int(torch.randint(0, 10**6, (1,), generator=g)), torch.float64, 3, 0.3, sgd,
                     "a tiny float64 linear model and torch.optim.SGD, 3 epochs")
    _check_linear(fn, int(torch.randint(0, 10**6, (1,), generator=g)), sgd, True,
                  "labels swapped (1 for a 7), torch.optim.SGD and batches of 32", batch_size=32)
    passed_hidden("train_model")


# ---------------------------------------------------------------- simple_net


def _is_linear(model, x) -> bool:
    """True when model(x) is an affine function of x, judged on midpoints of pairs of inputs."""
    a, b = x[0::2], x[1::2]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    mid = _scores("the network", model, (a + b) / 2)
    out_a, out_b = _scores("the network", model, a), _scores("the network", model, b)
    avg = (out_a + out_b) / 2
    scale = float(torch.cat([out_a, out_b]).abs().max()) + 1e-6
    return float((mid - avg).abs().max()) <= 1e-5 * scale


def _train_net(fn, seed, flip, graded):
    """``fn`` builds and trains its network on the 3s and 7s, with torch's random state set to ``seed``
    (``observe``: in the kernel, with the data built there; the network stays there): what it returned, and
    whether its model is an nn.Module."""
    train_dl, valid_dl = _loaders(graded, flip, BATCH_SIZE, seed)
    result = seeded(seed, lambda: call("train_simple_net", fn, train_dl, valid_dl, NET_EPOCHS))
    pair = isinstance(result, (tuple, list)) and len(result) == 2
    return {"result": result, "module": pair and isinstance(result[0], nn.Module)}


def _weight_matrices(model) -> int:
    """How many of the network's parameters are matrices (``observe``: in the kernel, beside it)."""
    return sum(p.dim() >= 2 for p in model.parameters())


def _check_net(fn, seed, flip, case):
    vx, vy = validation_data(flip)
    with references_in_place(fn, **REFERENCES, train_epoch=reference.train_epoch, train_model=reference.train_model):
        seen = observe(_train_net, fn, seed, flip, env.grading())
    result = seen["result"]
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"train_simple_net should return the pair (model, accuracies), got {type(result).__name__}.")
    model, accuracies = result
    if not seen["module"]:
        fail(f"train_simple_net should return an nn.Module, such as nn.Sequential(...), as its model, "
             f"not a {type(model).__name__}.")
    wrong_length = (f"train_simple_net(train_dl, valid_dl, {NET_EPOCHS}) should return the {NET_EPOCHS} "
                    f"validation accuracies that train_model returns for {NET_EPOCHS} epochs, got {accuracies!r}.")
    if call("len(accuracies)", len, accuracies, explain=lambda error: wrong_length) != NET_EPOCHS:
        fail(wrong_length)
    out = _scores("the network", model, vx[:5])
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (5, 1):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        fail(f"the network should give one score per image: shape (5, 1) for 5 images, got {shape}. "
             f"Its last layer is nn.Linear(..., 1).")
    matrices = observe(_weight_matrices, model)
    if matrices < 2:
        fail(f"the network has {matrices} weight matrix; it needs two linear layers, "
             f"nn.Linear(28 * 28, 30) and nn.Linear(30, 1), with a nonlinearity between them.")
    if _is_linear(model, vx[torch.linspace(0, len(vx) - 1, 40).long()]):
        fail("the network is a linear function of its input: two linear layers in a row are just one "
             "linear layer. Put a nonlinearity, nn.ReLU(), between them.")
    scores = _scores("the network", model, vx)
    if not isinstance(scores, torch.Tensor) or scores.shape != vy.shape:  # the scores judged are one per image
        fail(f"the network should give one score per image: shape ({len(vx)}, 1) for {len(vx)} images.")
    if not bool(torch.isfinite(scores).all()):
        fail(f"train_simple_net for {case}: training diverged (the scores became inf or nan): the "
             f"learning rate is far too large.")
    advice = (f"Does it train the model it returns, and is the learning rate large enough to move the "
              f"weights in {NET_EPOCHS} epochs (0.1 works)?")
    if bool((scores >= 0).all()):
        advice = ("Its scores are never negative, so it calls every image a 3: mnist_loss and "
                  "batch_accuracy apply the sigmoid themselves, so the last layer must be a plain "
                  "nn.Linear, with no ReLU or sigmoid after it.")
    trained = Trained(model, result, float(((scores > 0).long() == vy).float().mean()))
    require_accuracy(trained, THRESHOLD, _not_trained("train_simple_net", case, NET_EPOCHS, advice))


def simple_net(fn):
    _check_net(fn, 0, False, "the 3s and 7s")
    passed("train_simple_net", 1)


def simple_net_hidden(fn, seed):
    _check_net(fn, seed, True, "the 3s and 7s with the labels swapped (1 for a 7)")
    passed_hidden("train_simple_net")
