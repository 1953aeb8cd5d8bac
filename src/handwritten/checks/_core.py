"""The one toolbox every lesson's checks stand on.

* **Calling student code**: ``call(name, fn, *args)`` is the one seam through which a check runs anything
  the student wrote (a function, a class, a method, a module's forward, a loader's ``__iter__``). It
  captures what the code prints, silences its progress bars, lets ``NotImplementedError`` (an unfinished
  exercise) through unchanged and turns any other error into a failed check that names the exercise.
* **Verdicts**: ``fail``; ``passed`` (a visible check's success line) and ``passed_hidden`` (a hidden one's).
* **Comparing**: ``compare`` (with named mistakes: a student's output equal to a known wrong answer gets that
  mistake's message), ``close``, ``as_tensor``, ``as_number``, ``dimension_hint``, ``not_hard_coded``.
* **Penalised once**: ``references_in_place`` puts the course's answers to earlier exercises where a later one
  looks them up.
* **Seeded inputs**: ``generator``, ``randn``, ``rand``, ``seeded``; ``as_float`` (the references' dtype rule).
* **Data and training**: ``mnist`` (the one loader of the MNIST images a check uses), ``Probe`` (a module that
  notes how it is called), ``train_then_check`` (the one train-then-check-the-accuracy check), with its two
  halves ``train_and_measure`` and ``require_accuracy``.

Checks raise ``AssertionError`` (nbgrader counts that as a failed test) and print only to stdout: anything
on stderr would zero the test cell.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..reference.dtypes import as_float
from . import _remote

__all__ = [
    "COMMON_ERRORS", "Probe", "Trained", "as_float", "as_number", "as_tensor", "call", "close", "compare", "cpu_clock",
    "dimension_hint", "fail", "generator", "in_student_code", "mnist", "not_hard_coded", "observe", "params_vector",
    "passed", "passed_hidden", "rand", "randn", "references_applied", "references_in_place", "require_accuracy", "run",
    "seeded", "train_and_measure", "train_then_check", "CountOps",
]

# Captured at import, before any student code runs, so that a notebook which reassigns
# ``torch.allclose`` does not change what the checks see.
_allclose = torch.allclose
_isfinite = torch.isfinite
_process_time, _perf_counter = time.process_time, time.perf_counter

# ---------------------------------------------------------------- verdicts


def fail(message: str):
    raise AssertionError(message)


def passed(what: str, n: int | None = None) -> None:
    """Say, on stdout, that the visible checks passed -- never that the hidden ones did."""
    count = f"{n} " if n else ""
    print(f"✓ {what}: {count}public checks passed. Hidden tests run when your work is graded.")


def passed_hidden(what: str) -> None:
    """A hidden check's success line (seen only in the graded notebook and its feedback)."""
    print(f"✓ {what}: hidden tests passed.")


# ---------------------------------------------------------------- calling student code

# What a PyTorch error means when a student's code raises it: the fragment of the message, the advice.
_NO_GRAD = ("A gradient is None where it is used: call loss.backward() before the step, and zero the "
            "gradients after the step, not between backward and step.")
COMMON_ERRORS = {
    "leaf Variable that requires grad is being used in an in-place operation":
        "Autograd refuses to record an in-place change of a tensor that requires grad. Update "
        "parameters inside `with torch.no_grad():` (or through `.data`, as in `p.data -= lr * p.grad`); "
        "elsewhere use the out-of-place version (`x.sigmoid()`, not `x.sigmoid_()`).",
    "could not infer output dtype":
        "A tensor of True/False has no mean: turn it into numbers first with `.float()`.",
    "does not require grad and does not have a grad_fn":
        "The loss is not connected to the parameters: compute it from them with torch operations, "
        "and do not call `.item()` or `.detach()` before `backward()`.",
    "unsupported operand type(s) for *: 'NoneType'": _NO_GRAD,
    "'NoneType' object has no attribute 'data'": _NO_GRAD,
}

_depth = 0  # how many calls into student code are under way (a student's code may call a check's, and back)


def in_student_code() -> bool:
    """Whether student code is running now, entered through ``call``."""
    return _depth > 0


def _quiet(progress):
    """``progress`` (tqdm, trange) with its bar switched off."""
    def silent(*args, **kwargs):
        kwargs["disable"] = True
        return progress(*args, **kwargs)
    return silent


def _progress_bars(fn) -> dict:
    """Silent stand-ins for the progress bars the module of ``fn`` uses by name."""
    namespace = _globals_of(fn)
    return {name: _quiet(namespace[name]) for name in ("tqdm", "trange")
            if callable(namespace.get(name)) and getattr(namespace[name], "__module__", "").startswith("tqdm")}


def _message(name: str, error: BaseException, hint: str, explain) -> str:
    if explain is not None:
        explained = explain(error)
        if explained:
            return explained
    text = f"{name} raised {type(error).__name__}: {error}"
    common = next((advice for fragment, advice in COMMON_ERRORS.items() if fragment in str(error)), "")
    return text + (f"\n{common}" if common else "") + (f"\nHint: {hint}" if hint else "")


def run(fn: Callable, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` as student code runs under a check, with no judgement: what it prints dropped,
    the progress bars of its module off. ``call`` wraps it; the kernel's agent runs it for the trusted side."""
    global _depth
    _depth += 1
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                references_in_place(fn, **_progress_bars(fn)):
            return fn(*args, **kwargs)
    finally:
        _depth -= 1


def call(name: str, fn: Callable, /, *args, hint: str = "", explain: Callable | None = None, **kwargs):
    """Run student code, ``fn(*args, **kwargs)``: the one way a check reaches what the student wrote.

    ``fn`` is the student's function, class (to construct it), method or object (a module to run, an optimiser's
    ``step``), or a builtin applied to a student's object (``call("len(loader)", len, loader)``). ``name`` says
    what runs, in the words of the exercise.

    - What the code prints, on stdout or stderr, is captured and dropped: on stderr (a warning, a progress bar)
      it would zero the test cell, and on stdout (a loop that prints every epoch) it would bury the check's
      message. Progress bars its module uses by name (``tqdm``, ``trange``) are switched off.
    - ``NotImplementedError`` passes through unchanged: the exercise is not done yet.
    - Any other exception, ``AssertionError`` included, becomes a failed check: "``name`` raised ...", with the
      advice for a common PyTorch error, and ``hint``. ``explain(error)``, when given, may return a message of
      its own for an error it recognises (``None`` otherwise).
    - While a notebook is graded, the student's objects live in their kernel and the check in the grader
      (``_remote``): then ``fn`` and its arguments cross as references and data, and so does the result.
    """
    message = None
    try:
        session = _remote.active()
        if session is not None and _remote.involves(fn, args, kwargs):
            return session.request({"op": "call", "fn": fn, "args": list(args), "kwargs": kwargs}, what=name)
        return run(fn, *args, **kwargs)
    except (NotImplementedError, _remote.RemoteError, _remote.MissingName):
        raise
    except Exception as error:  # noqa: BLE001 - any error in student code is a failed check with its message
        message = _message(name, error, hint, explain)
    fail(message)  # outside the except block, so the message is not buried under the student's traceback


def observe(fn: Callable, /, *args, **kwargs):
    """``fn(*args, **kwargs)``, where ``fn`` is a function of the course that works the student's objects
    (through ``call``) and returns what it saw, as data: a layer's output and its gradients after the check set
    its weights. While graded it runs in the student's kernel, beside those objects, and only its data comes back
    (what is not data stays there: ``observe`` also builds there what the student's code is to be given, a model
    or a loader); the check judges it here. It must decide nothing: all it may fail is what the student's code
    did not do."""
    session = _remote.active()
    if session is not None:
        return session.request({"op": "observe", "fn": fn, "args": list(args), "kwargs": kwargs},
                               what=getattr(fn, "__name__", "observe"))
    return fn(*args, **kwargs)


def cpu_clock() -> Callable[[], float]:
    """A clock of the CPU seconds the student's code uses. While graded: the grader's reading of the kernel's
    processes, from outside (nothing the kernel does changes it), or the grader's wall clock where it cannot read
    them. Outside grading: this process's own (the student's kernel)."""
    session = _remote.active()
    if session is None:
        return _process_time
    reading = session.clock
    if reading is None or reading() is None:
        return _perf_counter

    def clock() -> float:
        seconds = reading()
        return math.inf if seconds is None else seconds  # the kernel is gone: no time can be claimed
    return clock


# ---------------------------------------------------------------- comparing


def as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    hint = ""
    if type(value).__module__ == "numpy":
        hint = " Convert it with torch.from_numpy(...) or torch.as_tensor(...)."
    fail(f"{name} should return a torch.Tensor, but it returned {type(value).__name__}.{hint}")


def as_number(name: str, value, what: str = "the result") -> float:
    """A float from a Python number or a one-element tensor; anything else fails, saying what it was."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            fail(f"{name}: {what} should be one number, got a tensor of shape {tuple(value.shape)}.")
        return float(value.detach())
    if isinstance(value, bool | str | bytes):
        fail(f"{name}: {what} should be a number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(f"{name}: {what} should be a number, got {type(value).__name__}.")


def close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    got, expected = torch.as_tensor(got), torch.as_tensor(expected)
    if tuple(got.shape) != tuple(expected.shape):
        return False
    if got.is_complex() or expected.is_complex():
        return False
    return bool(_allclose(got.detach().double(), expected.detach().double(), rtol=rtol, atol=atol))


def compare(name: str, got, expected: torch.Tensor, *, case: str = "",
            shape_hint=None, mistakes: tuple = (), rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Fail unless ``got`` equals ``expected``.

    ``shape_hint(got_shape, expected_shape)`` explains a wrong shape; ``mistakes`` is a list of
    ``(description, wrong_answer)`` pairs: if the student's output equals a known wrong answer,
    the message names that mistake.
    """
    got = as_tensor(name, got)
    where = f" for {case}" if case else ""
    if tuple(got.shape) != tuple(expected.shape):
        hint = shape_hint(tuple(got.shape), tuple(expected.shape)) if shape_hint else None
        fail(f"{name}{where}: the output has shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
             + (f" {hint}" if hint else ""))
    if not bool(_isfinite(got.detach().double()).all()):
        fail(f"{name}{where}: the output contains inf or nan.")
    if close(got, expected, rtol, atol):
        return
    for description, wrong in mistakes:
        if wrong is not None and close(got, wrong, rtol, atol):
            fail(f"{name}{where}: {description}")
    fail(f"{name}{where}: wrong values.\nexpected:\n{expected}\ngot:\n{got.detach()}")


def dimension_hint(got: tuple, expected: tuple, input_shape: tuple | None = None) -> str | None:
    """Explain an output that has the wrong size along its last two dimensions (rows, columns)."""
    if len(got) != len(expected):
        return f"It should have {len(expected)} dimensions, not {len(got)}."
    if got[-2:] == expected[-2:][::-1] and got[-2:] != expected[-2:]:
        return "Rows and columns are swapped: is the output transposed?"
    if input_shape is not None and got[-2:] == tuple(input_shape[-2:]):
        return ("The output is as large as the input: did you forget the `- k + 1`? An n-wide input "
                "and a k-wide kernel leave n - k + 1 positions for the window.")
    off = {g - e for g, e in zip(got[-2:], expected[-2:]) if g != e}
    which = " and ".join(name for name, g, e in zip(("rows", "columns"), got[-2:], expected[-2:]) if g != e)
    if off == {1}:
        return (f"One too many {which}: the last window starts at n - k, so there are n - k + 1 "
                f"positions, not n - k + 2.")
    if off == {-1}:
        return (f"One too few {which}: range(n - k) misses the last window; there are n - k + 1 "
                f"positions.")
    return None


def not_hard_coded(name: str, fn, inputs: list[tuple]) -> None:
    """Fail if ``fn`` gives exactly the same output for different inputs (of any shapes)."""
    outputs = [call(name, fn, *args) for args in inputs]
    first = outputs[0]
    if isinstance(first, torch.Tensor) and all(
            isinstance(o, torch.Tensor) and o.shape == first.shape and bool((o == first).all())
            for o in outputs[1:]):
        fail(f"{name} returns the same {tuple(first.shape)} output for different inputs: "
             f"is the answer hard-coded? It must be computed from the arguments.")


# ---------------------------------------------------------------- penalised once


def _globals_of(obj) -> dict:
    """The module namespace a function, method or class looks its global names up in."""
    obj = getattr(obj, "__func__", obj)  # a bound method: its function
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        obj = type(obj)  # an object (a student's module): its class
    if inspect.isclass(obj):
        for member in vars(obj).values():
            if inspect.isfunction(member):
                return member.__globals__
        return {}
    globals_ = getattr(obj, "__globals__", None)
    return globals_ if isinstance(globals_, dict) else {}


@contextlib.contextmanager
def references_in_place(obj, **references):
    """Temporarily replace the names ``obj`` calls (say ``corr2d``) by reference versions.

    A mistake is then penalised once: a wrong ``corr2d`` costs the ``corr2d`` test, not every
    test of a function built on it. (While graded, the names are replaced in the student's kernel, for the
    requests made meanwhile.)
    """
    session = _remote.active()
    if session is not None and isinstance(obj, _remote.Remote):
        with session.references(obj, references):
            yield
        return
    namespace = _globals_of(obj)
    missing = object()
    saved = {name: namespace.get(name, missing) for name in references}
    namespace.update(references)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


@contextlib.contextmanager
def references_applied(pairs):
    """``references_in_place`` for each ``(obj, references)`` of ``pairs`` (the kernel's agent applies a request's)."""
    with contextlib.ExitStack() as stack:
        for obj, references in pairs:
            stack.enter_context(references_in_place(obj, **references))
        yield


# ---------------------------------------------------------------- seeded inputs


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
    """Standard normal numbers drawn in float64 (the same values whatever ``dtype``), times ``scale``."""
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def rand(g: torch.Generator, *shape, dtype=torch.float32) -> torch.Tensor:
    """Uniform numbers in [0, 1), drawn in float64 (the same values whatever ``dtype``)."""
    return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)


def seeded(seed: int, make: Callable, *, numpy: bool = False):
    """``make()`` with torch's global random state (and NumPy's, with ``numpy``) set to ``seed``, then restored."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        torch.manual_seed(seed)
        if numpy:
            import numpy as np

            state = np.random.get_state()
            stack.callback(np.random.set_state, state)
            np.random.seed(seed)
        return make()


def params_vector(model) -> torch.Tensor:
    """All of a model's parameters, flattened into one vector (to compare two models' weights)."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ---------------------------------------------------------------- data


def mnist(split: str = "train", *, start: int = 0, stop: int | None = None, digit: int | None = None,
          shape: tuple = (28, 28), dtype: torch.dtype | None = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels a check uses: one split of the lesson's MNIST (full or the bundled sample, loaded
    quietly: the lesson's first cell already said which), only the digits ``digit`` if given, then the images
    ``start:stop`` of those, each reshaped to ``shape`` (``(784,)`` flat, ``(1, 28, 28)`` with a channel).

    With a ``dtype`` the images are converted to it and scaled to [0, 1]; only the images chosen are, in place,
    so no second copy of a whole split is ever made (Binder's memory is small). ``dtype=None`` keeps them uint8.
    """
    from ..data import load_mnist

    data = load_mnist(quiet=True)
    if split not in ("train", "test"):
        raise ValueError(f"split is 'train' or 'test', not {split!r}")
    if split == "train":
        images, labels = data.train_images, data.train_labels
    else:
        images, labels = data.test_images, data.test_labels
    if digit is not None:
        keep = labels == digit
        images, labels = images[keep], labels[keep]
    images, labels = images[start:stop], labels[start:stop]
    images = images.reshape(len(images), *shape)
    if dtype is not None:
        images = images.to(dtype).div_(255)
    return images, labels


class Call(NamedTuple):
    shape: tuple        # the input's shape
    training: bool      # the module's mode
    grad: bool          # whether autograd was recording


class Probe(nn.Module):
    """Runs ``net`` and notes, for every forward pass, the input's shape, the mode and whether gradients were
    being recorded (``probe.calls``): what a check needs to see how a student's code used a network."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.calls: list[Call] = []

    def forward(self, x):
        self.calls.append(Call(tuple(x.shape), self.training, torch.is_grad_enabled()))
        return self.net(x)


# ---------------------------------------------------------------- train, then check the accuracy


@dataclass
class Trained:
    """A training run of a check: the model, what the student's code returned, and the accuracies."""

    model: Any
    result: Any
    accuracy: float
    untrained: float | None = None


def train_and_measure(*, seed: int, make_model: Callable, train: Callable, accuracy: Callable,
                      threshold: float | None = None, numpy: bool = False) -> Trained:
    """Build ``make_model()`` with the random state set to ``seed`` (torch's, and NumPy's with ``numpy``;
    restored afterwards), measure its ``accuracy(model)`` untrained when a ``threshold`` is given (at or above it,
    the check itself is broken: it could not tell a trained model from an untrained one), run
    ``train(model)`` (the student's code, through ``call``) under the same random state, and measure again."""
    def run():
        model = make_model()
        untrained = None
        if threshold is not None:
            untrained = accuracy(model)
            if untrained >= threshold:
                fail(f"the untrained model already reaches {untrained:.3f}: the check itself is broken.")
            if isinstance(model, nn.Module):
                model.train()
        return model, untrained, train(model)

    model, untrained, result = seeded(seed, run, numpy=numpy)
    return Trained(model, result, accuracy(model), untrained)


def require_accuracy(run: Trained, threshold: float, message: Callable[[Trained], str]) -> None:
    """Fail with ``message(run)`` unless the trained model's accuracy is a number that reaches ``threshold``."""
    if not math.isfinite(run.accuracy) or run.accuracy < threshold:
        fail(message(run))


def train_then_check(*, seed: int, make_model: Callable, train: Callable, accuracy: Callable, threshold: float,
                     message: Callable[[Trained], str], check_result: Callable[[Trained], None] | None = None,
                     numpy: bool = False) -> Trained:
    """The one train-then-check-the-accuracy check: ``train_and_measure``, then the lesson's own checks of what
    the student's code returned (``check_result(run)``: a history's length, losses as numbers), then
    ``require_accuracy``. Returns the run."""
    run = train_and_measure(seed=seed, make_model=make_model, train=train, accuracy=accuracy, threshold=threshold,
                            numpy=numpy)
    if check_result is not None:
        check_result(run)
    require_accuracy(run, threshold, message)
    return run


# ---------------------------------------------------------------- counting operations


class CountOps(TorchFunctionMode):
    """Counts the tensor operations (torch functions and tensor methods) made while it is on, in ``count``: a loop
    over images, rows or pixels makes more of them the more there are, so two counts for two sizes tell a loop
    from a vectorised answer. Use it in a course function that ``observe`` runs, so that it counts in the
    student's kernel, where their code runs."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))
