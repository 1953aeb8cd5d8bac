"""Lesson 02's checks (``handwritten.checks.sgd``): what the grader fixtures do not show (the course's answers pass,
stdout only, the success lines, unfinished work propagating, other errors named, student code reached only
through the seam, the data the training checks use)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handwritten.checks import _core
from handwritten.checks import sgd as check
from handwritten.reference import sgd as reference


def train_simple_net(train_dl, valid_dl, epochs):
    model = nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1))
    return model, reference.train_model(model, torch.optim.SGD(model.parameters(), lr=0.1), train_dl, valid_dl,
                                        epochs)


ANSWERS = {"apply_step": reference.apply_step, "mnist_loss": reference.mnist_loss,
           "batch_accuracy": reference.batch_accuracy, "basic_optim": reference.BasicOptim,
           "linear_model": reference.train_model, "simple_net": train_simple_net,
           "finite_difference": reference.finite_difference, "quadratic_gradient": reference.quadratic_gradient,
           "mnist_loss_gradient": reference.mnist_loss_gradient, "validate_epoch": reference.validate_epoch,
           "training_record": reference.train_model}


@pytest.fixture
def graded(monkeypatch):
    """As nbgrader grades: the training checks train on their 1,000-image subset."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")


def test_every_visible_check_has_a_hidden_one():
    visible = [name for name in check.__all__ if not name.endswith("_hidden") and name != "training_data"]
    assert sorted(visible) == sorted(ANSWERS)
    assert all(f"{name}_hidden" in check.__all__ for name in visible)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_courses_answers_pass_and_say_so_on_stdout_only(name, graded, capfd):
    getattr(check, name)(ANSWERS[name])
    getattr(check, f"{name}_hidden")(ANSWERS[name], seed=11)
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and err == ""
    assert lines[0].endswith("public checks passed. Hidden tests run when your work is graded.")
    assert lines[1].endswith(": hidden tests passed.") and "public" not in lines[1]


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_unfinished_work_raises_not_implemented(name, graded):
    def unfinished(*args):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        getattr(check, name)(unfinished)


def test_an_error_in_student_code_fails_the_check_and_names_it():
    with pytest.raises(AssertionError, match="batch_accuracy raised ZeroDivisionError"):
        check.batch_accuracy(lambda xb, yb: 1 / 0)


def test_what_student_code_prints_is_not_shown(capfd):
    def chatty(predictions, targets):
        print("debugging the loss")
        return reference.mnist_loss(predictions, targets)

    check.mnist_loss_hidden(chatty, seed=7)
    out, err = capfd.readouterr()
    assert out == "✓ mnist_loss: hidden tests passed.\n" and err == ""


def test_an_accuracy_returned_as_a_python_number_is_fine():
    check.batch_accuracy(lambda xb, yb: reference.batch_accuracy(xb, yb).item())


def test_train_model_must_return_the_accuracies():
    def train_model(model, opt, train_dl, valid_dl, epochs):
        reference.train_model(model, opt, train_dl, valid_dl, epochs)

    check.linear_model(train_model)  # it trains: the training test passes
    with pytest.raises(AssertionError, match="return the list of validation accuracies, one per epoch, not None"):
        check.training_record(train_model)


def test_simple_net_must_return_one_accuracy_per_epoch(graded):
    def short(train_dl, valid_dl, epochs):
        model, accuracies = train_simple_net(train_dl, valid_dl, epochs)
        return model, accuracies[:1]

    with pytest.raises(AssertionError, match=f"should return the {check.NET_EPOCHS} validation accuracies"):
        check.simple_net(short)


def test_a_students_network_runs_only_inside_the_seam(graded):
    seen = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1))

        def forward(self, x):
            seen.append(_core.in_student_code())
            return self.layers(x)

    def train_simple_net_of_my_own(train_dl, valid_dl, epochs):
        model = Net()
        return model, reference.train_model(model, reference.BasicOptim(model.parameters(), 0.5), train_dl,
                                            valid_dl, epochs)

    check.simple_net(train_simple_net_of_my_own)
    assert seen and all(seen)  # trained, then probed for its shape, linearity and accuracy: always through call


def test_training_data_is_the_3s_and_7s_of_the_lessons_split_with_a_subset_while_graded():
    from handwritten.data import load_mnist, split_validation

    mnist = load_mnist(quiet=True)
    train_images, train_labels, valid_images, valid_labels = split_validation(mnist.train_images, mnist.train_labels)
    x, y, vx, vy = check.training_data(graded=False)
    n3, n7 = int((train_labels == 3).sum()), int((train_labels == 7).sum())
    assert x.dtype == torch.uint8 and x.shape == (n3 + n7, 28 * 28)   # TensorBatches scales each batch
    assert y.shape == (n3 + n7, 1) and int(y.sum()) == n3               # 1 for a 3
    assert torch.equal(x[0], train_images[train_labels == 3][0].flatten())
    assert torch.equal(x[-1], train_images[train_labels == 7][-1].flatten())
    # the validation digits are the lesson's, carved from the training split: never the test split
    assert vx.dtype == torch.float32 and float(vx.max()) == 1.0 and int(vy.sum()) == int((valid_labels == 3).sum())
    assert torch.equal(vx[0], valid_images[valid_labels == 3][0].flatten().float() / 255)
    assert len(vx) == int((valid_labels == 3).sum() + (valid_labels == 7).sum())
    small, small_y, _, flipped = check.training_data(graded=True, flip=True)
    assert len(small) == min(check.GRADING_SUBSET, n3 + n7)
    assert torch.equal(flipped, 1 - vy) and 0 < int(small_y.sum()) < len(small)
