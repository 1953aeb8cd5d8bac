"""Checks for lesson 01, pixels and tensors: two tensor drills, ``mnist_distance``, ``is_3`` and
the pixel-similarity baseline's validation accuracy.

The data is the lesson's: the training split's 3s and 7s give the ideal digits ``mean3`` and
``mean7``, the test split's 3s and 7s are the validation set, all as floats in [0, 1]. The checks
load it themselves (the same MNIST the notebook uses, from the process's memo), so they never
depend on a variable the student may have changed. ``is_3`` and ``validation_accuracy`` run with
the reference ``mnist_distance`` (and ``is_3``), ``mean3`` and ``mean7`` in place: a wrong
``mnist_distance`` costs only its own tests. The answers are ``handwritten.reference.pixels``.
"""

from __future__ import annotations

import functools

import torch

from ..reference import pixels as reference
from ._core import (as_float, as_number, call, compare, fail, generator, mnist, not_hard_coded, observe, passed,
                    passed_hidden, rand, randn, references_in_place)

__all__ = [
    "bottom_right_doubled", "bottom_right_doubled_hidden", "is_3", "is_3_hidden", "lesson_data", "mnist_distance",
    "mnist_distance_hidden", "numbers_grid", "numbers_grid_hidden", "validation_accuracy",
    "validation_accuracy_hidden",
]

# ---------------------------------------------------------------- the lesson's data


def lesson_data() -> dict:
    """The training and validation 3s and 7s (floats in [0, 1]), every validation digit and the two ideal
    digits, ``mean3`` and ``mean7``. Each call makes new tensors: student code may change what it is given."""
    found = {
        "train3": mnist("train", digit=3)[0],
        "train7": mnist("train", digit=7)[0],
        "valid3": mnist("test", digit=3)[0],
        "valid7": mnist("test", digit=7)[0],
        "valid_all": mnist("test")[0],
    }
    found["mean3"] = found["train3"].mean(0)
    found["mean7"] = found["train7"].mean(0)
    return found


def _reference_is_3(d):
    """The lesson's ``is_3``, bound to the two ideal digits."""
    return functools.partial(reference.is_3, mean3=d["mean3"], mean7=d["mean7"])


# ---------------------------------------------------------------- drill 1: numbers_grid


def _check_grid(fn, n):
    expected = reference.numbers_grid(n)

    def hint(got, want):
        return (f"numbers_grid({n}) should be {n}x{n}: reshape the {n * n} numbers with "
                f".reshape({n}, {n}).")

    compare(f"numbers_grid({n})", call(f"numbers_grid({n})", fn, n), expected, shape_hint=hint, mistakes=[
        ("it starts at 0. torch.arange(start, end) stops *before* end: the numbers 1 to n*n are "
         "torch.arange(1, n * n + 1).", expected - 1),
        ("the numbers run down the columns: fill the grid row by row (1, 2, 3 on the first row), "
         "so reshape without transposing.", expected.T),
    ])


def _grid_not_hard_coded(fn, sizes):
    """Fail if two sizes give a tensor of the same shape (``not_hard_coded`` compares values; a grid is hard-coded
    as soon as its shape ignores n)."""
    outputs = {n: call(f"numbers_grid({n})", fn, n) for n in sizes}
    shapes = {n: tuple(out.shape) if isinstance(out, torch.Tensor) else None for n, out in outputs.items()}
    if len(set(shapes.values())) == 1 and None not in shapes.values():
        fail(f"numbers_grid returns a {shapes[sizes[0]]} tensor for n = {sizes[0]} and for n = {sizes[1]}: "
             f"is the answer hard-coded? Build the grid from n.")


def numbers_grid(fn):
    """Visible check: the 3x3 grid of the questionnaire, and 4x4."""
    _grid_not_hard_coded(fn, (3, 4))
    for n in (3, 4):
        _check_grid(fn, n)
    passed("numbers_grid", 2)


def numbers_grid_hidden(fn, seed):
    """Hidden check: 1x1, 2x2, 5x5 and two sizes from 6 to 12, from the seed."""
    g = generator(seed)
    sizes = [1, 2, 5] + [int(v) for v in torch.randint(6, 13, (2,), generator=g)]
    _grid_not_hard_coded(fn, (5, 6))
    for n in sizes:
        _check_grid(fn, n)
    passed_hidden("numbers_grid")


# ---------------------------------------------------------------- drill 2: bottom_right_doubled


def _corner_outputs(fn, t, case):
    """What ``fn(t)`` returns, and ``t`` afterwards (``observe``: an in-place change happens where ``t`` is)."""
    return call(f"bottom_right_doubled for {case}", fn, t), t


def _check_corner(fn, t, case):
    original = t.clone()
    expected = reference.bottom_right_doubled(original)
    got, t = observe(_corner_outputs, fn, t, case)
    if not torch.equal(t, original):
        fail(f"bottom_right_doubled for {case}: it changed its argument (t *= 2 or t.mul_(2) doubles the "
             f"caller's tensor in place). Compute t * 2, a new tensor, and slice that.")
    h, w = original.shape

    def hint(got_shape, want):
        if got_shape == (h - 1, w - 1):
            return ("It looks like t[1:, 1:]: that is the bottom-right 2x2 block only for a 3x3 tensor. "
                    "Count from the end instead: t[-2:, -2:] is the last two rows and last two columns "
                    "of a tensor of any size.")
        if got_shape == (h, w):
            return "That is the whole tensor doubled: keep only the last two rows and columns, [-2:, -2:]."
        return "The bottom-right four numbers form a 2x2 block: the last two rows and the last two columns."

    compare(f"bottom_right_doubled for {case}", got, expected, shape_hint=hint, mistakes=[
        ("that is the top-left 2x2 block: the bottom-right one is [-2:, -2:], counted from the end.",
         (original * 2)[:2, :2]),
        ("these numbers are not doubled: multiply by 2 before (or after) slicing.", original[-2:, -2:]),
        ("these numbers are squared, not doubled: t * 2, not t ** 2.", (original ** 2)[-2:, -2:]),
        ("rows and columns are mixed up: the block should not be transposed.", (original * 2)[-2:, -2:].T),
    ])


def bottom_right_doubled(fn):
    """Visible check: the 3x3 grid of 1..9 and of 9..1."""
    grid = reference.numbers_grid(3)
    not_hard_coded("bottom_right_doubled", fn, [(grid.clone(),), (grid.flip(0, 1).clone(),)])
    _check_corner(fn, grid, "the 3x3 tensor of 1..9")
    _check_corner(fn, grid.flip(0, 1).clone(), "the 3x3 tensor of 9..1")
    passed("bottom_right_doubled", 2)


def bottom_right_doubled_hidden(fn, seed):
    """Hidden check: five sizes from 2x2 to 7x7, not all square, of integers and of float64 numbers."""
    g = generator(seed)
    shapes = [(4, 4), (5, 3), (2, 2), (2, 6), (7, 7)]
    for i, shape in enumerate(shapes):
        if i % 2:
            t = randn(g, *shape, dtype=torch.float64)
        else:
            t = torch.randint(-50, 50, shape, generator=g)
        _check_corner(fn, t, f"a {shape[0]}x{shape[1]} {str(t.dtype)[6:]} tensor")
    passed_hidden("bottom_right_doubled")


# ---------------------------------------------------------------- mnist_distance


def _distance_mistakes(a, b):
    a, b = as_float(a, b)
    diff = a - b
    return [
        ("it squares the differences: that is the mean squared error. mnist_distance is the mean "
         "*absolute* difference (L1): (a - b).abs().mean((-1, -2)).", (diff ** 2).mean((-1, -2))),
        ("that is the root mean squared error (RMSE). mnist_distance is the mean absolute difference (L1).",
         (diff ** 2).mean((-1, -2)).sqrt()),
        ("the absolute value is missing: positive and negative differences cancel out. Use .abs().",
         diff.mean((-1, -2))),
        ("it sums the differences instead of averaging them: use .mean((-1, -2)).",
         diff.abs().sum((-1, -2))),
    ]


def _broadcast(*shapes) -> tuple:
    """The broadcast shape, in plain Python (torch.broadcast_shapes imports sympy: seconds)."""
    rank = max(len(shape) for shape in shapes)
    padded = [(1,) * (rank - len(shape)) + tuple(shape) for shape in shapes]
    return tuple(max(sizes) for sizes in zip(*padded))


def _distance_hint(a, b):
    both = _broadcast(a.shape, b.shape)
    batch = both[:-2]

    def hint(got, want):
        if got == () and want != ():
            return (f"One number for the whole batch: it averages over the batch too. Take the mean over the "
                    f"last two dimensions only, .mean((-1, -2)), to get one distance per image, {want}.")
        if got == both:
            return "Nothing was averaged: take the mean over the last two dimensions, .mean((-1, -2))."
        if len(got) == len(want) + 1 or (batch and got[:1] != want[:1]):
            return ("It averages over the wrong dimensions: the pixels of an image are the last two, "
                    ".mean((-1, -2)), whatever comes before them.")
        return None

    return hint


def _check_distance(fn, a, b, case):
    expected = reference.mnist_distance(a, b)
    compare("mnist_distance", call("mnist_distance", fn, a, b), expected, case=case,
            shape_hint=_distance_hint(a, b), mistakes=_distance_mistakes(a, b))


def mnist_distance(fn):
    """Visible check: a training 3 against both ideal digits, and the validation 3s against mean3."""
    d = lesson_data()
    a_3 = d["train3"][1]
    not_hard_coded("mnist_distance", fn, [(a_3, d["mean3"]), (a_3, d["mean7"])])
    _check_distance(fn, a_3, d["mean3"], "a 3 and mean3")
    _check_distance(fn, a_3, d["mean7"], "a 3 and mean7")
    n = len(d["valid3"])
    _check_distance(fn, d["valid3"], d["mean3"], f"the {n} validation 3s (shape {tuple(d['valid3'].shape)}) "
                                                 "and mean3")
    passed("mnist_distance", 3)


def mnist_distance_hidden(fn, seed):
    """Hidden check: random images of other sizes, the batch in either argument, two batches, rank 4,
    float64."""
    g = generator(seed)
    not_hard_coded("mnist_distance", fn, [(rand(g, 5, 7), rand(g, 5, 7)), (rand(g, 5, 7), rand(g, 5, 7))])
    cases = [
        ((5, 7), (5, 7), torch.float32),
        ((6, 5, 7), (5, 7), torch.float32),
        ((5, 7), (4, 5, 7), torch.float64),
        ((3, 9, 4), (3, 9, 4), torch.float32),
        ((2, 3, 6, 4), (6, 4), torch.float64),
        ((1, 28, 28), (28, 28), torch.float32),
    ]
    for a_shape, b_shape, dtype in cases:
        _check_distance(fn, rand(g, *a_shape, dtype=dtype), rand(g, *b_shape, dtype=dtype),
                        f"random {a_shape} and {b_shape} {str(dtype)[6:]} tensors")
    passed_hidden("mnist_distance")


# ---------------------------------------------------------------- is_3


def _as_answers(got, expected: torch.Tensor, case: str) -> torch.Tensor:
    """The student's True/False answers as a bool tensor, or a failure that says what is wrong."""
    if isinstance(got, bool):
        got = torch.tensor(got)
    if not isinstance(got, torch.Tensor):
        hint = " Convert it with torch.from_numpy(...)." if type(got).__module__ == "numpy" else ""
        fail(f"is_3 for {case} should return a torch.Tensor of True/False, but it returned "
             f"{type(got).__name__}.{hint}")
    if tuple(got.shape) != tuple(expected.shape):
        if got.shape == () and expected.shape != ():
            fail(f"is_3 for {case} returned one answer for the whole batch, expected one per image, shape "
                 f"{tuple(expected.shape)}. Compare the per-image distances, mnist_distance(x, mean3) < "
                 f"mnist_distance(x, mean7), which average over the last two dimensions only.")
        fail(f"is_3 for {case}: the output has shape {tuple(got.shape)}, expected {tuple(expected.shape)} "
             f"(one answer per image).")
    if got.dtype != torch.bool:
        if got.is_floating_point() or got.is_complex() or not bool(((got == 0) | (got == 1)).all()):
            fail(f"is_3 for {case} should answer True or False for each image (the result of comparing the "
                 f"two distances with <), not return numbers such as the distances themselves.")
        got = got != 0
    return got


def _check_is_3(fn, x, case, d):
    expected = _reference_is_3(d)(x)

    def explain(error):
        if x.ndim == 2:
            return None
        return (f"is_3 works on one image but raised {type(error).__name__} on {case} ({error}). It must answer "
                f"for every image of a batch at once: return the comparison mnist_distance(x, mean3) < "
                f"mnist_distance(x, mean7) itself, without bool(), .item() or an if statement.")

    got = _as_answers(call(f"is_3 for {case}", fn, x, explain=explain), expected, case)
    if bool((got == expected).all()):
        return
    if x.ndim == 2:
        d3, d7 = (float(reference.mnist_distance(x, d[m])) for m in ("mean3", "mean7"))
        fail(f"is_3 for {case} answered {bool(got)}, but the image's distance to mean3 is {d3:.4f} and to "
             f"mean7 {d7:.4f}, so the answer is {bool(expected)}. Is the comparison reversed? An image is a 3 "
             f"when its distance to mean3 is *smaller* than its distance to mean7.")
    if bool((got != expected).all()):
        fail(f"is_3 for {case}: every answer is the opposite of the right one. The comparison is reversed: an "
             f"image is a 3 when its distance to mean3 is *smaller* than its distance to mean7.")
    wrong = int((got != expected).sum())
    fail(f"is_3 for {case}: {wrong} of {got.numel()} answers are wrong. An image is a 3 when "
         f"mnist_distance(x, mean3) < mnist_distance(x, mean7).")


def _with_references(fn, d, **more):
    """The names the lesson's ``is_3`` (and ``validation_accuracy``) read, put in place as the course's own."""
    return references_in_place(fn, mnist_distance=reference.mnist_distance, mean3=d["mean3"], mean7=d["mean7"],
                               **more)


def _first(images, d, want: bool) -> torch.Tensor:
    """The first image on which the reference is_3 answers ``want`` (the lesson's examples are
    the ones the baseline gets right)."""
    answers = _reference_is_3(d)(images)
    index = int((answers == want).nonzero()[0])
    return images[index]


def is_3(fn):
    """Visible check: one validation 3, one validation 7, and the whole validation set, with the
    reference mnist_distance, mean3 and mean7 in place."""
    d = lesson_data()
    with _with_references(fn, d):
        _check_is_3(fn, _first(d["valid3"], d, True), "a single validation 3", d)
        _check_is_3(fn, _first(d["valid7"], d, False), "a single validation 7", d)
        for name in ("valid3", "valid7"):
            x = d[name]
            _check_is_3(fn, x, f"the batch of {len(x)} validation {name[-1]}s, shape {tuple(x.shape)}", d)
    passed("is_3", 4)


def is_3_hidden(fn, seed):
    """Hidden check: six single validation images and 97 of every digit (chosen by the seed), 64 training 7s
    as float64, random noise, and a batch of one image."""
    d = lesson_data()
    g = generator(seed)
    everything = d["valid_all"]
    picks = torch.randperm(len(everything), generator=g)
    with _with_references(fn, d):
        for i in picks[:6].tolist():
            _check_is_3(fn, everything[i], f"validation image {i}", d)
        _check_is_3(fn, everything[picks[:97]], "97 validation digits of every kind", d)
        _check_is_3(fn, d["train7"][:64].double(), "64 training 7s as float64", d)
        _check_is_3(fn, rand(g, 10, 28, 28), "10 images of random noise", d)
        _check_is_3(fn, d["train3"][:1], "a batch of one image, shape (1, 28, 28)", d)
    passed_hidden("is_3")


# ---------------------------------------------------------------- validation_accuracy


def _accuracy_mistakes(threes, sevens, is_3, expected):
    a3 = is_3(threes).float().mean().item()
    a7 = (~is_3(sevens)).float().mean().item()
    n3, n7 = len(threes), len(sevens)
    mistakes = [
        (f"that is the average of the two per-class accuracies, (accuracy on the 3s + accuracy on the "
         f"7s) / 2. With {n3} 3s and {n7} 7s that is not the fraction of all images classified correctly: "
         f"count the right answers over all {n3 + n7} images and divide by {n3 + n7}.", (a3 + a7) / 2),
        ("a 7 is classified correctly when is_3 says False: count the 7s where is_3 is False "
         "(~is_3(sevens), or 1 - is_3(sevens).float()).", (a3 * n3 + (1 - a7) * n7) / (n3 + n7)),
        ("only the 3s were counted: the accuracy covers the 7s too.", a3),
        ("only the 7s were counted: the accuracy covers the 3s too.", a7),
        ("that is the error rate, the fraction classified *wrongly*: the accuracy is 1 minus it.", 1 - expected),
        ("that is a percentage: return a fraction between 0 and 1.", 100 * expected),
    ]
    return [(text, value) for text, value in mistakes if abs(value - expected) > 1e-6]


def _check_accuracies(fn, inputs, d):
    """Compare with the reference accuracy on every input, with the reference is_3 (and mnist_distance, mean3,
    mean7) in place. A wrong answer is explained by the known mistake it matches or, when the same number comes
    back for inputs whose accuracies differ, as a hard-coded answer."""
    is_3 = _reference_is_3(d)
    results = []
    with _with_references(fn, d, is_3=is_3):
        for threes, sevens, case in inputs:
            expected = reference.validation_accuracy(threes, sevens, is_3)
            got = call(f"validation_accuracy for {case}", fn, threes.clone(), sevens.clone())
            results.append((threes, sevens, case, expected,
                            as_number(f"validation_accuracy for {case}", got, "the accuracy")))
    same_answer = (len({round(r[3], 6) for r in results}) > 1 and len({round(r[4], 6) for r in results}) == 1)
    for threes, sevens, case, expected, got in results:
        if abs(got - expected) <= 1e-5:
            continue
        for text, wrong in _accuracy_mistakes(threes, sevens, is_3, expected):
            if abs(got - wrong) <= 1e-5:
                fail(f"validation_accuracy for {case} returned {got:.4f}, expected {expected:.4f}: {text}")
        if same_answer:
            fail(f"validation_accuracy returns {got:.4f} whatever the images: is the accuracy hard-coded? "
                 f"It must be computed from the images it is given, with is_3.")
        fail(f"validation_accuracy for {case} returned {got:.4f}, expected {expected:.4f}: the fraction of "
             f"the {len(threes)} 3s and {len(sevens)} 7s that is_3 classifies correctly.")


def validation_accuracy(fn):
    """Visible check: the whole validation set, and the validation 3s with only 20 of the 7s."""
    d = lesson_data()
    n3, n7 = len(d["valid3"]), len(d["valid7"])
    _check_accuracies(fn, [(d["valid3"], d["valid7"], f"the validation set ({n3} 3s, {n7} 7s)"),
                           (d["valid3"], d["valid7"][:20], f"the {n3} validation 3s and only 20 of the 7s")], d)
    passed("validation_accuracy", 2)


def validation_accuracy_hidden(fn, seed):
    """Hidden check: the 3s and 7s swapped, and four other sets of other sizes, from the seed."""
    d = lesson_data()
    g = generator(seed)

    def some(images, n):
        return images[torch.randperm(len(images), generator=g)[:n]]

    _check_accuracies(fn, [
        (d["valid7"], d["valid3"], "the validation 7s passed as the 3s, and the 3s as the 7s"),
        (some(d["train3"], 300), some(d["train7"], 40), "300 training 3s and 40 training 7s"),
        (some(d["train3"], 15), some(d["train7"], 250), "15 training 3s and 250 training 7s"),
        (some(d["valid3"], 1), some(d["valid7"], 3), "one 3 and three 7s"),
        (some(d["valid_all"], 120), some(d["valid7"], 60), "120 validation digits of every kind and 60 7s"),
    ], d)
    passed_hidden("validation_accuracy")
