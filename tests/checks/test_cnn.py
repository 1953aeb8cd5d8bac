"""Lesson 05's checks (``handwritten.checks.cnn``): what the grader fixtures do not show. The course's own
answers pass every check, visible and hidden, printing one line each; unfinished work propagates; the hidden
check of the table of shapes catches what the visible one lets through; a LeNet whose forward fails is reported
after the shapes it got right; evaluation with gradients on, a loader without a length and chatty code are told
apart; train_fast trains less while graded. (tests/test_checks.py runs the fixtures.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from handwritten import models
from handwritten.checks import cnn as check
from handwritten.reference import cnn as reference

ANSWERS = {  # each visible check, the course's answer it must pass, and what its success lines call it
    "lambda_layer": (reference.Lambda, "Lambda: 3"),
    "preprocess": (reference.preprocess, "preprocess: 1"),
    "wrapped": (reference.WrappedDataLoader, "WrappedDataLoader: 2"),
    "lenet": (models.LeNet, "LeNet: 3"),
    "lenet_shapes": (reference.lenet_shapes, "the table of LeNet's shapes: 8"),
    "evaluate_accuracy": (reference.evaluate_accuracy, "evaluate_accuracy: 3"),
    "layer_shapes": (reference.layer_shapes, "layer_shapes: 2"),
    "batch_norm": (reference.BatchNorm, "BatchNorm: 3"),
    "train_fast_record": (reference.train_fast, "train_fast's record: 1"),
}


def student(source: str) -> dict:
    namespace: dict = {"torch": torch, "nn": nn}
    exec(source, namespace)
    return namespace


def test_the_course_answers_pass_every_check_visible_and_hidden_with_one_line_each(capfd):
    for name, (answer, _) in ANSWERS.items():
        getattr(check, name)(answer)
        getattr(check, f"{name}_hidden")(answer, seed=5)
    out, err = capfd.readouterr()
    lines = []
    for _, said in ANSWERS.values():
        what, count = said.rsplit(": ", 1)
        lines += [f"✓ {what}: {count} public checks passed. Hidden tests run when your work is graded.",
                  f"✓ {what}: hidden tests passed."]
    assert out.splitlines() == lines and err == ""


def test_unfinished_work_raises_not_implemented():
    def unfinished(*args, **kwargs):
        raise NotImplementedError()

    for run in (check.lambda_layer, check.wrapped, check.evaluate_accuracy, check.trained, check.layer_shapes,
                check.batch_norm, check.train_fast_record):
        with pytest.raises(NotImplementedError):
            run(unfinished)
    with pytest.raises(NotImplementedError):
        check.challenge(unfinished, unfinished)
    for run in (check.preprocess_hidden, check.lenet_hidden, check.lenet_shapes_hidden, check.trained_hidden,
                check.layer_shapes_hidden, check.batch_norm_hidden, check.train_fast_record_hidden):
        with pytest.raises(NotImplementedError):
            run(unfinished, seed=1)


# ---------------------------------------------------------------- the table of shapes


def halved_with_a_slash():
    n = 28 + 2 * 2 - 5 + 1
    table = {"conv1": (6, n, n), "pool1": (6, n / 2, n / 2)}
    n = n / 2 - 5 + 1
    table.update(conv2=(16, n, n), pool2=(16, n / 2, n / 2), flatten=(16 * n / 2 * n / 2,), fc1=(120,), fc2=(84,),
                 fc3=(10,))
    return table


def test_the_visible_check_reads_floats_as_whole_numbers_and_the_hidden_one_does_not(capsys):
    check.lenet_shapes(halved_with_a_slash)     # pool1 is (6, 14.0, 14.0): the right sizes, as floats
    assert "public checks passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"pool1 is \(6, 14\.0, 14\.0\): a shape is made of whole numbers .* "
                                             r"use // \(28 // 2 = 14\)"):
        check.lenet_shapes_hidden(halved_with_a_slash, seed=5)


def test_the_hidden_table_check_accepts_what_the_visible_one_accepts():
    def with_the_batch_dimension():
        return {key: (1, *shape) for key, shape in reference.lenet_shapes().items()}

    def as_sizes():
        return {key: torch.Size(shape) for key, shape in reference.lenet_shapes().items()}

    for table in (with_the_batch_dimension, as_sizes):
        check.lenet_shapes(table)
        check.lenet_shapes_hidden(table, seed=5)


def test_the_hidden_table_check_names_the_network_and_batch_it_measured():
    def without_padding():
        return {**reference.lenet_shapes(), "conv1": (6, 24, 24)}

    with pytest.raises(AssertionError, match=r"conv1 is \(6, 28, 28\), not \(6, 24, 24\) \(LeNet with sigmoid and "
                                             r"average pooling, a batch of \d+ digits\)"):
        check.lenet_shapes_hidden(without_padding, seed=5)


# ---------------------------------------------------------------- LeNet


def test_a_lenet_whose_forward_fails_is_reported_after_the_layers_it_got_right():
    wrong_dense = student(
        "def LeNet():\n"
        "    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),\n"
        "                         nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),\n"
        "                         nn.Linear(16 * 4 * 4, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),\n"
        "                         nn.Linear(84, 10))")["LeNet"]
    with pytest.raises(AssertionError, match=r"^LeNet on a batch of 1 images of 1×28×28 raised RuntimeError: "
                                             r"mat1 and mat2 shapes cannot be multiplied"):
        check.lenet(wrong_dense)


# ---------------------------------------------------------------- evaluate_accuracy and WrappedDataLoader


def test_evaluate_accuracy_with_gradients_on_is_named():
    with_gradients = student(
        "def evaluate_accuracy(net, data_iter):\n"
        "    net.eval()\n"
        "    right = total = 0\n"
        "    for X, y in data_iter:\n"
        "        right += int((net(X).argmax(dim=1) == y).sum())\n"
        "        total += len(y)\n"
        "    return right / total")["evaluate_accuracy"]
    with pytest.raises(AssertionError, match="gradients were recorded. Evaluate under torch.no_grad"):
        check.evaluate_accuracy(with_gradients)


def test_evaluate_accuracy_with_a_progress_bar_passes_silently(capfd):
    with_a_bar = student(
        "from tqdm.auto import tqdm\n"
        "def evaluate_accuracy(net, data_iter):\n"
        "    net.eval()\n"
        "    right = total = 0\n"
        "    with torch.no_grad():\n"
        "        for X, y in tqdm(data_iter):\n"
        "            right += int((net(X).argmax(dim=1) == y).sum())\n"
        "            total += len(y)\n"
        "    return right / total")["evaluate_accuracy"]
    check.evaluate_accuracy(with_a_bar)
    out, err = capfd.readouterr()
    assert err == "" and out.count("✓") == 1


def test_a_wrapped_loader_without_a_length_is_named():
    no_len = student("class WrappedDataLoader:\n"
                     "    def __init__(self, dl, func):\n        self.dl, self.func = dl, func\n"
                     "    def __iter__(self):\n        return (self.func(*b) for b in self.dl)")["WrappedDataLoader"]
    with pytest.raises(AssertionError, match=r"^len\(WrappedDataLoader\(...\)\) raised TypeError: .*\nHint: "
                                             r"WrappedDataLoader\(dl, func\) keeps both; __len__ returns"):
        check.wrapped(no_len)


# ---------------------------------------------------------------- train_fast


def test_train_fast_trains_less_while_graded(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    check.trained(reference.train_fast)
    out = capsys.readouterr().out
    accuracy = float(out.split("validation accuracy ")[1].split()[0])
    assert check.THRESHOLD + 0.1 < accuracy < 0.94     # 750 digits for 2 epochs: trained, but not as well as 6,666
    check.trained_hidden(reference.train_fast, seed=5)
    assert capsys.readouterr().out == "✓ train_fast: hidden tests passed.\n"


def floor_steps(net, x, y, epochs, batch_size, max_lr):
    """total_steps = epochs * (len(x) // batch_size): OneCycleLR raises at the last, smaller batch."""
    opt = torch.optim.Adam(net.parameters(), lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * (len(x) // batch_size))
    for _ in range(epochs):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            F.cross_entropy(net(xb), yb).backward()
            opt.step()
            scheduler.step()


def test_train_fast_that_forgets_the_last_batch_in_total_steps_is_explained():
    with pytest.raises(AssertionError) as raised:
        check.trained_hidden(floor_steps, seed=1)
    message = str(raised.value)
    assert message.startswith("train_fast for LeNet with ReLU and average pooling, 700 digits for 2 epochs")
    assert "math.ceil(700 / 16) = 44 batches per epoch, the last one smaller: count it in total_steps." in message
    assert "train_fast raised ValueError: Tried to step" in message
