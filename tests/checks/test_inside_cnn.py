"""Lesson 06's checks (handwritten.checks.inside_cnn): the course's answers pass them, and the mistakes they are
there to catch fail them with the message that names the mistake. (tests/test_checks.py runs the notebook's test
cells on the lesson's fixtures; these test the checks one by one, including what only a hidden check catches.)"""

from __future__ import annotations

import dataclasses
import re

import nbformat
import pytest
import torch

from handwritten.checks import inside_cnn as check
from handwritten.models import ConvNet
from handwritten.reference import inside_cnn as reference

from conftest import ROOT


def _shift_left(img, w):
    return reference.shift_image(img, w, "left")


def _shift_left_looping_over_images(img, w):
    """Vectorised over rows and columns, but one step per image of a batch."""
    if img.ndim < 4:
        return _shift_left(img, w)
    return torch.stack([_shift_left(image, w) for image in img])


@pytest.mark.parametrize("name,answer", [
    ("split_test_set", reference.split_test_set), ("rightness", reference.rightness),
    ("predict_one_by_one", reference.predict_one_by_one), ("convnet", ConvNet), ("features", ConvNet),
    ("shift_left", _shift_left), ("shift_left_vectorised", _shift_left),
    ("confusion_matrix", reference.confusion_matrix), ("most_confused", reference.most_confused),
    ("random_shift", reference.random_shift),
])
def test_the_course_answers_pass_the_visible_and_the_hidden_check(name, answer, capsys):
    getattr(check, name)(answer)
    getattr(check, f"{name}_hidden")(answer, seed=3)
    out = capsys.readouterr().out
    assert "public checks passed" in out and "hidden tests passed" in out


def test_every_visible_check_the_notebook_calls_has_a_hidden_one_it_calls_too():
    notebook = nbformat.read(ROOT / "solutions" / "06-inside-a-cnn" / "06-inside-a-cnn.ipynb", as_version=4)
    called = {name for cell in notebook.cells if cell.cell_type == "code"
              for name in re.findall(r"\bcheck\.(\w+)\(", cell.source)}
    visible = {name for name in called if not name.endswith("_hidden")}
    assert len(visible) == 12 and {f"{name}_hidden" for name in visible} == called - visible
    assert called <= set(check.__all__)


def test_rightness_names_an_accuracy_returned_instead_of_counts():
    def accuracy(predictions, labels):
        return (predictions.argmax(1) == labels).float().mean(), len(labels)

    with pytest.raises(AssertionError, match="not an accuracy"):
        check.rightness(accuracy)


def test_an_error_in_student_code_names_the_exercise_and_the_hint():
    def over_the_batch(predictions, labels):
        pred = predictions.argmax(0)
        return (pred == labels.view_as(pred)).sum(), len(labels)

    with pytest.raises(AssertionError, match=r"rightness raised RuntimeError(.|\n)*dim 0"):
        check.rightness_hidden(over_the_batch, seed=1989)


def test_only_the_hidden_vectorised_check_catches_a_loop_over_the_images_of_a_batch(capsys):
    check.shift_left_vectorised(_shift_left_looping_over_images)
    assert "public checks passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="loops over rows, columns or the images of a batch"):
        check.shift_left_vectorised_hidden(_shift_left_looping_over_images, seed=1971)


def test_the_visible_vectorised_check_catches_the_notes_double_loop():
    def double_loop(img, w):
        out = torch.zeros_like(img)
        for i in range(img.shape[-2]):
            for j in range(img.shape[-1] - w):
                out[..., i, j] = img[..., i, j + w]
        return out

    with pytest.raises(AssertionError, match="28x28 image and .* for a 3x40x56 one: it loops over rows or columns"):
        check.shift_left_vectorised(double_loop)


def test_the_graded_run_is_shorter_than_the_self_check(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert check.visible_run() is check.VISIBLE
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert check.visible_run() is check.VISIBLE_GRADED
    assert check.VISIBLE_GRADED.n_train * check.VISIBLE_GRADED.epochs < check.VISIBLE.n_train // 3
    assert check.VISIBLE.case() == "one epoch of 8,000 digits, record_every=25"
    assert check.HIDDEN.case(record=False) == "two epochs of 1,056 other digits"


@pytest.mark.parametrize("config", [check.VISIBLE_GRADED, check.HIDDEN])
def test_the_graded_runs_record_at_their_last_batch(config):
    assert (config.batches - 1) % config.record_every == 0


# A run small enough for a unit test: the checks' logic, not their thresholds (those are measured in the module).
TINY = dataclasses.replace(check.HIDDEN, n_train=96, record_every=2, threshold=1.0, n_val=50)


def _train_without(line):
    """The course's train with one line of its statement broken (or none, for "nothing")."""
    def error(counts):
        right, total = sum(int(r) for r, _ in counts), sum(n for _, n in counts)
        return 100 - 100 * right / total

    def train(net, train_loader, validation_loader, epochs=1, lr=0.05, record_every=20):
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        record, weights, seen = [], [], []
        for _ in range(1 if line == "epochs" else epochs):
            if line != "per epoch":
                seen = []
            for batch_idx, (data, target) in enumerate(train_loader):
                if line != "train mode" or not batch_idx:
                    net.train()
                output = net(data)
                loss = torch.nn.functional.nll_loss(output, target)
                optimizer.zero_grad()
                loss.backward()
                if line != "step":
                    optimizer.step()
                seen.append(reference.rightness(output, target))
                if batch_idx % record_every == 0:
                    if line != "eval":
                        net.eval()
                    with torch.set_grad_enabled(line == "no_grad"):
                        checked = [reference.rightness(net(x), y) for x, y in validation_loader]
                    record.append((torch.tensor(error(seen)) if line == "tensor" else error(seen), error(checked)))
                    weights.append([p.detach() if line == "clone" else p.detach().clone()
                                    for p in (net.conv1.weight, net.conv1.bias, net.conv2.weight, net.conv2.bias)])
        return record, weights
    return train


@pytest.mark.parametrize("train", [reference.train, _train_without("nothing")], ids=["course", "in-test"])
def test_snapshots_hidden_passes_a_right_train(monkeypatch, capsys, train):
    monkeypatch.setattr(check, "HIDDEN", TINY)
    check.snapshots_hidden(train, seed=1)
    assert "✓ train: record and snapshots: hidden tests passed." in capsys.readouterr().out


def test_snapshots_hidden_wants_the_loaders_it_was_given(monkeypatch):
    """A train that validates on a loader of its own (the notebook's global, say) loses the test."""
    monkeypatch.setattr(check, "HIDDEN", TINY)
    train = _train_without("nothing")
    own = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(20, 1, 28, 28),
                                                                     torch.randint(0, 10, (20,))), batch_size=10)
    with pytest.raises(AssertionError, match="validation_loader it was given"):
        check.snapshots_hidden(lambda net, tl, vl, **kw: train(net, tl, own, **kw), seed=1)


@pytest.mark.parametrize("line,fragment", [
    ("epochs", "epoch(s)"), ("clone", "clone()"), ("eval", "net.eval()"), ("no_grad", "torch.no_grad()"),
    ("train mode", "net.train()"), ("per epoch", "start counting again at each epoch"),
    ("tensor", "plain number")])
def test_snapshots_hidden_names_the_mistake(monkeypatch, line, fragment):
    monkeypatch.setattr(check, "HIDDEN", TINY)
    with pytest.raises(AssertionError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check.snapshots_hidden(_train_without(line), seed=1)


def test_trained_hidden_says_when_the_weights_never_moved(monkeypatch):
    monkeypatch.setattr(check, "HIDDEN", TINY)
    with pytest.raises(AssertionError, match="The weights did not change at all"):
        check.trained_hidden(_train_without("step"), seed=1)
