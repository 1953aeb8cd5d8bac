"""Checks for lesson 02, SGD from scratch: ``finite_difference``, ``quadratic_gradient`` (a gradient derived by
hand), ``apply_step``, ``batch_accuracy``, ``mnist_loss``, ``mnist_loss_gradient`` (derived by hand),
``validate_epoch``, ``BasicOptim``, ``train_model`` (its training: ``linear_model``; what it returns:
``training_record``) and ``train_simple_net``.

The oracles are autograd, ``torch.optim.SGD`` and the course's answers, ``handwritten.reference.sgd``. A
mistake is penalised once: the checks of ``validate_epoch``, ``train_model`` and ``simple_net`` run with reference
versions of what they build on (``mnist_loss``, ``batch_accuracy``, ``calc_grad``, ``validate_epoch``,
``BasicOptim``; for the record of ``train_model``, ``train_epoch``; for the network, ``train_model``) in place, so
a wrong loss costs the loss's tests and not the training tests too. The hand-derived gradients run with autograd
switched off. Every call into the student's code goes through ``_core.call``.

The training checks train on the 3s and 7s of the training part of the training split and measure accuracy on
the 3s and 7s of the validation part that ``data.split_validation`` carves from it, as the lesson does (the
test split is the lesson's to measure once, at its end). While nbgrader grades (``NBGRADER_EXECUTION``) they
train on a subset of 1,000 images: a trained model still gets far above ``THRESHOLD``, an untrained one stays
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
from ._core import (Probe, Trained, as_number, as_tensor, call, close, compare, fail, generator, mnist, not_hard_coded,
                    observe, params_vector, passed, passed_hidden, rand, randn, references_in_place, require_accuracy,
                    seeded, train_then_check)

__all__ = [
    "apply_step", "apply_step_hidden", "basic_optim", "basic_optim_hidden", "batch_accuracy",
    "batch_accuracy_hidden", "finite_difference", "finite_difference_hidden", "linear_model", "linear_model_hidden",
    "mnist_loss", "mnist_loss_gradient", "mnist_loss_gradient_hidden", "mnist_loss_hidden", "quadratic_gradient",
    "quadratic_gradient_hidden", "simple_net", "simple_net_hidden", "training_data", "training_record",
    "training_record_hidden", "validate_epoch", "validate_epoch_hidden",
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



# ---------------------------------------------------------------- quadratic_gradient (derived by hand)


def _no_autograd(fn, name, *args):
    """``fn(*args)`` with autograd off and no argument tracked (``observe``: in the kernel): the gradient must come
    from the student's formula, not from ``backward()``. What it returned, and the arguments afterwards."""
    args = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    with torch.no_grad():
        got = call(name, fn, *args, hint=f"work {name} out from the formula you derived: no backward(), no "
                                          f".grad (the check runs it with autograd switched off).")
    return {"got": got, "args": args}


def _quadratic_mistakes(params, time, speed):
    expected = reference.quadratic_gradient(params, time, speed)
    return [
        ("the factor 2 is missing: the derivative of r² is 2r.", expected / 2),
        ("the sign is flipped: the residual is prediction - speed, and the loss grows when a prediction moves "
         "away from its target.", -expected),
        (f"that is the gradient of the sum of the squared errors: mse is their mean, so divide by the "
         f"{len(time)} measurements.", expected * len(time)),
        ("the three entries are in the wrong order: the gradient is (d/da, d/db, d/dc), in the order of params.",
         expected.flip(0)),
        ("each entry must be weighted by the derivative of the prediction for that parameter: t² for a, t for b, "
         "1 for c (the chain rule).", torch.stack([expected[2], expected[2], expected[2]])),
    ]


def _check_quadratic_gradient(fn, params, time, speed, case):
    with references_in_place(fn, f=reference.f, mse=reference.mse):  # the lesson's f and mse, which it may use
        seen = observe(_no_autograd, fn, "quadratic_gradient", params, time, speed)
    if not close(seen["args"][0], params, rtol=0, atol=0):
        fail(f"quadratic_gradient for {case}: it changed params. Work out the gradient; leave the parameters "
             f"as they are.")
    expected = _grad(params.double(), time.double(), speed.double()).to(params.dtype)  # autograd, in float64
    compare("quadratic_gradient", as_tensor("quadratic_gradient", seen["got"]), expected, case=case,
            mistakes=_quadratic_mistakes(params.double(), time.double(), speed.double()), rtol=1e-4, atol=1e-4)


def quadratic_gradient(fn):
    time, speed = roller_coaster()
    cases = [(LESSON_START, time, speed, "the roller coaster, params [-0.77, -0.75, 1.35]"),
             (torch.tensor([0.5, -2.0, 3.0]), time[:5], speed[:5], "the first 5 measurements, params [0.5, -2, 3]")]
    with references_in_place(fn, f=reference.f, mse=reference.mse):
        not_hard_coded("quadratic_gradient", fn, [(p, t, s) for p, t, s, _ in cases])
    for params, t, s, case in cases:
        _check_quadratic_gradient(fn, params, t, s, case)
    passed("quadratic_gradient", len(cases))


def quadratic_gradient_hidden(fn, seed):
    g = generator(seed)
    for n, dtype in [(30, torch.float64), (7, torch.float32), (1, torch.float64)]:
        time = (rand(g, n, dtype=torch.float64) * 4 - 2).sort().values
        speed = randn(g, n, dtype=torch.float64) * 2
        params = randn(g, 3, dtype=torch.float64)
        _check_quadratic_gradient(fn, params.to(dtype), time.to(dtype), speed.to(dtype),
                                  f"{n} random {str(dtype)[6:]} measurements")
    passed_hidden("quadratic_gradient")


# ---------------------------------------------------------------- finite_difference


def roller_coaster_loss(params):
    """The mse of the quadratic with ``params`` on the lesson's roller coaster, computed in float64."""
    time, speed = roller_coaster(dtype=torch.float64)
    return reference.mse(reference.f(time, params.double()), speed)


def curvy_loss(params):
    """A loss with a different curvature in every direction and a third derivative that is not zero."""
    p = params.double().flatten()
    weights = torch.arange(1, len(p) + 1, dtype=torch.float64)
    return (weights * p ** 3).sum() + (p.sin() * p.roll(1)).sum()


def _finite_difference_run(fn, loss_fn, params, eps):
    """``fn(loss_fn, params, eps)`` (``observe``: in the kernel): what it returned, and ``params`` afterwards."""
    params = params.clone()
    got = call("finite_difference", fn, loss_fn, params, eps)
    return {"got": got, "params": params}


def _one_sided(loss_fn, params, eps):
    start, grad = params.detach().double().clone(), torch.zeros(params.shape, dtype=torch.float64)
    for i in range(start.numel()):
        up = start.clone()
        up.view(-1)[i] += eps
        grad.view(-1)[i] = (float(loss_fn(up)) - float(loss_fn(start))) / eps
    return grad


def _check_finite_difference(fn, loss_fn, params, eps, case):
    seen = observe(_finite_difference_run, fn, loss_fn, params, eps)
    where = f"finite_difference for {case}"
    if not isinstance(seen["params"], torch.Tensor) or not close(seen["params"], params, rtol=1e-9, atol=1e-12):
        fail(f"{where}: params is not as it was after the call. Nudge a copy (params.clone()), or put every "
             f"element back after measuring it: a gradient check must not move the point it checks.")
    got = as_tensor("finite_difference", seen["got"])
    start = params.detach().double()
    expected = reference.finite_difference(loss_fn, start, eps)
    exact = start.clone().requires_grad_(True)
    loss_fn(exact).backward()
    together = (float(loss_fn(start + eps)) - float(loss_fn(start - eps))) / (2 * eps)
    mistakes = [
        ("that is a one-sided difference, (loss(p + eps) - loss(p)) / eps: its error shrinks like eps, the central "
         "difference's like eps². Nudge each element both ways: (loss(p + eps) - loss(p - eps)) / (2 eps).",
         _one_sided(loss_fn, start, eps)),
        ("twice the gradient: the two nudges are 2 eps apart, so divide by 2 * eps.", 2 * expected),
        ("every element was nudged at once, so every entry is the same slope along all directions together: "
         "nudge one element at a time, the others held still.", torch.full_like(expected, together)),
        (f"that is the exact gradient, not the finite difference with eps={eps}: use the eps you are given.",
         exact.grad),
    ]
    if got.shape != params.shape:
        fail(f"{where}: the result has shape {tuple(got.shape)}; it needs one entry per element of params, "
             f"shape {tuple(params.shape)}.")
    compare("finite_difference", got.double(), expected, case=case, mistakes=mistakes, rtol=1e-6, atol=1e-7)


def finite_difference(fn):
    _check_finite_difference(fn, roller_coaster_loss, torch.tensor([-0.77, -0.75, 1.35], dtype=torch.float64), 1e-4,
                             "the roller coaster's loss at [-0.77, -0.75, 1.35], eps=1e-4")
    _check_finite_difference(fn, curvy_loss, torch.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=torch.float64), 0.01,
                             "a curvy loss of a 2x2 matrix, eps=0.01")
    passed("finite_difference", 2)


def finite_difference_hidden(fn, seed):
    g = generator(seed)
    for shape, eps in [((5,), 0.05), ((2, 3), 1e-3), ((1,), 0.2)]:
        _check_finite_difference(fn, curvy_loss, randn(g, *shape, dtype=torch.float64), eps,
                                 f"a curvy loss of a random {shape} tensor, eps={eps}")
    passed_hidden("finite_difference")


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



# ---------------------------------------------------------------- mnist_loss_gradient (derived by hand)


def _loss_gradient_mistakes(xb, yb, weights, bias):
    s = (xb @ weights + bias).sigmoid()
    sign = torch.where(yb == 1, -1.0, 1.0).to(s.dtype)
    n = len(xb)

    def both(dz):
        return xb.T @ dz, dz.sum(0)

    return [
        ("the derivative of the sigmoid is missing: d sigmoid(z) / dz = sigmoid(z) * (1 - sigmoid(z)).",
         both(sign / n)),
        ("the signs are swapped: for a 3 the loss is 1 - sigmoid(z), which falls as z grows, so its derivative is "
         "negative.", both(-sign * s * (1 - s) / n)),
        (f"that is the gradient of the sum over the batch: the loss is the mean, so divide by the {n} images.",
         both(sign * s * (1 - s))),
        ("d sigmoid(z) / dz is sigmoid(z) * (1 - sigmoid(z)), of the sigmoid of the score, not of the score itself.",
         both(sign * (xb @ weights + bias) * (1 - (xb @ weights + bias)) / n)),
    ]


def _check_mnist_loss_gradient(fn, xb, yb, weights, bias, case):
    seen = observe(_no_autograd, fn, "mnist_loss_gradient", xb, yb, weights, bias)
    where = f"mnist_loss_gradient for {case}"
    got = seen["got"]
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(f"{where}: return a pair, (the gradient for weights, the gradient for bias), got "
             f"{type(got).__name__}.")
    got_w, got_b = as_tensor("mnist_loss_gradient", got[0]), as_tensor("mnist_loss_gradient", got[1])
    w, b = weights.double().clone().requires_grad_(True), bias.double().clone().requires_grad_(True)
    reference.mnist_loss(xb.double() @ w + b, yb).backward()
    if tuple(got_w.shape) != tuple(weights.shape) or tuple(got_b.shape) != tuple(bias.shape):
        fail(f"{where}: the gradients have shapes {tuple(got_w.shape)} and {tuple(got_b.shape)}; a gradient has the "
             f"shape of its parameter: {tuple(weights.shape)} for weights and {tuple(bias.shape)} for bias.")
    for got_p, wrong_p, expected, what in [(got_w, 0, w.grad, "weights"), (got_b, 1, b.grad, "bias")]:
        mistakes = [(m, pair[wrong_p]) for m, pair in
                    _loss_gradient_mistakes(xb.double(), yb, weights.double(), bias.double())]
        if what == "bias":
            mistakes.insert(0, ("the bias's gradient is missing a term: z = x @ w + b, so dz/db = 1 for every image, "
                             "and the bias's gradient is the sum of d loss / dz over the batch.",
                             torch.zeros_like(expected)))
        compare("mnist_loss_gradient", got_p.double(), expected, case=f"{case}, the gradient for {what}",
                mistakes=mistakes, rtol=1e-4, atol=1e-6)


def _loss_gradient_problem(g, n, d, dtype=torch.float32, threes=None):
    xb = rand(g, n, d, dtype=dtype)
    yb = (torch.rand(n, 1, generator=g) > 0.5).long() if threes is None else torch.full((n, 1), int(threes))
    weights = randn(g, d, 1, dtype=dtype)
    bias = randn(g, 1, dtype=dtype)
    return xb, yb, weights, bias


def mnist_loss_gradient(fn):
    g = generator(3)
    small = _loss_gradient_problem(g, 4, 6)
    images = mnist("train", stop=8, shape=(28 * 28,))[0]
    lesson = (images, torch.tensor([[1], [0], [1], [1], [0], [0], [1], [0]]), randn(g, 28 * 28, 1, scale=0.05),
              torch.tensor([0.2]))
    _check_mnist_loss_gradient(fn, *small, "4 images of 6 pixels")
    _check_mnist_loss_gradient(fn, *lesson, "8 MNIST images and small random weights")
    passed("mnist_loss_gradient", 2)


def mnist_loss_gradient_hidden(fn, seed):
    g = generator(seed)
    for n, d, dtype, threes in [(50, 10, torch.float64, None), (1, 3, torch.float32, None),
                                (9, 5, torch.float32, True), (7, 4, torch.float64, False)]:
        what = {None: "", True: ", all 3s", False: ", all 7s"}[threes]
        _check_mnist_loss_gradient(fn, *_loss_gradient_problem(g, n, d, dtype, threes),
                                   f"{n} random {str(dtype)[6:]} images of {d} pixels{what}")
    passed_hidden("mnist_loss_gradient")

# ---------------------------------------------------------------- batch_accuracy


def _accuracy_mistakes(xb, yb):
    n_threes = (yb == 1).double().mean()
    flat_x, flat_y = xb.reshape(-1), yb.reshape(-1)
    pairs = (xb.reshape(-1, 1) > 0) == yb.reshape(1, -1)
    return [
        ("every score was compared with every label: scores (N, 1) and labels (N,) broadcast to an (N, N) table. "
         "Compare one score with one label: flatten both (or reshape one to the other's shape) first.",
         pairs.double().mean()),
        ("after a sigmoid every value is above 0, so `> 0` calls every image a 3: threshold the "
         "sigmoid at 0.5 (or the raw scores at 0).", n_threes),
        ("the raw scores were compared with 0.5 without the sigmoid: either apply xb.sigmoid() "
         "before `> 0.5`, or compare the raw scores with 0.", ((flat_x > 0.5) == flat_y).double().mean()),
        ("3s and 7s are swapped: a prediction above 0.5 (a score above 0) means a 3, label 1.",
         ((flat_x.sigmoid() <= 0.5) == flat_y).double().mean()),
        ("that is the number of correct predictions; the accuracy is their mean (.float().mean()).",
         ((flat_x > 0) == flat_y).double().sum()),
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
             (-xb[:5], yb[:5], "the first five scores with their signs flipped"),
             (xb, yb[:, 0], "the seven scores, shape (7, 1), with their targets as shape (7,)")]
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
    xb = _random_scores(g, 40, 1)
    yb = (torch.rand(40, generator=g) > 0.5).long()
    _check_batch_accuracy(fn, xb, yb, "40 scores of shape (40, 1) with labels of shape (40,)")
    _check_batch_accuracy(fn, xb[:, 0], yb[:, None].float(), "40 scores of shape (40,) with float labels (40, 1)")
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


NO_GRADIENT = ("BasicOptim.step failed on a parameter that has no gradient: one the loss did not use keeps "
               "p.grad None after backward(). Leave such a parameter alone (skip it when p.grad is None), as "
               "torch.optim.SGD does.")


def _no_gradient(error):
    return NO_GRADIENT if "NoneType" in str(error) else None


def _optim_steps(cls, params0, inputs, lr, as_generator, unused=0):
    """``cls`` built on copies of ``params0`` (given as a generator, as ``model.parameters()`` is, or as a list),
    then for every input: backward, ``step()``, ``zero_grad()`` (``observe``: in the kernel, where the optimiser
    changes the tensors it holds). For every step, the parameters before and after it and the gradients left by
    zero_grad(); at the first call that failed, its message (judged in its turn, after what came before it). The
    last ``unused`` parameters take no part in the loss."""
    mine = [p.clone().requires_grad_(True) for p in params0]
    given = (p for p in mine) if as_generator else list(mine)
    opt = call("BasicOptim", cls, given, lr)
    seen = []
    for x in inputs:
        step = {"before": [p.detach().clone() for p in mine]}
        seen.append(step)
        _optim_loss(mine[:len(mine) - unused], x).backward()
        try:
            call("BasicOptim.step", opt.step, explain=_no_gradient)
            step["after"] = [p.detach().clone() for p in mine]
            call("BasicOptim.zero_grad", opt.zero_grad)
        except AssertionError as error:
            step["error"] = str(error)
            break
        step["grads"] = [None if p.grad is None else p.grad.detach().clone() for p in mine]
    return seen


def _run_optim(cls, params0, inputs, lr, as_generator, case, unused=0):
    """Step ``cls`` and torch.optim.SGD side by side; fail at the first difference."""
    seen = observe(_optim_steps, cls, params0, inputs, lr, as_generator, unused)
    ref = [p.clone().requires_grad_(True) for p in params0]
    sgd = torch.optim.SGD(ref, lr=lr)
    for k, x in enumerate(inputs):
        where = f"BasicOptim for {case}, step {k + 1}"
        step = seen[k] if k < len(seen) else {"error": f"{where}: no result came back."}
        _optim_loss(ref[:len(ref) - unused], x).backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in ref]
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


def _check_optim(cls, params0, inputs, lr, case, unused=0):
    """With params as a generator (model.parameters()); if only that fails, say why."""
    try:
        _run_optim(cls, params0, inputs, lr, as_generator=True, case=case, unused=unused)
    except AssertionError as error:
        try:
            _run_optim(cls, params0, inputs, lr, as_generator=False, case=case, unused=unused)
        except AssertionError:
            raise error from None
        fail(f"BasicOptim for {case}: it works when params is a list but not with model.parameters(), "
             f"which is a generator: it can be walked through only once, so the second loop over it "
             f"finds nothing. Store a list in __init__: self.params = list(params).")


def basic_optim(cls):
    params0, inputs = _optim_problem(1, torch.float32, [(3, 2), (2,)])
    _check_optim(cls, params0, inputs[:3], 0.1, "the weight and bias of a layer, lr=0.1")
    params0, inputs = _optim_problem(2, torch.float32, [(3, 2), (2,), (4,)])
    _check_optim(cls, params0, inputs[:2], 0.1, "a layer and a third parameter the loss does not use", unused=1)
    passed("BasicOptim", 5)


def basic_optim_hidden(cls, seed):
    g = generator(seed)
    for dtype, lr, shapes in [(torch.float64, 0.5, [(4, 3), (3,), (3, 1), (1,)]),
                              (torch.float32, 1e-3, [(6, 2), (2,)])]:
        params0, inputs = _optim_problem(int(torch.randint(0, 10**6, (1,), generator=g)), dtype, shapes)
        _check_optim(cls, params0, inputs, lr, f"{len(shapes)} {str(dtype)[6:]} parameters, lr={lr}")
    params0, inputs = _optim_problem(int(torch.randint(0, 10**6, (1,), generator=g)), torch.float64,
                                     [(5, 3), (3, 2), (7,), (3,)])
    _check_optim(cls, params0, inputs, 0.2, "four float64 parameters, two of which the loss does not use", unused=2)
    passed_hidden("BasicOptim")


# ---------------------------------------------------------------- the data for training


def _threes_and_sevens(part, scale=True):
    """Flattened images of the 3s and 7s of ``part`` ("train" or "valid": the two parts of the training split that
    ``split_validation`` carves, as the lesson does), scaled to [0, 1] (uint8 if not ``scale``), and labels (N, 1):
    1 for a 3, 0 for a 7. The test split is never used here: the lesson measures it once, at its end."""
    from ..data import load_mnist, split_validation

    data = load_mnist(quiet=True)
    images, labels = data.train_images, data.train_labels
    index = torch.arange(len(labels))
    train_index, train_labels, valid_index, valid_labels = split_validation(index, labels)  # the lesson's split
    where, own = (train_index, train_labels) if part == "train" else (valid_index, valid_labels)
    threes, sevens = images[where[own == 3]], images[where[own == 7]]
    x = torch.cat([threes, sevens]).reshape(-1, 28 * 28)
    if scale:
        x = x.float()
        x /= 255  # in place, after the cat: one float copy of the images (the same values as converting each first)
    y = torch.tensor([1] * len(threes) + [0] * len(sevens)).unsqueeze(1)
    return x, y


def training_data(graded=None, flip=False):
    """(train_x, train_y, valid_x, valid_y): the 3s and 7s of the training part of the training split (uint8 images:
    TensorBatches scales them; a 1,000-image subset while graded) and of the validation part carved from it.
    ``flip`` swaps the labels: 1 for a 7."""
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
    """(valid_x, valid_y): the validation 3s and 7s (carved from the training split, as the lesson carves them),
    what a trained model is measured on (here, while graded: the kernel trains on its own copy of
    ``training_data``)."""
    vx, vy = _threes_and_sevens("valid")
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


ARGUMENTS_HINT = ("use the model, opt, train_dl, valid_dl and epochs you are given as arguments, not the notebook's "
                  "dl, valid_dl, opt or EPOCHS.")
VALIDATE_HINT = "use the model and dl you are given as arguments, not the notebook's linear1 or valid_dl."


# ---------------------------------------------------------------- validate_epoch


def _validate_run(fn, weight, bias, batches):
    """``fn`` measures ``_linear(weight, bias)`` behind a ``Probe`` on ``batches`` (``observe``: in the kernel): what
    it returned, and how many images each forward pass saw and whether autograd was recording it."""
    probe = Probe(_linear(weight, bias))
    got = call("validate_epoch", fn, probe, batches, hint=VALIDATE_HINT)
    return {"got": got, "calls": [(c.shape[0], c.grad) for c in probe.calls]}


def _check_validate_epoch(fn, weight, bias, batches, case):
    with references_in_place(fn, batch_accuracy=reference.batch_accuracy):
        seen = observe(_validate_run, fn, weight, bias, batches)
    where = f"validate_epoch for {case}"
    got = seen["got"]
    if isinstance(got, torch.Tensor):
        fail(f"{where}: it returned a tensor; return the accuracy as a plain Python number (float(...) or "
             f".item()): a number is what a list of accuracies holds and prints, and it keeps no tensor alive.")
    got = as_number("validate_epoch", got, "the accuracy")
    model = _linear(weight, bias)
    sizes = [len(yb) for _, yb in batches]
    if sum(n for n, _ in seen["calls"]) != sum(sizes):
        fail(f"{where}: the model saw {sum(n for n, _ in seen['calls'])} images; dl holds {sum(sizes)} in batches "
             f"of {sizes}. Go through every batch of the dl you are given.")
    accs = [float(reference.batch_accuracy(model(xb), yb)) for xb, yb in batches]
    expected = sum(a * n for a, n in zip(accs, sizes)) / sum(sizes)
    batch_mean = sum(accs) / len(accs)
    if not math.isclose(got, expected, abs_tol=1e-4):
        if math.isclose(got, batch_mean, abs_tol=1e-4):
            fail(f"{where}: {got:.4f} is the mean of the batch accuracies {[round(a, 4) for a in accs]}, but the "
                 f"batches hold {sizes} images: the last, smaller one counts as much as a full one. The accuracy "
                 f"over every image is {expected:.4f}: weight each batch's accuracy by its size (or count the "
                 f"right answers and the images).")
        if math.isclose(got, 100 * expected, abs_tol=1e-2):
            fail(f"{where}: it returned {got:.2f}: a percentage. Return the fraction right, between 0 and 1.")
        fail(f"{where}: got {got:.4f}; the fraction of all {sum(sizes)} images classified right is {expected:.4f}.")
    if any(grad for _, grad in seen["calls"]):
        fail(f"{where}: autograd recorded the validation passes. Measuring needs no gradients: run the model "
             f"inside `with torch.no_grad():`, which saves the memory and time the recording costs.")


def _scores_problem(scores, labels, batch_size):
    """A model that passes its one input through (weight 1, bias 0), and the scores in batches: its predictions
    are the scores."""
    x = torch.as_tensor(scores, dtype=torch.float32)[:, None]
    return torch.ones(1, 1), torch.zeros(1), list(TensorBatches(x, torch.as_tensor(labels)[:, None], batch_size))


def validate_epoch(fn):
    # batches of 4, 4 and 1 image: 2/4, 2/4 and 1/1 right; 5/9 over all, 2/3 as a mean of the batch means
    weight, bias, batches = _scores_problem([2.0, -1.0, 0.5, 3.0, -2.0, 1.0, -0.5, 0.7, 1.5],
                                            [1, 1, 0, 0, 0, 0, 0, 1, 1], 4)
    _check_validate_epoch(fn, weight, bias, batches, "9 scores in batches of 4, 4 and 1")
    weight, bias, batches = _scores_problem([1.0, -1.0, 2.0], [1, 0, 0], 3)
    _check_validate_epoch(fn, weight, bias, batches, "3 scores in one batch")
    passed("validate_epoch", 2)


def validate_epoch_hidden(fn, seed):
    g = generator(seed)
    for n, d, batch_size, dtype in [(37, 5, 16, torch.float64), (10, 3, 10, torch.float32), (50, 4, 7, torch.float32)]:
        x = randn(g, n, d, dtype=dtype)
        y = (torch.rand(n, 1, generator=g) > 0.5).long()
        if batch_size == 7:
            y = y[:, 0]  # labels of shape (N,)
        weight, bias = randn(g, 1, d, dtype=dtype), randn(g, 1, dtype=dtype)
        _check_validate_epoch(fn, weight, bias, list(TensorBatches(x, y, batch_size)),
                              f"{n} random {str(dtype)[6:]} images of {d} features in batches of {batch_size}")
    passed_hidden("validate_epoch")


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
    where the model and its optimiser live): its parameters afterwards."""
    model = _linear(weight, bias)
    call("train_model", fn, model, make_opt(model.parameters(), lr), train_dl, valid_dl, epochs, hint=ARGUMENTS_HINT)
    return params_vector(model)


def _check_mechanics(fn, seed, dtype, epochs, lr, make_opt, case):
    """The training: the parameters after ``epochs`` epochs are those of plain gradient descent on every batch.
    (What train_model returns is judged by ``training_record``.)"""
    train_dl, valid_dl, weight, bias = _tiny_problem(seed, dtype)
    with references_in_place(fn, **REFERENCES):
        got = observe(_train_tiny, fn, weight, bias, make_opt, lr, train_dl, valid_dl, epochs)
    where = f"train_model for {case}"
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


# ---------------------------------------------------------------- train_model: what it returns


def _train_probed(fn, weight, bias, lr, train_dl, valid_dl, epochs):
    """``fn`` trains ``_linear(weight, bias)`` behind a ``Probe``, handed over in eval mode (as a model is after it
    was last measured), with BasicOptim (``observe``: in the kernel): what it returned, and for every forward pass
    the images it saw, the mode, and whether autograd was recording."""
    probe = Probe(_linear(weight, bias)).eval()
    result = call("train_model", fn, probe, reference.BasicOptim(probe.parameters(), lr), train_dl, valid_dl, epochs,
                  hint=ARGUMENTS_HINT)
    return {"result": result, "calls": [(c.shape[0], c.training, c.grad) for c in probe.calls]}


def _measured(weight, bias, batches, lr, train_dl, epochs):
    """The validation accuracy after each of 0, 1, ..., ``epochs`` epochs of the reference training."""
    out = []
    for e in range(epochs + 1):
        trained = _simulate(weight, bias, train_dl, lr, e)
        out.append(reference.validate_epoch(_linear(trained[:-1].reshape(weight.shape), trained[-1:]), batches))
    return out


def _record_problem(seed, dtype, epochs, lr, d=4):
    """A tiny problem a linear model learns (labels from a hidden linear rule), in training batches of 5 and
    validation batches of 7, 7, 7, 7 and 1: the first one, from ``seed`` on, whose validation accuracy changes at
    every epoch and differs from the training accuracy, so that an accuracy measured at the wrong time or on the
    wrong loader is told apart from the right one. (train_dl, valid_dl, weight, bias, the expected accuracies.)"""
    for s in range(seed, seed + 200):
        g = generator(s)
        true = randn(g, d, 1, dtype=dtype)
        x, vx = randn(g, 20, d, dtype=dtype), randn(g, 29, d, dtype=dtype)
        train_dl = list(TensorBatches(x, (x @ true > 0).long(), 5))
        valid_dl = list(TensorBatches(vx, (vx @ true > 0).long(), 7))
        weight, bias = randn(g, 1, d, dtype=dtype, scale=0.1), torch.zeros(1, dtype=dtype)
        expected = _measured(weight, bias, valid_dl, lr, train_dl, epochs)
        on_train = _measured(weight, bias, train_dl, lr, train_dl, epochs)
        if all(abs(a - b) > 1e-3 for a, b in zip(expected, expected[1:])) and \
                all(abs(a - b) > 1e-3 for a, b in zip(expected[1:], on_train[1:])):
            return train_dl, valid_dl, weight, bias, expected
    raise RuntimeError(f"no tiny problem from seed {seed} tells the epochs apart: the check itself is broken")


def _check_record(fn, seed, epochs, lr, case, dtype=torch.float32):
    train_dl, valid_dl, weight, bias, expected = _record_problem(seed, dtype, epochs, lr)
    with references_in_place(fn, **REFERENCES, train_epoch=reference.train_epoch):
        seen = observe(_train_probed, fn, weight, bias, lr, train_dl, valid_dl, epochs)
    where = f"train_model for {case}"
    result = seen["result"]
    if not isinstance(result, (list, tuple)):
        fail(f"{where}: return the list of validation accuracies, one per epoch, not {result!r}.")
    if len(result) != epochs:
        fail(f"{where}: it returned {len(result)} accuracies for {epochs} epochs: append one validation accuracy "
             f"after every epoch's training, and return the list after the loop. (Train for the epochs you are "
             f"given, not the notebook's EPOCHS.)")
    if any(isinstance(a, torch.Tensor) for a in result):
        fail(f"{where}: the accuracies are tensors; store plain Python numbers (float(...) or .item()).")
    accuracies = [as_number("train_model", a, "each accuracy") for a in result]
    if any(a > 1 for a in accuracies):
        fail(f"{where}: it returned {accuracies}: percentages. Each accuracy is the fraction right, between 0 and 1.")
    for k, got in enumerate(accuracies):
        if not math.isclose(got, expected[k + 1], abs_tol=1e-3):
            if all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(accuracies, expected)):
                fail(f"{where}: accuracy number {k + 1} ({got:.4f}) is the one before epoch {k + 1}'s training "
                     f"({expected[k]:.4f} before, {expected[k + 1]:.4f} after): measure after each epoch's "
                     f"training, so that the last number is the trained model's.")
            fail(f"{where}: after epoch {k + 1} the model classifies {expected[k + 1]:.4f} of valid_dl right, but "
                 f"the list says {got:.4f}: append validate_epoch(model, valid_dl) once after every epoch's "
                 f"training (valid_dl, not train_dl).")
    calls = seen["calls"]
    training = [c for c in calls if c[0] == 5]    # the training batches hold 5 images; no validation batch does
    validating = [c for c in calls if c[0] != 5]
    if any(not mode for _, mode, _ in training):
        fail(f"{where} (a model handed over in eval mode): some training batches ran in eval mode. Call "
             f"model.train() at the start of every epoch: after validating, the model is still in eval mode, and a "
             f"network with dropout (lesson 03) would train with it switched off.")
    if any(mode for _, mode, _ in validating):
        fail(f"{where}: the validation batches ran in training mode. Call model.eval() before measuring "
             f"valid_dl: layers such as dropout behave differently while training, and a measurement must not "
             f"depend on them.")
    if any(grad for _, _, grad in validating):
        fail(f"{where}: autograd recorded the validation passes: measure inside `with torch.no_grad():`.")


def training_record(fn):
    _check_record(fn, 5, 2, 2.0, "a tiny linear model, 4 batches, 2 epochs")
    passed("train_model's record", 1)


def training_record_hidden(fn, seed):
    _check_record(fn, seed, 4, 1.5, "a tiny float64 linear model, 4 epochs", dtype=torch.float64)
    passed_hidden("train_model's record")


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
