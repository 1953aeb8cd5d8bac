"""Lesson 01's checks (``handwritten.checks.pixels``): what the grader fixtures do not show (stdout only, never
claiming hidden tests passed, unfinished work propagating, other errors named, odd return types explained), and
the shaded pixel table the lesson draws (headless)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from handwritten import plots
from handwritten.checks import pixels as check
from handwritten.reference import pixels as reference


@pytest.fixture(scope="module")
def data():
    return check.lesson_data()


# ---------------------------------------------------------------- plots.pixel_table


def test_pixel_table_writes_every_value_and_numbers_rows_and_columns():
    pixels = torch.tensor([[0, 128, 255], [10, 200, 30]], dtype=torch.uint8)
    fig = plots.pixel_table(pixels, "top of a digit", first_row=4, first_col=7)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["0", "128", "255", "10", "200", "30"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["7", "8", "9"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "5"]
    assert ax.get_title() == "top of a digit"
    assert ax.images[0].get_clim() == (0, 255)  # uint8: 0 is white, 255 black, whatever the slice holds


def test_pixel_table_text_stays_readable_on_dark_cells():
    fig = plots.pixel_table(torch.tensor([[0, 255]], dtype=torch.uint8))
    light, dark = fig.axes[0].texts
    assert light.get_color() == "black" and dark.get_color() == "white"


def test_pixel_table_shows_fractions_of_float_images():
    fig = plots.pixel_table(torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.00", "0.50", "0.25", "1.00"]
    assert plots.to_png(fig).startswith(b"\x89PNG")


def test_pixel_table_wants_a_matrix():
    with pytest.raises(ValueError, match="2-D"):
        plots.pixel_table(torch.zeros(2, 28, 28))


# ---------------------------------------------------------------- the checks


def is_3_reference(data):
    return functools.partial(reference.is_3, mean3=data["mean3"], mean7=data["mean7"])


def test_lesson_data_is_the_lessons_split(data):
    assert data["train3"].dtype == torch.float32 and float(data["train3"].max()) <= 1.0
    assert data["mean3"].shape == (28, 28)
    assert len(data["valid3"]) > 0 and len(data["valid7"]) > 0
    accuracy = reference.validation_accuracy(data["valid3"], data["valid7"], is_3_reference(data))
    assert 0.85 < accuracy < 1.0  # the baseline is good, not perfect


def test_checks_print_only_to_stdout(capfd):
    check.mnist_distance(reference.mnist_distance)
    check.mnist_distance_hidden(reference.mnist_distance, seed=3)
    check.numbers_grid(reference.numbers_grid)
    out, err = capfd.readouterr()
    assert "public checks passed" in out and "Hidden tests run when your work is graded" in out
    assert "mnist_distance: hidden tests passed" in out
    assert err == ""


def test_visible_checks_never_claim_hidden_tests_passed(capsys):
    check.bottom_right_doubled(reference.bottom_right_doubled)
    out = capsys.readouterr().out
    assert "public checks passed" in out and "hidden tests passed" not in out


def test_is_3_check_needs_no_mean_digits_of_its_own(data):
    """The check puts mean3, mean7 and mnist_distance in place, so a function written against the
    notebook's globals is checked even where those globals do not exist (and they are removed again)."""
    namespace = {}
    exec("def is_3(x):\n    x = x if x.is_floating_point() else x.float() / 255\n"
         "    return mnist_distance(x, mean3) < mnist_distance(x, mean7)", namespace)
    check.is_3(namespace["is_3"])
    check.is_3_hidden(namespace["is_3"], seed=5)
    assert not {"mean3", "mean7", "mnist_distance"} & set(namespace)


@pytest.mark.parametrize("call", [
    lambda fn: check.rgb_to_grey(fn),
    lambda fn: check.distances_two_loops(fn),
    lambda fn: check.distances_one_loop(fn),
    lambda fn: check.distances_no_loops_hidden(fn, seed=1),
    lambda fn: check.knn_predict(fn),
    lambda fn: check.confusion_matrix(fn),
    lambda fn: check.numbers_grid(fn),
    lambda fn: check.bottom_right_doubled(fn),
    lambda fn: check.mnist_distance(fn),
    lambda fn: check.is_3(fn),
    lambda fn: check.is_3_hidden(fn, seed=1),
    lambda fn: check.validation_accuracy(fn),
])
def test_unfinished_work_raises_not_implemented(call):
    def unfinished(*args):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        call(unfinished)


def test_numpy_distance_gets_a_clear_message():
    with pytest.raises(AssertionError, match="torch.from_numpy"):
        check.mnist_distance(lambda a, b: (a - b).abs().mean((-1, -2)).numpy())


def test_is_3_returning_distances_is_explained(data):
    namespace = {}
    exec("def is_3(x):\n    return mnist_distance(x, mean3) - mnist_distance(x, mean7)", namespace)
    with pytest.raises(AssertionError, match="True or False"):
        check.is_3(namespace["is_3"])


def test_is_3_may_answer_with_zeros_and_ones(data):
    namespace = {}
    exec("def is_3(x):\n    x = x if x.is_floating_point() else x.float() / 255\n"
         "    return (mnist_distance(x, mean3) < mnist_distance(x, mean7)).long()", namespace)
    check.is_3(namespace["is_3"])


@pytest.mark.parametrize("answer,fragment", [
    ("lambda threes, sevens: 100 * REF(threes, sevens)", "percentage"),
    ("lambda threes, sevens: 1 - REF(threes, sevens)", "error rate"),
    ("lambda threes, sevens: torch.tensor([REF(threes, sevens)] * 2)", "one number"),
    ("lambda threes, sevens: (~is_3(sevens)).float().mean()", "only the 7s"),
])
def test_accuracy_mistakes_are_named(data, answer, fragment):
    baseline = is_3_reference(data)
    namespace = {"torch": torch, "REF": lambda t, s: reference.validation_accuracy(t, s, baseline)}
    fn = eval(answer, namespace)
    with pytest.raises(AssertionError, match=fragment):
        check.validation_accuracy(fn)


def test_accuracy_as_a_numpy_number_is_fine(data):
    baseline = is_3_reference(data)
    check.validation_accuracy(lambda t, s: np.float64(reference.validation_accuracy(t, s, baseline)))


def test_every_visible_check_has_a_hidden_one():
    visible = [name for name in check.__all__ if not name.endswith("_hidden") and name != "lesson_data"]
    assert sorted(visible) == ["bottom_right_doubled", "confusion_matrix", "distances_no_loops", "distances_one_loop",
                               "distances_two_loops", "is_3", "knn_predict", "mnist_distance", "numbers_grid",
                               "rgb_to_grey", "validation_accuracy"]
    assert all(f"{name}_hidden" in check.__all__ for name in visible)


def test_lesson_data_is_new_every_time(data):
    """Student code may change what it is given: one check's inputs never leak into the next."""
    first = check.lesson_data()
    first["valid3"].zero_()
    first["mean3"].zero_()
    again = check.lesson_data()
    assert torch.equal(again["valid3"], data["valid3"]) and float(again["mean3"].sum()) > 0


def test_lesson_data_holds_the_digits_it_names(data):
    """The lesson's split: validation digits carved from the training split, as the notebook carves them; the
    ideal digits averaged from what is left; the test split untouched."""
    from handwritten.data import load_mnist, split_validation

    mnist = load_mnist(quiet=True)
    train_images, train_labels, valid_images, valid_labels = split_validation(
        mnist.train_images, mnist.train_labels, fraction=1 / 6, seed=0)
    threes = train_images[train_labels == 3].float() / 255
    assert torch.equal(data["mean3"], threes.mean(0))
    assert len(data["valid7"]) == int((valid_labels == 7).sum())
    assert len(data["valid_all"]) == len(valid_images) == len(data["valid_all_uint8"])
    assert torch.equal(data["valid_all_uint8"], valid_images) and data["valid_all_uint8"].dtype == torch.uint8
    assert len(train_images) + len(valid_images) == len(mnist.train_images)


def test_an_error_in_student_code_fails_the_check_and_names_it():
    with pytest.raises(AssertionError, match=r"numbers_grid\(3\) raised ZeroDivisionError"):
        check.numbers_grid(lambda n: 1 / 0)


def test_is_3_failing_on_one_image_is_not_blamed_on_batches():
    namespace = {}
    exec("def is_3(x):\n    return x.item() > 0", namespace)
    with pytest.raises(AssertionError, match="is_3 for a single validation 3 raised RuntimeError"):
        check.is_3(namespace["is_3"])



# ---------------------------------------------------------------- colour, the distance matrix, k-NN


def test_is_3_without_scaling_is_told_about_images_as_stored():
    namespace = {}
    exec("def is_3(x):\n    return mnist_distance(x.float(), mean3) < mnist_distance(x.float(), mean7)", namespace)
    with pytest.raises(AssertionError, match="as the dataset stores them"):
        check.is_3(namespace["is_3"])


def test_rgb_to_grey_matches_pillow_within_its_rounding():
    import PIL.Image

    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (6, 7, 3), generator=g, dtype=torch.uint8)
    pillow = torch.from_numpy(np.array(PIL.Image.fromarray(rgb.numpy()).convert("L"))).double()
    ours = reference.rgb_to_grey(rgb.permute(2, 0, 1).double())
    assert float((ours - pillow).abs().max()) <= 0.5 + 1e-9


def test_the_three_distance_checks_tell_the_loops_apart():
    """The operation counts: two loops grow with both a and b, one loop with one of them, none with neither."""
    def two_loops(a, b):
        return torch.stack([torch.stack([((x - y) ** 2).sum().sqrt() for y in b]) for x in a])

    def one_loop_over_b(a, b):
        return torch.stack([((a - y) ** 2).sum((-1, -2)).sqrt() for y in b], dim=1)

    check.distances_two_loops(two_loops)
    check.distances_one_loop(one_loop_over_b)  # a loop over b's images is one loop too
    with pytest.raises(AssertionError, match="still has two loops"):
        check.distances_one_loop(two_loops)
    with pytest.raises(AssertionError, match="loops over them"):
        check.distances_no_loops(one_loop_over_b)


def test_distances_as_float64_from_float32_images_pass():
    check.distances_no_loops_hidden(lambda a, b: reference.distance_matrix(a.double(), b.double()), seed=2)


def test_knn_predict_names_a_tie_broken_the_wrong_way():
    def largest_label_wins(distances, train_labels, k):
        votes = torch.nn.functional.one_hot(train_labels[distances.topk(k, largest=False).indices], 10).sum(1)
        return 9 - votes.flip(1).argmax(1)

    with pytest.raises(AssertionError, match="smallest label"):
        check.knn_predict(largest_label_wins)


def test_knn_predict_may_return_labels_as_a_float_tensor():
    check.knn_predict(lambda d, labels, k: reference.knn_predict(d, labels, k).double())


def test_confusion_matrix_as_floats_is_fine_but_fractions_are_not():
    check.confusion_matrix(lambda p, a: reference.confusion_matrix(p, a).float())
    with pytest.raises(AssertionError, match="fractions of all the images"):
        check.confusion_matrix(lambda p, a: reference.confusion_matrix(p, a) / len(a))


def test_lesson_data_never_reads_the_test_split(monkeypatch):
    from handwritten import data as data_module

    mnist = data_module.load_mnist(quiet=True)
    poisoned = dataclasses.replace(mnist, test_images=None, test_labels=None)
    monkeypatch.setattr(data_module, "load_mnist", lambda quiet=True: poisoned)
    found = check.lesson_data()  # would fail on None if it touched the test split
    assert len(found["valid_all"]) > 0
