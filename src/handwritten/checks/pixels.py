"""Checks for lesson 01, pixels and tensors: two tensor drills, ``mnist_distance``, ``is_3``, the pixel-similarity
baseline's validation accuracy, ``rgb_to_grey`` (colour channels), and the nearest-neighbour classifier: its
distance matrix with two loops, one and none, ``knn_predict`` and ``confusion_matrix``.

The data is the lesson's: a validation set carved from the training split (``split_validation``, seeded and
stratified), the remaining training 3s and 7s giving the ideal digits ``mean3`` and ``mean7``, all as floats in
[0, 1]. The test split is never touched by a check: the lesson measures it once, at its end. The checks load the
data themselves (the same MNIST the notebook uses, from the process's memo), so they never depend on a variable
the student may have changed. ``is_3`` and ``validation_accuracy`` run with the reference ``mnist_distance`` (and
``is_3``), ``mean3`` and ``mean7`` in place: a wrong ``mnist_distance`` costs only its own tests. The answers are
``handwritten.reference.pixels``.
"""

from __future__ import annotations

import functools

import torch

from ..reference import pixels as reference
from ._core import (CountOps, as_float, as_number, call, compare, fail, generator, not_hard_coded, observe, passed,
                    passed_hidden, rand, randn, references_in_place)

__all__ = [
    "bottom_right_doubled", "bottom_right_doubled_hidden", "confusion_matrix", "confusion_matrix_hidden",
    "distances_no_loops", "distances_no_loops_hidden", "distances_one_loop", "distances_one_loop_hidden",
    "distances_two_loops", "distances_two_loops_hidden", "is_3", "is_3_hidden", "knn_predict", "knn_predict_hidden",
    "lesson_data", "mnist_distance", "mnist_distance_hidden", "numbers_grid", "numbers_grid_hidden", "rgb_to_grey",
    "rgb_to_grey_hidden", "validation_accuracy", "validation_accuracy_hidden",
]

# ---------------------------------------------------------------- the lesson's data


VALIDATION = {"fraction": 1 / 6, "seed": 0}
"""The lesson's validation split: ``split_validation(train_images, train_labels, **VALIDATION)``."""


def lesson_split():
    """The lesson's training split with its validation digits carved out: ``(train_images, train_labels,
    valid_images, valid_labels)``, the images still uint8."""
    from ..data import load_mnist, split_validation

    data = load_mnist(quiet=True)
    return split_validation(data.train_images, data.train_labels, **VALIDATION)


def lesson_data() -> dict:
    """The training and validation 3s and 7s (floats in [0, 1]), every validation digit and the two ideal
    digits, ``mean3`` and ``mean7``. Each call makes new tensors: student code may change what it is given."""
    train_images, train_labels, valid_images, valid_labels = lesson_split()

    def scaled(images):
        return images.float().div_(255)

    found = {
        "train3": scaled(train_images[train_labels == 3]),
        "train7": scaled(train_images[train_labels == 7]),
        "valid3": scaled(valid_images[valid_labels == 3]),
        "valid7": scaled(valid_images[valid_labels == 7]),
        "valid_all": scaled(valid_images),
        "valid_all_uint8": valid_images.clone(),
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
    if not x.is_floating_point():
        fail(f"is_3 for {case}: {int((got != expected).sum())} of {got.numel()} answers are wrong. These images "
             f"are as the dataset stores them, whole numbers from 0 to 255, but mean3 and mean7 were averaged from "
             f"images scaled to [0, 1]: a model must see its inputs prepared the way its parameters were. When x "
             f"is not a floating-point tensor, scale it as section 3 did before measuring any distance.")
    scaled_twice = bool((got == _reference_is_3(d)(x / 255)).all()) and bool((x > 1 / 255).any())
    twice = ("these images are already floats in [0, 1], yet the answers are those for x / 255. Scale only the "
             "images that are not floating point (x.is_floating_point() tells them apart).")
    if x.ndim == 2:
        d3, d7 = (float(reference.mnist_distance(x, d[m])) for m in ("mean3", "mean7"))
        fail(f"is_3 for {case} answered {bool(got)}, but the image's distance to mean3 is {d3:.4f} and to "
             f"mean7 {d7:.4f}, so the answer is {bool(expected)}. Is the comparison reversed? An image is a 3 "
             f"when its distance to mean3 is *smaller* than its distance to mean7."
             + (f" Or, since one answer cannot tell: {twice}" if scaled_twice else ""))
    if scaled_twice:
        fail(f"is_3 for {case}: {twice}")
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
    """Visible check: one validation 3, one validation 7, the validation 3s and 7s, and 50 validation digits as
    stored (uint8), with the reference mnist_distance, mean3 and mean7 in place."""
    d = lesson_data()
    with _with_references(fn, d):
        _check_is_3(fn, _first(d["valid3"], d, True), "a single validation 3", d)
        _check_is_3(fn, _first(d["valid7"], d, False), "a single validation 7", d)
        for name in ("valid3", "valid7"):
            x = d[name]
            _check_is_3(fn, x, f"the batch of {len(x)} validation {name[-1]}s, shape {tuple(x.shape)}", d)
        as_stored = d["valid_all_uint8"][:50]
        _check_is_3(fn, as_stored, "50 validation digits as the dataset stores them (uint8, 0 to 255)", d)
    passed("is_3", 5)


def is_3_hidden(fn, seed):
    """Hidden check: six single validation images and 97 of every digit (chosen by the seed), 64 training 7s
    as float64, random noise, a batch of one image, and validation digits as stored (uint8, and int64)."""
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
        as_stored = d["valid_all_uint8"]
        _check_is_3(fn, as_stored[int(picks[6])], f"validation image {int(picks[6])} as stored (uint8)", d)
        _check_is_3(fn, as_stored[picks[7:111]], "104 validation digits as stored (uint8)", d)
        _check_is_3(fn, as_stored[picks[:6]].long(), "6 validation digits as int64 numbers from 0 to 255", d)
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


# ---------------------------------------------------------------- rgb_to_grey


def _coloured(digits: torch.Tensor) -> torch.Tensor:
    """Grey digits (..., H, W) in [0, 1] as colour images (..., 3, H, W): a red and green digit on blue."""
    return torch.stack([digits, 0.5 * digits, 1 - digits], dim=-3)


def _grey_mistakes(images):
    x = images.double()
    luma = torch.tensor(reference.LUMA, dtype=torch.float64)
    return [
        ("it averages the three channels equally. The eye finds green much brighter than blue, so a grey level "
         "weighs them 0.299 (red), 0.587 (green) and 0.114 (blue).", x.mean(-3)),
        ("it adds the three channels without their weights: 0.299 red + 0.587 green + 0.114 blue.", x.sum(-3)),
        ("the weights are in the wrong order: channel 0 is red (0.299), 1 green (0.587), 2 blue (0.114).",
         (x * luma.flip(0).reshape(3, 1, 1)).sum(-3)),
    ]


def _grey_hint(shape):
    def hint(got, want):
        if len(shape) >= 4 and got == shape[1:]:
            return ("It summed over axis 0, which in a batch (N, 3, H, W) runs over the images: the channels are "
                    "axis -3, counted from the end, whatever comes before them.")
        if got == shape[:-1]:
            return ("The weights were lined up with the last axis, the columns: that is where the channels are in "
                    "the (H, W, C) layout of PIL and NumPy. In PyTorch's (C, H, W) they are axis -3.")
        if got == tuple(shape):
            return "Nothing was summed: add up the three weighted channels, so that the channel axis disappears."
        return None

    return hint


def _grey_explain(images):
    def explain(error):
        if "must match the size of tensor b (3)" in str(error) or "must match the size of tensor a (3)" in str(error):
            return (f"rgb_to_grey raised RuntimeError on images of shape {tuple(images.shape)}: {error}. The three "
                    f"weights, shape (3,), were lined up with the last axis, the columns (broadcasting aligns shapes "
                    f"from the right). Give them the shape (3, 1, 1), so that they line up with the channel axis "
                    f"-3 and are repeated along the rows and columns.")
        return None

    return explain


def _check_grey(fn, images, case):
    expected = reference.rgb_to_grey(images)
    got = call("rgb_to_grey", fn, images.clone(), explain=_grey_explain(images))
    compare("rgb_to_grey", got, expected, case=case, shape_hint=_grey_hint(tuple(images.shape)),
            mistakes=_grey_mistakes(images))


def rgb_to_grey(fn):
    """Visible check: a training 3 coloured in, two coloured digits as a batch, and a random 3x4x5 image."""
    d = lesson_data()
    digit = _coloured(d["train3"][0])
    pair = _coloured(torch.stack([d["train7"][0], d["train3"][1]]))
    _check_grey(fn, digit, "a coloured 3, shape (3, 28, 28)")
    _check_grey(fn, pair, "a batch of two coloured digits, shape (2, 3, 28, 28)")
    _check_grey(fn, rand(generator(0), 3, 4, 5), "a random image of shape (3, 4, 5)")
    not_hard_coded("rgb_to_grey", fn, [(digit.clone(),), (_coloured(d["train7"][0]),)])
    passed("rgb_to_grey", 3)


def rgb_to_grey_hidden(fn, seed):
    """Hidden check: random images of other sizes (one only 3 columns wide), batches of one and two batch axes,
    float64."""
    g = generator(seed)
    shapes = [((3, 6, 3), torch.float32), ((5, 3, 7, 9), torch.float32), ((2, 4, 3, 5, 6), torch.float64),
              ((1, 3, 1, 1), torch.float32), ((3, 11, 8), torch.float64)]
    for shape, dtype in shapes:
        _check_grey(fn, rand(g, *shape, dtype=dtype), f"random images of shape {shape}, {str(dtype)[6:]}")
    passed_hidden("rgb_to_grey")


# ---------------------------------------------------------------- the distance matrix, with two loops, one, none


def _matrix_mistakes(a, b):
    a64, b64 = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    diff = a64[:, None, :] - b64[None, :, :]
    squared = (diff ** 2).sum(-1)
    mistakes = [
        ("these are the *squared* distances: take the square root of the sum of squares.", squared),
        ("that is the L1 distance (the sum of the absolute differences). The Euclidean distance squares the "
         "differences, adds them up, and takes the square root.", diff.abs().sum(-1)),
        (f"these are root *mean* squared differences (the RMSE, the Euclidean distance divided by "
         f"sqrt({a64.shape[1]})): the Euclidean distance sums the squares over the pixels, it does not average "
         f"them.", (squared / a64.shape[1]).sqrt()),
    ]
    if len(a) == len(b):
        mistakes.append(("the matrix is transposed: entry [i, j] is the distance between a[i] and b[j], so row i "
                         "belongs to a[i].", squared.sqrt().T))
    return mistakes


def _matrix_hint(a, b):
    m, n = len(a), len(b)

    def hint(got, want):
        if got == (n, m):
            return ("Rows and columns are swapped: entry [i, j] is the distance between a[i] and b[j], so the "
                    "result is (len(a), len(b)).")
        if got in ((m,), (n,), (min(m, n),)):
            return ("One distance per image instead of one per *pair*: a[i] must be compared with every image of b.")
        return None

    return hint


def _matrix_explain(name, a):
    def explain(error):
        pixels = a[0].numel()
        if "784" in str(error) and pixels != 784:
            return (f"{name} raised {type(error).__name__} on images of shape {tuple(a.shape[1:])}: {error}. Is "
                    f"the image size hard-coded (784 = 28 x 28)? These images have {pixels} pixels: "
                    f"reshape(len(a), -1) lets PyTorch work the length out.")
        return None

    return explain


def _check_matrix(name, fn, a, b, case):
    expected = reference.distance_matrix(a, b)
    got = call(name, fn, a.clone(), b.clone(), explain=_matrix_explain(name, a))
    if isinstance(got, torch.Tensor) and got.is_floating_point() and bool(got.isnan().any()):
        fail(f"{name} for {case}: the result contains nan. A squared distance computed as |x|^2 - 2 x.y + |y|^2 "
             f"can come out slightly *below* zero when the numbers are rounded (for an image and itself, or two "
             f"almost identical ones), and the square root of a negative number is nan. Clamp the squared "
             f"distances at 0 (.clamp(min=0)) before the square root.")
    compare(name, got, expected, case=case, shape_hint=_matrix_hint(a, b), mistakes=_matrix_mistakes(a, b),
            rtol=1e-4, atol=_rounding(a, b))


def _rounding(a, b) -> float:
    """How far a right answer may be from the exact distances. Expanding the square, |x|^2 - 2 x.y + |y|^2, rounds
    each term to the dtype's precision: an error of about eps * |x|^2 in a squared distance, so up to about
    sqrt(eps) * |x| in a distance near 0 (an image and itself). The largest |x| is at most sqrt(pixels) * the
    largest pixel."""
    eps = torch.finfo(as_float(a, b)[0].dtype).eps
    largest = max(float(a.abs().max()), float(b.abs().max()), 1e-12) * a[0].numel() ** 0.5
    return 10 * eps ** 0.5 * largest


def _operations(name, fn, a, b) -> int:
    """How many tensor operations ``fn(a, b)`` makes (``observe``: counted where it runs)."""
    with CountOps() as counter:
        call(name, fn, a, b)
    return counter.count


def _counts(name, fn, g, sizes) -> dict:
    """The operations ``fn`` makes for random 28x28 images, {(M, N): count}."""
    return {(m, n): observe(_operations, name, fn, rand(g, m, 28, 28), rand(g, n, 28, 28)) for m, n in sizes}


def _check_loops(name, fn, g, allowed: int):
    """Fail if ``fn`` loops over more than ``allowed`` of a's and b's images (0: none; 1: one of the two)."""
    m, n = 3, 4
    counts = _counts(name, fn, g, [(m, n), (m * 5, n), (m, n * 5)])
    base = counts[m, n]
    grows = [what for what, size in (("a", (m * 5, n)), ("b", (m, n * 5))) if counts[size] > base + 4]
    if len(grows) <= allowed:
        return
    made = ", ".join(f"{c} for {s[0]} x {s[1]} images" for s, c in counts.items())
    if allowed == 0:
        fail(f"{name} made {made}: the number of operations grows with the images of "
             f"{' and '.join(grows)}, so it loops over them. Without loops, a fixed handful of tensor operations "
             f"must do every pair at once: expand |x - y|^2 into |x|^2 - 2 x.y + |y|^2, and compute each term for "
             f"all the images together.")
    fail(f"{name} made {made}: the number of operations grows with the images of both a and b, so it still has "
         f"two loops. Keep the loop over the images of a, and let broadcasting compare a[i] with every image of b "
         f"in one expression.")


def _matrix_visible(name, fn, n_loops: int | None):
    d = lesson_data()
    a, b = d["valid_all"][:5], d["train3"][:4]
    b = torch.cat([b, d["train7"][:4]])
    not_hard_coded(name, fn, [(a.clone(), b.clone()), (b.clone(), a.clone())])
    _check_matrix(name, fn, a, b, "5 validation digits and 8 training digits")
    _check_matrix(name, fn, b, a, "the same, a and b swapped")
    _check_matrix(name, fn, d["valid_all"][:30], d["valid_all"][:30],
                  "30 validation digits and themselves (the diagonal is 0)")
    if n_loops is not None:
        _check_loops(name, fn, generator(0), n_loops)


def _matrix_hidden(name, fn, seed, n_loops: int | None):
    g = generator(seed)
    cases = [((4, 5, 7), (6, 5, 7), torch.float32), ((1, 3, 3), (5, 3, 3), torch.float32),
             ((7, 2, 9), (1, 2, 9), torch.float64), ((3, 28, 28), (4, 28, 28), torch.float64),
             ((5, 1, 4), (5, 1, 4), torch.float32)]
    for a_shape, b_shape, dtype in cases:
        a, b = rand(g, *a_shape, dtype=dtype), rand(g, *b_shape, dtype=dtype)
        _check_matrix(name, fn, a, b, f"random {a_shape} and {b_shape} {str(dtype)[6:]} images")
    d = lesson_data()
    picks = torch.randperm(len(d["valid_all"]), generator=g)[:6]
    a = d["valid_all"][picks]
    b = torch.cat([d["train7"][:3], a[[4, 1]], d["train3"][:2]])
    _check_matrix(name, fn, a, b, "6 validation digits and 7 training digits, two of them the same as two of a's")
    noise = rand(g, 8, 28, 28)
    _check_matrix(name, fn, noise, noise.clone(), "8 images of random noise and themselves (the diagonal is 0)")
    if n_loops is not None:
        _check_loops(name, fn, g, n_loops)


def distances_two_loops(fn):
    """Visible check: validation digits against training digits, either way round, and against themselves."""
    _matrix_visible("distances_two_loops", fn, None)
    passed("distances_two_loops", 3)


def distances_two_loops_hidden(fn, seed):
    """Hidden check: random images of other sizes and dtypes, one image in a or b, repeated images."""
    _matrix_hidden("distances_two_loops", fn, seed, None)
    passed_hidden("distances_two_loops")


def distances_one_loop(fn):
    """Visible check: as distances_two_loops's, and at most one loop (operations grow with a's or b's images, not
    both)."""
    _matrix_visible("distances_one_loop", fn, 1)
    passed("distances_one_loop", 4)


def distances_one_loop_hidden(fn, seed):
    _matrix_hidden("distances_one_loop", fn, seed, 1)
    passed_hidden("distances_one_loop")


def distances_no_loops(fn):
    """Visible check: as distances_two_loops's, and no loop (the same number of operations for any number of
    images)."""
    _matrix_visible("distances_no_loops", fn, 0)
    passed("distances_no_loops", 4)


def distances_no_loops_hidden(fn, seed):
    _matrix_hidden("distances_no_loops", fn, seed, 0)
    passed_hidden("distances_no_loops")


# ---------------------------------------------------------------- knn_predict


def _votes(labels: torch.Tensor) -> torch.Tensor:
    """How many of each row's labels (M, k) are each class, (M, classes)."""
    return torch.nn.functional.one_hot(labels, 10).sum(1)


def _knn_mistakes(distances, train_labels, k):
    nearest = distances.topk(k, dim=1, largest=False).indices
    farthest = distances.topk(k, dim=1, largest=True).indices
    votes = _votes(train_labels[nearest])
    mistakes = [
        ("it votes among the k *largest* distances, the farthest training images: topk picks the largest "
         "unless told largest=False (or take the first k of argsort).", _votes(train_labels[farthest]).argmax(1)),
        ("these are the positions of the nearest training images, not their labels: look their labels up in "
         "train_labels.", nearest[:, 0]),
        ("a tie between two labels should go to the smallest one: argmax returns the first of equal counts.",
         9 - votes.flip(1).argmax(1)),
    ]
    if k > 1:
        mistakes.insert(0, (f"every answer is the label of the single nearest image: with k = {k} the {k} nearest "
                            f"images vote, and the label most of them have wins.", train_labels[nearest[:, 0]]))
    return mistakes


def _check_knn(fn, distances, train_labels, k, case):
    expected = reference.knn_predict(distances, train_labels, k)
    got = call("knn_predict", fn, distances.clone(), train_labels.clone(), k)
    got = _labels_of(got, expected, case)
    if bool((got == expected).all()):
        return
    votes = _votes(train_labels[distances.topk(k, dim=1, largest=False).indices])
    tied = (votes == votes.max(1, keepdim=True).values).sum(1) > 1
    wrong = got != expected
    if bool(tied[wrong].all()):
        fail(f"knn_predict for {case}, k = {k}: the answers are wrong only where two labels have as many votes: "
             f"a tie goes to the smallest label.")
    for text, wrong_answer in _knn_mistakes(distances, train_labels, k):
        if bool((got == wrong_answer).all()):
            fail(f"knn_predict for {case}, k = {k}: {text}")
    fail(f"knn_predict for {case}, k = {k}: {int(wrong.sum())} of {len(expected)} answers are wrong. Each answer "
         f"is the label that most of the row's k nearest training images (the k smallest distances) have.\n"
         f"expected: {expected.tolist()[:20]}\ngot:      {got.tolist()[:20]}")


def _labels_of(got, expected, case):
    """The student's labels as an int64 tensor of ``expected``'s shape, or a failure that says what is wrong."""
    if not isinstance(got, torch.Tensor):
        hint = " Convert it with torch.from_numpy(...)." if type(got).__module__ == "numpy" else ""
        fail(f"knn_predict for {case} should return a tensor of labels, but it returned {type(got).__name__}.{hint}")
    if tuple(got.shape) != tuple(expected.shape):
        fail(f"knn_predict for {case}: the output has shape {tuple(got.shape)}, expected {tuple(expected.shape)}: "
             f"one label for each row of distances.")
    if got.is_floating_point() and not bool((got == got.round()).all()):
        fail(f"knn_predict for {case} should return whole-number labels, not {got.tolist()[:5]}...")
    return got.long()


def knn_predict(fn):
    """Visible check: one row worked by hand for k = 1, 3, 5; a tie; and 10 validation digits against 200
    training digits, k = 1 and 5."""
    by_hand = torch.tensor([[0.3, 0.1, 0.2, 0.9, 0.4]])
    labels = torch.tensor([4, 6, 6, 4, 4])
    for k in (1, 3, 5):
        _check_knn(fn, by_hand, labels, k, "the row [0.3, 0.1, 0.2, 0.9, 0.4] with labels [4, 6, 6, 4, 4]")
    tie = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    _check_knn(fn, tie, torch.tensor([7, 2, 2, 7]), 4, "a tie: [0.1, 0.2, 0.3, 0.4] with labels [7, 2, 2, 7]")
    train_images, train_labels, valid_images, _ = lesson_split()
    train = train_images[:200].float().div_(255)
    distances = reference.distance_matrix(valid_images[:10].float().div_(255), train)
    for k in (1, 5):
        _check_knn(fn, distances, train_labels[:200].clone(), k, "10 validation digits and 200 training digits")
    passed("knn_predict", 6)


def knn_predict_hidden(fn, seed):
    """Hidden check: random distances (float32 and float64) and labels, k from 1 to every training image, ties,
    one row, labels of only two digits."""
    g = generator(seed)
    for m, n, k, dtype in [(6, 9, 1, torch.float32), (8, 15, 4, torch.float64), (1, 7, 3, torch.float32),
                           (12, 30, 7, torch.float32), (5, 6, 6, torch.float64), (10, 20, 2, torch.float32)]:
        distances = rand(g, m, n, dtype=dtype)
        labels = torch.randint(0, 10, (n,), generator=g)
        _check_knn(fn, distances, labels, k, f"random ({m}, {n}) {str(dtype)[6:]} distances")
    two = torch.tensor([3, 8])[torch.randint(0, 2, (12,), generator=g)]
    _check_knn(fn, rand(g, 9, 12), two, 5, "labels that are only 3s and 8s")
    passed_hidden("knn_predict")


# ---------------------------------------------------------------- confusion_matrix


def _confusion_hint(got, want):
    if len(got) == 2 and got[0] == got[1] and got[0] < 10:
        return ("It only has rows and columns up to the largest label seen: a digit may be missing from these "
                "labels and still has its row and column (bincount's minlength, or start from a 10x10 of zeros).")
    return None


def _check_confusion(fn, predicted, actual, case):
    expected = reference.confusion_matrix(predicted, actual)
    got = call("confusion_matrix", fn, predicted.clone(), actual.clone())
    mistakes = [("rows and columns are swapped: row i is the *actual* digit i, column j what the classifier said.",
                 expected.T)]
    per_row = expected.sum(1, keepdim=True).clamp(min=1)
    mistakes.append(("these are fractions of each row: return the counts, how many images.",
                     expected / per_row))
    mistakes.append(("these are fractions of all the images: return the counts.", expected / len(actual)))
    diagonal = torch.diag(torch.diag(expected))
    mistakes.append(("the diagonal is missing: images classified correctly count too, in row i, column i.",
                     expected - diagonal))
    compare("confusion_matrix", got, expected, case=case, shape_hint=_confusion_hint, mistakes=[
        (text, wrong) for text, wrong in mistakes if not torch.equal(wrong.double(), expected.double())])


def confusion_matrix(fn):
    """Visible check: five images worked by hand, and 300 random labels."""
    predicted = torch.tensor([3, 3, 7, 7, 1])
    actual = torch.tensor([3, 7, 7, 7, 1])
    not_hard_coded("confusion_matrix", fn, [(predicted.clone(), actual.clone()), (actual.clone(), predicted.clone())])
    _check_confusion(fn, predicted, actual, "predicted [3, 3, 7, 7, 1], actual [3, 7, 7, 7, 1]")
    g = generator(0)
    actual = torch.randint(0, 10, (300,), generator=g)
    predicted = torch.where(torch.rand(300, generator=g) < 0.7, actual, torch.randint(0, 10, (300,), generator=g))
    _check_confusion(fn, predicted, actual, "300 random labels")
    passed("confusion_matrix", 2)


def confusion_matrix_hidden(fn, seed):
    """Hidden check: other lengths, digits that never appear (9 among them), every answer right, one image."""
    g = generator(seed)
    for n, top in [(50, 10), (17, 6), (1, 10), (400, 10)]:
        actual = torch.randint(0, top, (n,), generator=g)
        predicted = torch.where(torch.rand(n, generator=g) < 0.5, actual, torch.randint(0, top, (n,), generator=g))
        _check_confusion(fn, predicted, actual, f"{n} random labels from 0 to {top - 1}")
    actual = torch.randint(0, 10, (40,), generator=g)
    _check_confusion(fn, actual.clone(), actual, "40 images, every one classified correctly")
    passed_hidden("confusion_matrix")
