"""Checks for lesson 03, what is ``torch.nn`` really: ``log_softmax``, ``nll``, ``accuracy``,
``loss_batch``, ``fit``, ``get_data`` and a model trained with the lesson's three lines.

The oracle is PyTorch, through the course's answers in ``handwritten.reference.torch_nn`` (``F.log_softmax``,
``F.nll_loss``, ``torch.optim`` and ``DataLoader``). A later exercise is always checked with the reference
versions of the earlier ones in place (``fit`` runs with the reference ``loss_batch``), so one mistake costs one
exercise's points. Every call into the student's code goes through ``_core.call``, which also captures what it
prints: a progress bar or a warning printed inside a test cell would zero it under nbgrader.

While graded, the checks run in the grader and the student's objects stay in their kernel: what the student's code
must be given (a model, an optimiser, loaders, datasets) is built there by ``observe`` from a seed, the same as the
copy the check builds here, and what it did comes back as data (outputs, gradients, parameters, trained weights),
judged here against the references.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from .. import env
from ..reference import torch_nn as reference
from ..reference.torch_nn import HISTORY_KEYS
from ._core import (Probe, as_number, call, close, compare, fail, generator, mnist, not_hard_coded, observe,
                    params_vector, passed, passed_hidden, rand, randn, references_in_place, seeded, train_then_check)

__all__ = [
    "THRESHOLD", "accuracy", "accuracy_hidden", "choose_epochs", "choose_epochs_hidden", "cross_entropy_grad",
    "cross_entropy_grad_hidden", "fit", "fit_hidden", "get_data", "get_data_hidden", "log_softmax",
    "log_softmax_hidden", "loss_batch", "loss_batch_hidden", "nll", "nll_hidden", "train_epoch", "train_epoch_hidden",
    "trained_model", "trained_model_hidden",
]


def _targets(g, n, c):
    return torch.randint(0, c, (n,), generator=g)


def _outputs_differ(name, fn, inputs, hint, convert=None):
    """The toolbox's ``not_hard_coded`` for ``fn`` on ``inputs``, but with the exercise's ``hint`` when ``fn``
    raises (``not_hard_coded`` has none to give) and each output turned into a tensor by ``convert`` first:
    ``fn`` runs once per input, here, and ``not_hard_coded`` compares what it returned."""
    outputs = [call(name, fn, *args, hint=hint) for args in inputs]
    if convert is not None:
        outputs = [convert(out) for out in outputs]
    not_hard_coded(name, lambda i: outputs[i], [(i,) for i in range(len(outputs))])


# ---------------------------------------------------------------- log_softmax


LOG_SOFTMAX_HINT = ("work along the last dimension (dim=-1), keeping it for the subtraction "
                    "(keepdim=True or .unsqueeze(-1)).")
NLL_HINT = "pick input[i, target[i]] for every row i with input[range(n), target], then average."
ACCURACY_HINT = ("the prediction for each image is the index of its largest score: argmax over the classes, "
                 "dim=1. Compare it with yb and average (.float().mean()).")


def _log_softmax_outputs(fn, x, weights):
    """``fn(x)``, and the gradient with respect to ``x`` of ``(fn(x) * weights).sum()`` when the output can have one
    (``observe``: autograd's graph stays beside the student's code)."""
    x = x.clone().requires_grad_(True)
    got = call("log_softmax", fn, x, hint=LOG_SOFTMAX_HINT)
    if isinstance(got, torch.Tensor) and got.requires_grad and got.shape == x.shape:
        (got * weights).sum().backward()
    return got, x.grad


def _check_log_softmax(fn, x, case):
    expected = reference.log_softmax(x)
    weights = randn(generator(7), *x.shape, dtype=x.dtype)
    got, grad = observe(_log_softmax_outputs, fn, x, weights)
    mistakes = [("it normalises over the batch (dim 0): exp of every *column* sums to 1. A row holds one "
                 "image's scores for the classes; normalise along the last dimension (dim=-1).",
                 F.log_softmax(x, dim=0) if x.dim() > 1 else None),
                ("these are probabilities (softmax): take their log, or better, compute "
                 "x - logsumexp(x) directly.", F.softmax(x, dim=-1))]
    if x.dim() == 2 and x.shape[0] == x.shape[1]:
        mistakes.append(("the log-sum-exp is subtracted along the wrong axis: keep the reduced "
                         "dimension (keepdim=True or .unsqueeze(-1)) so that each row loses its own total.",
                         x - torch.logsumexp(x, dim=-1)[None, :]))
    if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(x.shape) and x.abs().max() > 80 \
            and not bool(torch.isfinite(got.detach()).all()):
        fail(f"log_softmax for {case}: the output contains inf or nan. exp(x) overflows float32 once "
             f"x > 88 or so: subtract each row's maximum before exp, then add it back after the log.")
    if x.dim() == 2 and x.shape[0] != x.shape[1] and isinstance(got, torch.Tensor) \
            and tuple(got.shape) == (x.shape[0], x.shape[0]):
        fail(f"log_softmax for {case}: the output has shape {tuple(got.shape)}, expected {tuple(x.shape)}.")
    compare("log_softmax", got, expected, case=case, mistakes=mistakes, rtol=1e-4, atol=1e-4)
    if got.dtype != x.dtype:
        fail(f"log_softmax for {case}: the input is {x.dtype} but the output is {got.dtype}; keep the dtype.")
    if not got.requires_grad:
        fail(f"log_softmax for {case}: the output is not connected to the input through autograd. "
             f"Compute it with torch operations on x (no torch.tensor(...) of the values, no .detach()), "
             f"or the model cannot learn.")
    x_ref = x.clone().requires_grad_(True)
    (reference.log_softmax(x_ref) * weights).sum().backward()
    if grad is None or not close(grad, x_ref.grad, rtol=1e-3, atol=1e-4):
        fail(f"log_softmax for {case}: the values are right but the gradient is not. Did you detach "
             f"part of the computation?")


def _lesson_logits():
    """A batch of 4 images' scores for 10 classes, and two rows of large scores."""
    g = generator(3)
    return randn(g, 4, 10), torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])


def log_softmax(fn):
    small, large = _lesson_logits()
    _outputs_differ("log_softmax", fn, [(small,), (small * 2 + 1,)], LOG_SOFTMAX_HINT)
    _check_log_softmax(fn, small, "a (4, 10) batch of scores")
    _check_log_softmax(fn, large, "large scores such as [1000, 1001, 1002]")
    passed("log_softmax", 3)


def log_softmax_hidden(fn, seed):
    g = generator(seed)
    _outputs_differ("log_softmax", fn, [(randn(g, 3, 5),), (randn(g, 3, 5),)], LOG_SOFTMAX_HINT)
    cases = [((6, 6), torch.float32, 1.0), ((7, 3), torch.float64, 1.0), ((2, 10), torch.float32, 300.0),
             ((10,), torch.float32, 1.0), ((3, 4, 5), torch.float64, 1.0), ((25, 10), torch.float32, 5.0),
             ((1, 7), torch.float32, 1.0)]
    for shape, dtype, scale in cases:
        x = randn(g, *shape, dtype=dtype, scale=scale)
        _check_log_softmax(fn, x, f"a random {shape} {str(dtype)[6:]} input (scale {scale:g})")
    passed_hidden("log_softmax")


# ---------------------------------------------------------------- nll


def _nll_outputs(fn, input, target):
    """``fn(input, target)``, and the gradient of the loss with respect to ``input`` when it can have one
    (``observe``: autograd's graph stays beside the student's code)."""
    input = input.clone().requires_grad_(True)
    got = call("nll", fn, input, target.clone(), hint=NLL_HINT)
    if isinstance(got, torch.Tensor) and got.requires_grad and got.numel() == 1:
        got.sum().backward()
    return got, input.grad


def _check_nll(fn, input, target, case):
    expected = reference.nll(input, target)
    n = len(target)
    got, grad = observe(_nll_outputs, fn, input, target)
    if isinstance(got, torch.Tensor) and got.numel() > 1:
        hint = ""
        if tuple(got.shape) == (n, n):
            hint = (" input[:, target] takes, for every image, the scores of *every* image's target: "
                    "an N x N matrix. Pair row i with target[i]: input[range(N), target].")
        fail(f"nll for {case}: return one number (the mean loss), not a tensor of shape "
             f"{tuple(got.shape)}.{hint}")
    if isinstance(got, float | int):
        fail(f"nll for {case}: return a tensor (the loss must stay connected to the model for "
             f"backward()), not a Python {type(got).__name__}.")
    picked = input[range(n), target]
    mistakes = [("it sums the losses instead of averaging them: the loss, and so the size of every "
                 "step, would grow with the batch size. Use .mean().", -picked.sum()),
                ("input[:, target] takes, for every image, the scores of *every* image's target (an "
                 "N x N matrix), and averages all of them. Pair row i with target[i]: "
                 "input[range(N), target].", -input[:, target].mean()),
                ("the sign is wrong: the loss is the *negative* log-likelihood, so that good "
                 "predictions (log-probabilities near 0) give a small loss.", picked.mean())]
    compare("nll", got.reshape(()) if isinstance(got, torch.Tensor) else got, expected, case=case,
            mistakes=mistakes, rtol=1e-4, atol=1e-5)
    if not got.requires_grad:
        fail(f"nll for {case}: the loss is not connected to the input through autograd (no .item(), "
             f"no .detach(), no torch.tensor(...) of the values).")
    ref_in = input.clone().requires_grad_(True)
    reference.nll(ref_in, target).backward()
    if grad is None or not close(grad, ref_in.grad):
        fail(f"nll for {case}: the value is right but the gradient is not.")


def _lesson_batch():
    """Log-probabilities of 4 images over 10 classes and their labels; and a 3-class example
    whose targets are all different."""
    g = generator(5)
    first = F.log_softmax(randn(g, 4, 10), dim=-1), torch.tensor([3, 0, 9, 3])
    second = F.log_softmax(randn(g, 3, 3), dim=-1), torch.tensor([2, 0, 1])
    return first, second


def nll(fn):
    first, second = _lesson_batch()
    _outputs_differ("nll", fn, [first, second], NLL_HINT)
    _check_nll(fn, *first, "4 images and 10 classes")
    _check_nll(fn, *second, "3 images and 3 classes")
    passed("nll", 2)


def nll_hidden(fn, seed):
    g = generator(seed)
    _outputs_differ("nll", fn, [(F.log_softmax(randn(g, 5, 4), -1), _targets(g, 5, 4)) for _ in range(2)],
                    NLL_HINT)
    for n, c, dtype in [(1, 10, torch.float32), (64, 10, torch.float32), (7, 3, torch.float64),
                        (5, 12, torch.float32), (10, 10, torch.float32)]:
        input = F.log_softmax(randn(g, n, c, dtype=dtype), dim=-1)
        _check_nll(fn, input, _targets(g, n, c), f"{n} random rows of {c} {str(dtype)[6:]} log-probabilities")
    passed_hidden("nll")


# ---------------------------------------------------------------- cross_entropy_grad


CE_GRAD_HINT = ("work it out on paper first: the loss of image i is log(sum_j exp(s_ij)) - s_i,target[i]; its "
                "derivative with respect to s_ij is softmax(s_i)_j, minus 1 where j is the target; then the mean "
                "over the N images divides every row by N.")


def _check_ce_grad(fn, scores, target, case):
    scores_ref = scores.clone().requires_grad_(True)
    F.cross_entropy(scores_ref, target).backward()
    expected = scores_ref.grad
    with references_in_place(fn, log_softmax=reference.log_softmax):   # a wrong log_softmax costs its own points
        got = call("cross_entropy_grad", fn, scores.clone(), target.clone(), hint=CE_GRAD_HINT)
    got = _ce_tensor(got, case)
    n, c = scores.shape
    probs = F.softmax(scores, dim=-1)
    one_hot = F.one_hot(target, c).to(scores.dtype)
    if tuple(got.shape) == (n, c) and not bool(torch.isfinite(got.detach()).all()) and scores.abs().max() > 80:
        fail(f"cross_entropy_grad for {case}: the gradient contains inf or nan. exp overflows for scores "
             f"in the hundreds: subtract each row's maximum before exp (your log_softmax already does), which "
             f"changes no probability.")
    mistakes = [("every entry is N times too large: the loss is the *mean* over the N images, so each image's "
                 "gradient is divided by N.", probs - one_hot),
                ("the sign is wrong: the loss falls when the correct class's score rises, so the gradient at "
                 "the target is negative (softmax - 1).", (one_hot - probs) / n),
                ("this is softmax / N alone: the loss also has the term -s_target, whose derivative "
                 "subtracts 1 at each image's target (softmax - one_hot).", probs / n),
                ("softmax is taken over the images (dim 0) instead of the classes (dim=-1).",
                 (F.softmax(scores, dim=0) - one_hot) / n)]
    compare("cross_entropy_grad", got, expected, case=case, mistakes=mistakes, rtol=1e-4, atol=1e-6)
    if got.dtype != scores.dtype:
        fail(f"cross_entropy_grad for {case}: the scores are {scores.dtype} but the gradient is {got.dtype}; "
             f"keep the dtype.")


def _ce_tensor(got, case):
    if not isinstance(got, torch.Tensor):
        fail(f"cross_entropy_grad for {case}: return a tensor shaped like the scores, one partial derivative per "
             f"score, not {type(got).__name__}.")
    return got.detach()


def cross_entropy_grad(fn):
    g = generator(13)
    scores, target = randn(g, 4, 10), torch.tensor([3, 0, 9, 3])
    with references_in_place(fn, log_softmax=reference.log_softmax):
        _outputs_differ("cross_entropy_grad", fn, [(scores, target), (scores * 2 + 1, (target + 1) % 10)],
                        CE_GRAD_HINT)
    _check_ce_grad(fn, scores, target, "4 images and 10 classes")
    _check_ce_grad(fn, torch.tensor([[-8.0, 0.0, 4.0], [2.0, 1.0, 0.0]]), torch.tensor([0, 0]),
                   "a confident wrong answer and a fair right one")
    passed("cross_entropy_grad", 2)


def cross_entropy_grad_hidden(fn, seed):
    g = generator(seed)
    with references_in_place(fn, log_softmax=reference.log_softmax):
        _outputs_differ("cross_entropy_grad", fn, [(randn(g, 3, 5), _targets(g, 3, 5)) for _ in range(2)],
                        CE_GRAD_HINT)
    for n, c, dtype, scale in [(1, 10, torch.float32, 1.0), (64, 10, torch.float32, 3.0), (7, 3, torch.float64, 1.0),
                               (5, 12, torch.float32, 300.0), (6, 6, torch.float32, 1.0), (2, 2, torch.float64, 20.0)]:
        scores = randn(g, n, c, dtype=dtype, scale=scale)
        _check_ce_grad(fn, scores, _targets(g, n, c), f"{n} images, {c} classes, {str(dtype)[6:]} scores of "
                                                      f"scale {scale:g}")
    passed_hidden("cross_entropy_grad")


# ---------------------------------------------------------------- accuracy


def _check_accuracy(fn, out, yb, case):
    expected = float(reference.accuracy(out, yb))
    got = call("accuracy", fn, out.clone(), yb.clone(), hint=ACCURACY_HINT)
    got = as_number("accuracy", got, "the accuracy")
    if math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6):
        return
    wrong = {
        "argmax over dim 0 picks, for each class, the image with the highest score. The prediction for "
        "each image is the argmax over the classes: dim=1.":
            float((torch.argmax(out, dim=0) == yb).float().mean()) if out.shape[0] == out.shape[1] else None,
        "it is a percentage: return a fraction between 0 and 1.": expected * 100,
        "it counts the correct predictions: divide by the number of images (use .mean()).":
            expected * len(yb),
    }
    for description, value in wrong.items():
        if value is not None and math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-6) \
                and not math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-6):
            fail(f"accuracy for {case}: {description}")
    fail(f"accuracy for {case}: got {got:.4g}, expected {expected:.4g} (the fraction of images whose "
         f"highest score is at their label).")


def _lesson_scores():
    """Ten images, ten classes: 7 predicted right (scores chosen so that argmax over the wrong
    dimension gives a different answer); then 6 images, 4 classes."""
    g = generator(11)
    out = randn(g, 10, 10)
    yb = out.argmax(dim=1).clone()
    yb[:3] = (yb[:3] + 1) % 10
    out2 = randn(g, 6, 4)
    yb2 = torch.tensor([0, 1, 2, 3, 0, 1])
    return (out, yb), (out2, yb2)


def accuracy(fn):
    first, second = _lesson_scores()
    _outputs_differ("accuracy", fn, [first, (first[0], (first[1] + 1) % 10)], ACCURACY_HINT,
                    convert=lambda value: torch.as_tensor(as_number("accuracy", value, "the accuracy")))
    _check_accuracy(fn, *first, "10 images and 10 classes, 7 right")
    _check_accuracy(fn, *second, "6 images and 4 classes")
    passed("accuracy", 2)


def accuracy_hidden(fn, seed):
    g = generator(seed)
    for n, c in [(12, 12), (64, 10), (5, 3), (1, 10), (100, 10)]:
        out = randn(g, n, c)
        yb = _targets(g, n, c)
        keep = torch.rand(n, generator=g) < 0.6
        yb[keep] = out.argmax(dim=1)[keep]
        _check_accuracy(fn, out, yb, f"{n} random images and {c} classes")
    passed_hidden("accuracy")


# ---------------------------------------------------------------- loss_batch


def _small_model(seed, n_in=6, n_classes=3, hidden=0, dtype=torch.float32):
    """A linear model (or two layers, with ``hidden`` units) built with the random state set to ``seed``: the same
    model in the student's kernel (built there by ``observe``) as here."""
    def make():
        if hidden:
            return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        return nn.Linear(n_in, n_classes)

    return seeded(seed, make).to(dtype)


def _small_problem(seed, n_in=6, n_classes=3, n=40, hidden=0, dtype=torch.float32):
    g = generator(seed)
    x = randn(g, n, n_in, dtype=dtype)
    y = _targets(g, n, n_classes)
    return functools.partial(_small_model, seed, n_in, n_classes, hidden, dtype), x, y


# What a check may build in the student's kernel with ``observe`` (and, from the same arguments, here), or read
# there: these only report, the check judges.

def _optimiser(make_opt, model):
    """``make_opt`` (an optimiser class with its settings, a ``functools.partial``) over ``model``'s parameters."""
    return make_opt(model.parameters())


def _parameters(model) -> torch.Tensor:
    return params_vector(model)


def _gradients(model) -> list:
    """The parameters' gradients (None where there is none), which are then cleared."""
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


LOSS_ONLY_HINT = ("with opt=None, only compute the loss: no backward() and no step (validation calls loss_batch "
                  "under torch.no_grad()).")


def _validation_batch(fn, model, loss_func, xb, yb):
    """``loss_batch`` without an optimiser, under ``torch.no_grad()`` as in validation (where a backward() raises
    "does not require grad": the hint, not the toolbox's advice for that error, says why)."""
    name = "loss_batch"
    with torch.no_grad():
        return call(name, fn, model, loss_func, xb, yb,
                    explain=lambda e: f"{name} raised {type(e).__name__}: {e}\nHint: {LOSS_ONLY_HINT}")


def _check_loss_batch(fn, make_model, loss_func, batches, make_opt, case):
    """``make_model`` and ``make_opt`` (``functools.partial``s) build the student's model and optimiser in the kernel
    and the reference's here, from the same seed; the loss, the parameters and the gradients come back as data."""
    name = "loss_batch"
    model, stepped = observe(make_model), make_model()
    # 1. without an optimiser: only the loss, under torch.no_grad() as in validation
    before = observe(_parameters, model)
    xb, yb = batches[0]
    loss, count = _loss_and_count(observe(_validation_batch, fn, model, loss_func, xb, yb), case)
    with torch.no_grad():
        expected = loss_func(stepped(xb), yb).item()
    if not math.isclose(loss, expected, rel_tol=1e-5, abs_tol=1e-6):
        fail(f"{name} for {case}, without an optimiser: returned loss {loss:.6g}, but "
             f"loss_func(model(xb), yb) is {expected:.6g}. Use the loss_func you are given.")
    if count != len(xb):
        fail(f"{name} for {case}: the second value should be the batch size len(xb) = {len(xb)}, got {count}.")
    if not close(observe(_parameters, model), before, 0, 0):
        fail(f"{name} for {case}: without an optimiser (opt=None) the parameters changed. "
             f"Only a training batch, with an optimiser, takes a step.")
    # 2. without an optimiser but with gradients on: no backward either
    call(name, fn, model, loss_func, xb, yb)
    if any(g is not None and bool(g.abs().sum() > 0) for g in observe(_gradients, model)):
        fail(f"{name} for {case}: with opt=None it computed gradients. Call backward(), step() and "
             f"zero_grad() only when an optimiser is given.")
    # 3. with an optimiser, twice: compare with the reference, step by step
    ref_opt = make_opt(stepped.parameters())
    opt = observe(_optimiser, make_opt, model)
    accumulating = make_model()
    acc_opt = make_opt(accumulating.parameters())
    for k, (xb, yb) in enumerate(batches, start=1):
        with torch.no_grad():
            expected_loss = loss_func(stepped(xb), yb).item()
        result = call(name, fn, model, loss_func, xb, yb, opt)
        loss, count = _loss_and_count(result, case)
        reference.loss_batch(stepped, loss_func, xb, yb, ref_opt)
        # the same steps, but never zeroing the gradients
        loss_func(accumulating(xb), yb).backward()
        acc_opt.step()
        if not math.isclose(loss, expected_loss, rel_tol=1e-5, abs_tol=1e-6):
            fail(f"{name} for {case}, call {k} with an optimiser: returned loss {loss:.6g}, expected "
                 f"{expected_loss:.6g}: the loss of this batch before the step, from the loss_func you are given.")
        if count != len(xb):
            fail(f"{name} for {case}: the second value should be the batch size len(xb) = {len(xb)}, got {count}.")
        now = observe(_parameters, model)
        if close(now, params_vector(stepped), 1e-5, 1e-6):
            continue
        if k > 1 and close(now, params_vector(accumulating), 1e-5, 1e-6):
            fail(f"{name} for {case}: the first call was right, but the second moved the parameters by "
                 f"the sum of both batches' gradients. backward() adds to .grad: zero the gradients after "
                 f"each step (opt.zero_grad()), or before each backward().")
        if k == 1 and close(now, before, 0, 0):
            fail(f"{name} for {case}: with an optimiser, the parameters did not change. Call "
                 f"loss.backward() and then opt.step().")
        fail(f"{name} for {case}, call {k} with an optimiser: the parameters after the call are not one "
             f"step of the optimiser on this batch's loss (backward(), step(), zero_grad()).")


def _loss_and_count(result, case):
    if not isinstance(result, tuple | list) or len(result) != 2:
        fail(f"loss_batch for {case}: return two values, (loss.item(), len(xb)), got {result!r:.80}.")
    loss, count = result
    if isinstance(loss, torch.Tensor):
        fail(f"loss_batch for {case}: return the loss as a plain number, loss.item(), not a tensor: a "
             f"tensor keeps its whole graph alive, and fit only needs the value.")
    return as_number("loss_batch", loss, "the loss"), int(as_number("loss_batch", count, "the batch size"))


def loss_batch(fn):
    make_model, x, y = _small_problem(1)
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32])]
    _check_loss_batch(fn, make_model, F.cross_entropy, batches, functools.partial(optim.SGD, lr=0.5),
                      "nn.Linear(6, 3), SGD and two batches of 16")
    passed("loss_batch", 3)


def loss_batch_hidden(fn, seed):
    smoothed = functools.partial(F.cross_entropy, label_smoothing=0.1)   # a partial of torch's crosses to the kernel
    make_model, x, y = _small_problem(seed, n_in=5, n_classes=4, n=50, hidden=8)
    batches = [(x[:20], y[:20]), (x[20:40], y[20:40]), (x[40:], y[40:])]
    _check_loss_batch(fn, make_model, smoothed, batches, functools.partial(optim.SGD, lr=0.3, momentum=0.9),
                      "a two-layer model, SGD with momentum, a label-smoothing loss and batches of 20, 20, 10")
    make_model, x, y = _small_problem(seed + 1, n_in=4, n_classes=3, n=24, dtype=torch.float64)
    _check_loss_batch(fn, make_model, F.cross_entropy, [(x[:12], y[:12]), (x[12:], y[12:])],
                      functools.partial(optim.Adam, lr=0.05), "a float64 model and Adam")
    passed_hidden("loss_batch")


# ---------------------------------------------------------------- train_epoch


TRAIN_EPOCH_HINT = ("train_epoch(model, loss_func, opt, train_dl): model.train(), then loss_batch(model, loss_func, "
                    "xb, yb, opt) on every batch; return the mean loss over the images, as a plain number.")


def _dropout_net_for(n_in, n_classes, dtype):
    return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, n_classes)).to(dtype)


def _probed_train_epoch(fn, seed, n_in, n_classes, dtype, make_opt, loss_func, train_dl):
    """``fn`` (the student's train_epoch, or None for the reference's steps, batch by batch) on a network with
    dropout that starts in eval mode, watched by a ``Probe``, with the random state set to ``seed``: what it
    returned, the mode of every forward pass, the losses and sizes of the batches (reference only) and the trained
    weights (``observe``: the model trains beside the student's code)."""
    def run():
        probe = Probe(_dropout_net_for(n_in, n_classes, dtype)).eval()
        opt = make_opt(probe.parameters())
        if fn is None:
            probe.train()
            result = [reference.loss_batch(probe, loss_func, xb, yb, opt) for xb, yb in train_dl]
        else:
            with references_in_place(fn, loss_batch=reference.loss_batch):
                result = call("train_epoch", fn, probe, loss_func, opt, train_dl, hint=TRAIN_EPOCH_HINT)
        return {"result": result, "modes": [c.training for c in probe.calls], "state": dict(probe.net.state_dict())}

    return seeded(seed, run)


def _check_train_epoch(fn, seed, loaders, n_in, n_classes, make_opt, loss_func, case, dtype=torch.float32):
    name = "train_epoch"
    train_dl, _ = loaders()
    train_remote, _ = observe(loaders)
    seen = observe(_probed_train_epoch, fn, seed, n_in, n_classes, dtype, make_opt, loss_func, train_remote)
    ref = _probed_train_epoch(None, seed, n_in, n_classes, dtype, make_opt, loss_func, train_dl)
    got = seen["result"]
    if isinstance(got, torch.Tensor):
        fail(f"{name} for {case}: return the epoch's loss as a plain number (float), not a tensor: a number is "
             f"what the history stores and prints, and it keeps no graph alive.")
    if got is None:
        fail(f"{name} for {case}: it returned None. Return the epoch's training loss. Did you forget the return?")
    got = as_number(name, got, "the epoch's loss")
    if not all(seen["modes"]):
        fail(f"{name} for {case} (a model with dropout, handed over in eval mode): some training batches ran in "
             f"eval mode, with dropout off. Call model.train() before training: fit switches the model to eval "
             f"mode to validate, so the next epoch must switch it back.")
    net = _load(_dropout_net_for(n_in, n_classes, dtype), seen["state"], f"{name} for {case}")
    if not close(params_vector(net), params_vector(_load(_dropout_net_for(n_in, n_classes, dtype), ref["state"],
                                                         "reference")), 1e-4, 1e-5):
        fail(f"{name} for {case}: after the epoch the parameters are not those of one loss_batch(model, loss_func, "
             f"xb, yb, opt) step on each batch of train_dl, in order. Train with the model, loss_func, opt and "
             f"train_dl you are given (not the notebook's), once over every batch.")
    losses, counts = zip(*ref["result"])
    expected = sum(loss * n for loss, n in zip(losses, counts)) / sum(counts)
    if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
        return
    wrong = [("it is the plain mean of the batch losses: the last batch is smaller, so weight each batch by its size "
              "(sum of loss * n, divided by the number of images).", sum(losses) / len(losses)),
             ("it is the sum of the batch losses: divide by the number of images.", sum(losses)),
             ("it is the sum of loss * n: divide by the number of images.", sum(l * n for l, n in zip(losses, counts))),
             ("it is the last batch's loss: return the mean over the whole epoch.", losses[-1])]
    for description, value in wrong:
        if math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6):
            fail(f"{name} for {case}: returned {got:.6g}, expected {expected:.6g}: {description}")
    fail(f"{name} for {case}: returned {got:.6g}, expected {expected:.6g}, the mean over the epoch's images of the "
         f"losses loss_batch returned (each the loss before its step).")


def train_epoch(fn):
    loaders = functools.partial(_loaders, 3, 44, 8, 8, 16)   # 5 batches of 8 and one of 4
    _check_train_epoch(fn, 3, loaders, 6, 3, functools.partial(optim.SGD, lr=0.3), F.cross_entropy,
                       "a network with dropout, SGD, batches of 8 and a last one of 4")
    passed("train_epoch", 4)


def train_epoch_hidden(fn, seed):
    smoothed = functools.partial(F.cross_entropy, label_smoothing=0.1)
    loaders = functools.partial(_loaders, seed, 37, 5, 6, 12, n_in=5, n_classes=4)
    _check_train_epoch(fn, seed, loaders, 5, 4, functools.partial(optim.SGD, lr=0.2, momentum=0.9), smoothed,
                       "SGD with momentum, a label-smoothing loss, batches of 6 and a last one of 1")
    loaders = functools.partial(_loaders, seed + 1, 30, 5, 10, 20, dtype=torch.float64)
    _check_train_epoch(fn, seed + 1, loaders, 6, 3, functools.partial(optim.Adam, lr=0.01), F.cross_entropy,
                       "float64, Adam, three equal batches", dtype=torch.float64)
    passed_hidden("train_epoch")


# ---------------------------------------------------------------- fit


def _loaders(seed, n_train, n_valid, bs, vbs, n_in=6, n_classes=3, dtype=torch.float32):
    g = generator(seed)
    x = randn(g, n_train + n_valid, n_in, dtype=dtype)
    w = randn(g, n_in, n_classes, dtype=dtype)
    y = (x @ w + 0.5 * randn(g, n_train + n_valid, n_classes, dtype=dtype)).argmax(dim=1)
    train = TensorDataset(x[:n_train], y[:n_train])
    valid = TensorDataset(x[n_train:], y[n_train:])
    return DataLoader(train, batch_size=bs), DataLoader(valid, batch_size=vbs)


def _run_fit(fn, epochs, model, loss_func, opt, train_dl, valid_dl):
    with references_in_place(fn, loss_batch=reference.loss_batch, accuracy=reference.accuracy,
                             train_epoch=reference.train_epoch):
        return call("fit", fn, epochs, model, loss_func, opt, train_dl, valid_dl,
                    hint="fit(epochs, model, loss_func, opt, train_dl, valid_dl) trains with "
                         "loss_batch(model, loss_func, xb, yb, opt) on every training batch, then "
                         "evaluates on valid_dl.")


def _history(history, epochs, case):
    if not isinstance(history, list | tuple):
        fail(f"fit for {case}: return the history, a list with one dict per epoch, not "
             f"{type(history).__name__}." + (" Did you forget the return?" if history is None else ""))
    if len(history) != epochs:
        fail(f"fit for {case}: {epochs} epochs should give a history of {epochs} entries, got {len(history)}.")
    rows = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or any(k not in entry for k in HISTORY_KEYS):
            fail(f"fit for {case}: each history entry should be a dict with the keys "
                 f"{', '.join(repr(k) for k in HISTORY_KEYS)}; entry {i} is {entry!r:.120}.")
        for k in HISTORY_KEYS:
            if isinstance(entry[k], torch.Tensor):
                fail(f"fit for {case}: history[{i}][{k!r}] is a tensor; the history holds plain numbers (float(...) "
                     f"or .item()), which print, plot and save as they are and keep no graph or device memory.")
        rows.append({k: as_number("fit", entry[k], f"history[{i}][{k!r}]") for k in HISTORY_KEYS})
    return rows


def _compare_history(got, expected, case, unweighted=None):
    for i, (row, ref) in enumerate(zip(got, expected)):
        for key in HISTORY_KEYS:
            if math.isclose(row[key], ref[key], rel_tol=1e-4, abs_tol=1e-6):
                continue
            where = f"fit for {case}, epoch {i + 1}: {key} is {row[key]:.6g}, expected {ref[key]:.6g}."
            if key == "valid_accuracy" and math.isclose(row[key], ref[key] * 100, rel_tol=1e-4):
                fail(f"{where} It is a percentage: report a fraction between 0 and 1.")
            if unweighted and math.isclose(row[key], unweighted[i][key], rel_tol=1e-4, abs_tol=1e-6):
                fail(f"{where} It looks like the plain mean of the batch values: the last batch is smaller, "
                     f"so weight each batch by its size (sum of loss * n, divided by the number of images).")
            meaning = {
                "train_loss": "the mean of the losses loss_batch returned for this epoch's training batches",
                "valid_loss": "the mean loss over every validation image, after this epoch's training",
                "valid_accuracy": "the fraction of validation images predicted right, after this epoch's training",
            }[key]
            fail(f"{where} It should be {meaning} (weighted by batch size).")


def _unweighted_fit(epochs, model, loss_func, opt, train_dl, valid_dl):
    history = []
    for _ in range(epochs):
        model.train()
        train = [reference.loss_batch(model, loss_func, xb, yb, opt)[0] for xb, yb in train_dl]
        model.eval()
        with torch.no_grad():
            valid = [reference.loss_batch(model, loss_func, xb, yb)[0] for xb, yb in valid_dl]
            accs = [float(reference.accuracy(model(xb), yb)) for xb, yb in valid_dl]
        history.append({"train_loss": sum(train) / len(train), "valid_loss": sum(valid) / len(valid),
                        "valid_accuracy": sum(accs) / len(accs)})
    return history


def _check_fit_trajectory(fn, epochs, make_model, make_opt, loss_func, loaders, case):
    """The student's fit and the reference fit, from the same start: same parameters after, same
    history. ``make_model``, ``make_opt`` and ``loaders`` (``functools.partial``s) build the student's in the kernel
    and the reference's here."""
    train_dl, valid_dl = loaders()
    model = observe(make_model)
    opt = observe(_optimiser, make_opt, model)
    history = _history(_run_fit(fn, epochs, model, loss_func, opt, *observe(loaders)), epochs, case)
    trained = observe(_parameters, model)
    fitted, unweighted = make_model(), make_model()
    expected = reference.fit(epochs, fitted, loss_func, make_opt(fitted.parameters()), train_dl, valid_dl)
    plain = _unweighted_fit(epochs, unweighted, loss_func, make_opt(unweighted.parameters()), train_dl, valid_dl)
    if not close(trained, params_vector(fitted), 1e-4, 1e-5):
        # the same training, plus steps on the validation batches?
        leaky = make_model()
        leaky_opt = make_opt(leaky.parameters())
        for _ in range(epochs):
            for xb, yb in list(train_dl) + list(valid_dl):
                reference.loss_batch(leaky, loss_func, xb, yb, leaky_opt)
        if close(trained, params_vector(leaky), 1e-4, 1e-5):
            fail(f"fit for {case}: the model also trained on the validation batches. Call loss_batch "
                 f"without the optimiser for validation: loss_batch(model, loss_func, xb, yb).")
        fail(f"fit for {case}: after fit the parameters are not those of {epochs} epochs of "
             f"loss_batch(model, loss_func, xb, yb, opt) over every batch of train_dl.")
    _compare_history(history, expected, case, plain)


def _dropout_net():
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


def _probed_fit(fn, epochs, seed, train_dl, valid_dl):
    """The student's fit on a model with dropout, watched by a ``Probe``, with the random state set to ``seed``: what
    fit returned, the input's batch size and the mode of every forward pass, and the trained weights (``observe``:
    the model is trained beside the student's code, its loss measured here)."""
    def run():
        probe = Probe(_dropout_net())
        return probe, _run_fit(fn, epochs, probe, F.cross_entropy, optim.SGD(probe.parameters(), lr=0.2),
                               train_dl, valid_dl)

    probe, history = seeded(seed, run)
    return {"history": history, "calls": [(c.shape[0], c.training) for c in probe.calls],
            "state": dict(probe.net.state_dict())}


def _load(model, state, what):
    """``model`` with the weights ``state`` the student's kernel reported; a failed check if they do not fit it."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError):
        fail(f"{what}: the model's parameters no longer fit its layers. Train the model you are given, in place, "
             f"without changing its layers.")
    return model


def _check_fit_modes(fn, epochs, case, seed):
    """A model with dropout: training must run in train mode and validation in eval mode, and the
    reported validation loss must be the eval-mode loss."""
    bs, vbs = 8, 16
    loaders = functools.partial(_loaders, seed, 40, 36, bs, vbs)
    train_dl, valid_dl = loaders()
    seen = observe(_probed_fit, fn, epochs, seed, *observe(loaders))
    history = _history(seen["history"], epochs, case)
    train_sizes = [len(xb) for xb, _ in train_dl]
    valid_modes = [training for size, training in seen["calls"] if size not in train_sizes]
    train_modes = [training for size, training in seen["calls"] if size in train_sizes]
    if any(valid_modes):
        fail(f"fit for {case} (a model with dropout): the validation batches ran in training mode, so "
             f"dropout was still switching units off. Call model.eval() before the validation loop.")
    if not all(train_modes):
        fail(f"fit for {case} (a model with dropout): after the first epoch, training ran in eval mode. "
             f"Call model.train() at the start of every epoch's training, not once before the loop.")
    net = _load(_dropout_net(), seen["state"], f"fit for {case}").eval()
    with torch.no_grad():
        losses = [(float(F.cross_entropy(net(xb), yb)), len(xb)) for xb, yb in valid_dl]
    expected = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    if not math.isclose(history[-1]["valid_loss"], expected, rel_tol=1e-4, abs_tol=1e-6):
        fail(f"fit for {case} (a model with dropout): the last valid_loss is {history[-1]['valid_loss']:.6g}, "
             f"but the trained model in eval mode gives {expected:.6g} on the validation set. Did you call "
             f"model.eval() before validating?")


def fit(fn):
    loaders = functools.partial(_loaders, 2, 44, 30, 8, 16)   # 5 batches of 8 and one of 4; validation: 16 and 14
    _check_fit_trajectory(fn, 3, functools.partial(_small_model, 2), functools.partial(optim.SGD, lr=0.3),
                          F.cross_entropy, loaders, "nn.Linear(6, 3), 3 epochs")
    _check_fit_modes(fn, 2, "2 epochs", seed=4)
    passed("fit", 2)


def fit_hidden(fn, seed):
    smoothed = functools.partial(F.cross_entropy, label_smoothing=0.05)   # a partial of torch's crosses to the kernel
    loaders = functools.partial(_loaders, seed, 50, 23, 10, 20, n_in=5, n_classes=4)
    _check_fit_trajectory(fn, 1, functools.partial(_small_model, seed, 5, 4), functools.partial(optim.SGD, lr=0.2),
                          smoothed, loaders, "one epoch and a label-smoothing loss")
    loaders = functools.partial(_loaders, seed + 1, 30, 17, 7, 14, dtype=torch.float64)
    _check_fit_trajectory(fn, 2, functools.partial(_small_model, seed + 1, dtype=torch.float64),
                          functools.partial(optim.SGD, lr=0.1, momentum=0.9), F.cross_entropy,
                          loaders, "float64, SGD with momentum, 2 epochs")
    _check_fit_modes(fn, 3, "3 epochs", seed=seed + 2)
    passed_hidden("fit")


# ---------------------------------------------------------------- choose_epochs


def _history_of(valid_losses, seed):
    """A history whose validation losses are ``valid_losses``; the training loss falls every epoch and the accuracy
    peaks elsewhere than the validation loss bottoms out, so that the wrong columns give other answers."""
    g = generator(seed)
    n = len(valid_losses)
    train = sorted((float(v) for v in 0.2 + 2 * rand(g, n)), reverse=True)
    if n >= 3:   # the training loss may tick up at the end: its lowest is then not simply the last epoch
        train[-1], train[-2] = train[-2], train[-1]
    best = min(range(n), key=lambda i: valid_losses[i])
    accs = [0.8 - 0.01 * i for i in range(n)]   # the accuracy peaks at the first epoch
    if n > 1 and best != 0:
        accs[best] = 0.7
    return [{"train_loss": t, "valid_loss": float(v), "valid_accuracy": a}
            for t, v, a in zip(train, valid_losses, accs)]


CHOOSE_HINT = "choose_epochs(history): the epoch, counted from 1, whose valid_loss is the lowest."


def _check_choose(fn, history, case):
    got = call("choose_epochs", fn, [dict(entry) for entry in history], hint=CHOOSE_HINT)
    expected = reference.choose_epochs(history)
    if isinstance(got, torch.Tensor) or isinstance(got, bool) or not isinstance(got, int):
        fail(f"choose_epochs for {case}: return a plain int, the number of epochs to train (got "
             f"{type(got).__name__} {got!r:.40}). int(...) turns a tensor or a float into one.")
    if got == expected:
        return
    valid = [e["valid_loss"] for e in history]
    n = len(history)
    wrong = [(n - 1 - valid[::-1].index(min(valid)) + 1,
              "among equal validation losses it picks the latest: pick the earliest (fewer epochs, same loss)."),
             (expected - 1, "it is the position of the best epoch in the list, counted from 0: epochs are counted "
                            "from 1, so the first epoch's loss is after 1 epoch of training."),
             (n, "it is the last epoch, whatever the curve: stop where the validation loss was lowest."),
             (min(range(n), key=lambda i: history[i]["train_loss"]) + 1,
              "it follows the training loss, which keeps falling while the model memorises its training images: "
              "choose on the validation loss."),
             (max(range(n), key=lambda i: valid[i]) + 1, "it picks the highest validation loss: pick the lowest."),
             (max(range(n), key=lambda i: history[i]["valid_accuracy"]) + 1,
              "it follows the validation accuracy; this exercise chooses on the validation loss, which moves "
              "with every image's confidence, not only with the ones that cross the decision line.")]
    for value, description in wrong:
        if got == value and value != expected:
            fail(f"choose_epochs for {case}: returned {got}, expected {expected}: {description}")
    fail(f"choose_epochs for {case}: returned {got}, expected {expected}, the epoch (counted from 1) with the "
         f"lowest validation loss.")


def choose_epochs(fn):
    _check_choose(fn, _history_of([0.9, 0.6, 0.45, 0.41, 0.43, 0.47], 1), "a validation loss that bottoms out at "
                                                                           "epoch 4, then rises")
    _check_choose(fn, _history_of([0.5, 0.7, 0.8], 2), "a validation loss that only rises")
    passed("choose_epochs", 2)


def choose_epochs_hidden(fn, seed):
    g = generator(seed)
    _check_choose(fn, _history_of([0.3], seed), "one epoch")
    _check_choose(fn, _history_of([0.9, 0.4, 0.4, 0.5, 0.6, 0.7], seed), "a tie between epochs 2 and 3")
    for _ in range(4):
        n = int(torch.randint(2, 15, (1,), generator=g))
        valid = [round(float(v), 4) for v in 0.3 + rand(g, n)]
        _check_choose(fn, _history_of(valid, seed), f"a random history of {n} epochs")
    passed_hidden("choose_epochs")


# ---------------------------------------------------------------- get_data


def _order(loader, name, case):
    """Labels in the order the loader gives them, and the batch sizes."""
    labels, sizes = [], []
    batches = call(f"iterating the {name} loader", list, loader,
                   explain=lambda e: f"get_data for {case}: iterating the {name} loader raised "
                                     f"{type(e).__name__}: {e}")
    for batch in batches:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            fail(f"get_data for {case}: each batch of the {name} loader should be (xb, yb).")
        labels += batch[1].tolist()
        sizes.append(len(batch[1]))
    return labels, sizes


def _loader_orders(fn, n_train, n_valid, bs, case):
    """``get_data`` on datasets whose labels are the images' indices, with the random state set: the training
    loader's labels in two epochs and its batch sizes, the validation loader's labels and batch sizes
    (``observe``: the loaders stay beside the student's code, the orders are judged here)."""
    train_ds = TensorDataset(torch.arange(n_train, dtype=torch.float32)[:, None], torch.arange(n_train))
    valid_ds = TensorDataset(torch.arange(n_valid, dtype=torch.float32)[:, None], torch.arange(n_valid))

    def run():
        result = call("get_data", fn, train_ds, valid_ds, bs,
                      hint="return (DataLoader(train_ds, ...), DataLoader(valid_ds, ...)).")
        if not isinstance(result, tuple | list) or len(result) != 2:
            fail(f"get_data for {case}: return two loaders, (train_dl, valid_dl).")
        train_dl, valid_dl = result
        first, train_sizes = _order(train_dl, "training", case)
        second, _ = _order(train_dl, "training", case)       # a second epoch: is it shuffled again?
        valid, valid_sizes = _order(valid_dl, "validation", case)
        return first, train_sizes, second, valid, valid_sizes

    return seeded(n_train + bs, run)


def _check_get_data(fn, n_train, n_valid, bs, case):
    first, train_sizes, second, valid, valid_sizes = observe(_loader_orders, fn, n_train, n_valid, bs, case)
    if sorted(first) == list(range(n_valid)) and sorted(valid) == list(range(n_train)):
        fail(f"get_data for {case}: the loaders are swapped: return (train_dl, valid_dl), in that order.")
    if sorted(first) != list(range(n_train)):
        fail(f"get_data for {case}: one epoch of the training loader should give every training image once "
             f"(no drop_last); it gave {len(first)} of {n_train}.")
    if sorted(valid) != list(range(n_valid)):
        fail(f"get_data for {case}: one pass over the validation loader should give every validation image "
             f"once; it gave {len(valid)} of {n_valid}.")
    if train_sizes[0] != bs:
        fail(f"get_data for {case}: the training batches should hold bs = {bs} images, not {train_sizes[0]}.")
    if valid_sizes[0] != 2 * bs:
        fail(f"get_data for {case}: the validation batches hold {valid_sizes[0]} images; use twice the "
             f"training batch size, bs * 2 = {2 * bs}. Validation stores no gradients, so twice as many "
             f"images fit in memory, and fewer, larger batches go faster.")
    if valid != list(range(n_valid)):
        fail(f"get_data for {case}: the validation loader shuffles. The validation loss is a mean over "
             f"the whole set, so the order changes nothing; shuffling only costs time. Leave it in order.")
    if first == list(range(n_train)):
        fail(f"get_data for {case}: the training loader does not shuffle: pass shuffle=True, so that the "
             f"batches are different in every epoch.")
    if first == second:
        fail(f"get_data for {case}: the training loader gives the same order in every epoch: let the "
             f"DataLoader shuffle (shuffle=True) instead of shuffling once.")


def get_data(fn):
    _check_get_data(fn, 100, 45, 10, "100 training and 45 validation images, bs = 10")
    passed("get_data", 1)


def get_data_hidden(fn, seed):
    g = generator(seed)
    for _ in range(3):
        bs = int(torch.randint(3, 17, (1,), generator=g))
        n_train = int(torch.randint(5 * bs, 9 * bs, (1,), generator=g))
        n_valid = int(torch.randint(3 * bs, 5 * bs, (1,), generator=g))
        _check_get_data(fn, n_train, n_valid, bs, f"{n_train} and {n_valid} images, bs = {bs}")
    passed_hidden("get_data")


# ---------------------------------------------------------------- the trained model

# The validation accuracy a trained model must reach. Training and validation images are both carved from MNIST's
# training split (``data.split_validation``: seeded, stratified, one sixth for validation), as in the lesson: the
# test split is for the lesson's one final measurement, never for a check. Measured on the bundled sample, seeds
# 0-5: logistic regression after one epoch (bs 50, lr 0.1) on 6,667 training images, validated on 1,333 (the
# visible check) 0.840-0.867; on 2,500, validated on 500 (the same while graded) 0.721-0.820; the hidden check's MLP
# after two epochs (bs 32, lr 0.1) on 2,500, validated on 500, 0.834-0.864. Untrained, the same models get
# 0.057-0.174 (chance is 0.10); the mutants that never train the model they are given are untrained. The
# threshold sits between the two; the weights check below is what tells a right training from a near miss.
THRESHOLD = 0.6


def _mnist_datasets(n_images: int):
    """The first ``n_images`` of MNIST's training split, flattened to 784 floats in [0, 1] and split as the lesson
    splits them: (train_ds, valid_ds), one sixth for validation. Only the images used are converted (Binder's
    memory is small)."""
    from ..data import split_validation

    x_train, y_train, x_valid, y_valid = split_validation(*mnist("train", stop=n_images, shape=(784,)))
    return TensorDataset(x_train, y_train), TensorDataset(x_valid, y_valid)


def _valid_accuracy(model, valid_ds) -> float:
    x, y = valid_ds.tensors
    model.eval()
    with torch.no_grad():
        return float(reference.accuracy(model(x), y))


TRAIN_MODEL_HINT = ("train_model(model, train_ds, valid_ds, epochs, bs, lr): the loaders from get_data, an optimiser "
                    "over model.parameters(), then fit.")
_REFERENCES = dict(get_data=reference.get_data, fit=reference.fit, loss_batch=reference.loss_batch,
                   train_epoch=reference.train_epoch, accuracy=reference.accuracy,
                   log_softmax=reference.log_softmax, nll=reference.nll)


def _trained_weights(fn, make_model, n_images, epochs, bs, lr, seed):
    """The student's ``train_model`` on ``make_model()``, with the reference helpers in place and the random state
    set to ``seed`` from the model's construction on (as ``train_and_measure`` sets it): what train_model returned,
    the size of every batch the model saw and the trained weights (``observe``: the model trains beside the
    student's code, it is measured here)."""
    train_ds, valid_ds = _mnist_datasets(n_images)

    def run():
        model = make_model()
        model.train()
        sizes = []
        hook = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
        with references_in_place(fn, **_REFERENCES):
            history = call("train_model", fn, model, train_ds, valid_ds, epochs, bs, lr, hint=TRAIN_MODEL_HINT)
        hook.remove()
        if isinstance(history, list | tuple):   # what the check reads of it: plain data
            history = [dict(entry) if isinstance(entry, dict) else entry for entry in history]
        return {"history": history, "sizes": sizes, "state": dict(model.state_dict())}

    return seeded(seed, run)


def _reference_weights(make_model, n_images, epochs, bs, lr, seed) -> torch.Tensor:
    """The weights the lesson's three lines give, from the same model, seed and data as the student's run."""
    train_ds, valid_ds = _mnist_datasets(n_images)

    def run():
        model = make_model()
        model.train()
        reference.train_model(model, train_ds, valid_ds, epochs, bs, lr)
        return params_vector(model)

    return seeded(seed, run)


def _check_trained(fn, make_model, n_images, epochs, bs, lr, seed, case):
    """``make_model`` (a function of this module, so that it can be named to the kernel) builds the same model, from
    the same seed, in the kernel, where the student's code trains it, and here, where it gets the trained weights and
    its validation accuracy is measured. Then what the statement asks beyond the accuracy: the history of ``epochs``
    entries, batches of ``bs`` and the weights of SGD at ``lr``: the arguments, never the notebook's values."""
    train_ds, valid_ds = _mnist_datasets(n_images)
    seen = {}

    def train(model):
        seen.update(observe(_trained_weights, fn, make_model, n_images, epochs, bs, lr, seed))
        _load(model, seen["state"], f"train_model for {case}")
        return seen["history"]

    run = train_then_check(
        seed=seed, make_model=make_model, train=train, accuracy=lambda model: _valid_accuracy(model, valid_ds),
        threshold=THRESHOLD,
        message=lambda run: f"train_model for {case}: after training, the model's validation accuracy is "
                            f"{run.accuracy:.3f}, below {THRESHOLD} (an untrained model gets {run.untrained:.3f}). "
                            f"Did you train the model you were given, with optim.SGD(model.parameters(), lr=lr), "
                            f"for the given epochs, with F.cross_entropy?")
    history = run.result
    if not isinstance(history, list | tuple) or len(history) != epochs:
        fail(f"train_model for {case}: return the history that fit returns, one entry per epoch: epochs = {epochs} "
             f"here, so {epochs} entries; got {history!r:.80}. Use the epochs you are given, not the notebook's.")
    if not all(isinstance(entry, dict) and all(k in entry for k in HISTORY_KEYS) for entry in history):
        fail(f"train_model for {case}: return fit's history as it is: one dict per epoch with the keys "
             f"{', '.join(HISTORY_KEYS)}.")
    per_epoch = math.ceil(len(train_ds) / bs)
    train_sizes = seen["sizes"][:per_epoch]
    if not train_sizes or train_sizes[0] != bs:
        fail(f"train_model for {case}: the training batches hold {train_sizes[0] if train_sizes else 'no'} images, "
             f"but bs = {bs} here. Pass the bs you are given to get_data, not the notebook's.")
    expected = _reference_weights(make_model, n_images, epochs, bs, lr, seed)
    if not close(params_vector(run.model), expected, 1e-3, 1e-5):
        fail(f"train_model for {case}: the model reaches the accuracy, but its weights are not those of "
             f"optim.SGD(model.parameters(), lr={lr:g}) (no momentum) with F.cross_entropy on get_data's batches: "
             f"use the lr you are given, not the notebook's or one of your own.")
    return run.accuracy


def _logistic():
    return nn.Sequential(nn.Linear(784, 10))


def trained_model(fn):
    """Train a fresh logistic-regression model with the student's ``train_model`` and the reference helpers; it must
    beat THRESHOLD, with the history, batches and weights its arguments ask for. 8,000 training images (all of the
    bundled sample) split as in the lesson; 3,000 while graded."""
    n_images, epochs = (3000 if env.grading() else 8000), 1
    acc = _check_trained(fn, _logistic, n_images, epochs, 50, 0.1, seed=0, case="a logistic-regression model, "
                                                                                "bs = 50, lr = 0.1")
    print(f"validation accuracy {acc:.3f} (threshold {THRESHOLD}).")
    passed("train_model", 4)


def _mlp():
    return nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))


def trained_model_hidden(fn, seed):
    _check_trained(fn, _mlp, 3000, 2, 32, 0.1, seed=seed, case="a small MLP with dropout, bs = 32, lr = 0.1")
    passed_hidden("train_model")
