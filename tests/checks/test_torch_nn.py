"""Lesson 03's checks (``handwritten.checks.torch_nn``): what the grader fixtures do not show. The course's own
answers pass every check, visible and hidden, printing one line each; unfinished work propagates; errors in
student code fail the check that ran it, by name, with the exercise's hint; hard-coded answers, loaders that
break and chatty code are told apart. (tests/test_checks.py runs the fixtures; the trained-model checks are
there too.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import optim
from torch.utils.data import DataLoader

from handwritten.checks import torch_nn as check
from handwritten.reference import torch_nn as reference

ANSWERS = {  # each visible check and the course's answer it must pass
    "log_softmax": reference.log_softmax,
    "nll": reference.nll,
    "accuracy": reference.accuracy,
    "loss_batch": reference.loss_batch,
    "fit": reference.fit,
    "get_data": reference.get_data,
    "cross_entropy_grad": reference.cross_entropy_grad,
    "train_epoch": reference.train_epoch,
    "choose_epochs": reference.choose_epochs,
}


def train_model(model, train_ds, valid_ds, epochs, bs, lr):
    train_dl, valid_dl = reference.get_data(train_ds, valid_ds, bs)
    return reference.fit(epochs, model, F.cross_entropy, optim.SGD(model.parameters(), lr=lr), train_dl, valid_dl)



def student(source: str) -> dict:
    namespace: dict = {"torch": torch, "F": F, "DataLoader": DataLoader}
    exec(source, namespace)
    return namespace


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_course_answers_pass_visible_and_hidden(name, capfd):
    getattr(check, name)(ANSWERS[name])
    getattr(check, f"{name}_hidden")(ANSWERS[name], seed=5)
    out, err = capfd.readouterr()
    out = out.splitlines()
    assert len(out) == 2 and "public checks passed" in out[0] and "hidden tests passed" not in out[0]
    assert out[1] == f"✓ {name}: hidden tests passed." and err == ""


@pytest.mark.parametrize("name", ["log_softmax", "nll_hidden", "accuracy", "loss_batch", "fit_hidden", "get_data",
                                  "trained_model"])
def test_unfinished_work_raises_not_implemented(name):
    def unfinished(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        getattr(check, name)(unfinished, **({"seed": 1} if name.endswith("_hidden") else {}))


def test_an_error_names_the_exercise_once_with_its_hint():
    no_keepdim = student("def log_softmax(x):\n    return x - x.logsumexp(-1)")["log_softmax"]
    with pytest.raises(AssertionError) as raised:
        check.log_softmax(no_keepdim)
    message = str(raised.value)
    assert message.startswith("log_softmax raised RuntimeError: The size of tensor a (10) must match")
    assert message.count(" raised ") == 1 and "Hint: work along the last dimension" in message


@pytest.mark.parametrize("name,answer", [
    ("log_softmax", "def log_softmax(x):\n    return torch.full((4, 10), -2.302585)"),
    ("nll", "def nll(input, target):\n    return torch.tensor(2.3, requires_grad=True)"),
    ("accuracy", "def accuracy(out, yb):\n    return 0.7"),
])
def test_a_hard_coded_answer_is_named(name, answer):
    with pytest.raises(AssertionError, match="is the answer hard-coded"):
        getattr(check, name)(student(answer)[name])


def test_accuracy_that_is_not_a_number_is_named():
    with pytest.raises(AssertionError, match="^accuracy: the accuracy should be a number, got"):
        check.accuracy(student("def accuracy(out, yb):\n    return 'seven in ten'")["accuracy"])


def test_loss_batch_backward_under_no_grad_gets_the_exercises_hint_not_the_generic_advice():
    always_backward = student("def loss_batch(model, loss_func, xb, yb, opt=None):\n"
                              "    loss = loss_func(model(xb), yb)\n    loss.backward()\n"
                              "    return loss.item(), len(xb)")["loss_batch"]
    with pytest.raises(AssertionError) as raised:
        check.loss_batch(always_backward)
    message = str(raised.value)
    assert message.startswith("loss_batch raised RuntimeError: element 0 of tensors does not require grad")
    assert "Hint: with opt=None, only compute the loss" in message
    assert "not connected to the parameters" not in message   # the advice for a loss cut from its model misleads here


def test_get_data_names_a_loader_that_breaks_when_iterated():
    broken = student("class Broken:\n    def __iter__(self):\n        raise ValueError('no batches today')\n"
                     "def get_data(train_ds, valid_ds, bs):\n"
                     "    return Broken(), DataLoader(valid_ds, batch_size=2 * bs)")["get_data"]
    with pytest.raises(AssertionError, match="^get_data for 100 training and 45 validation images, bs = 10: "
                                             "iterating the training loader raised ValueError: no batches today$"):
        check.get_data(broken)


def test_a_fit_with_a_progress_bar_and_prints_passes_silently(capfd):
    chatty = student("import sys\nfrom tqdm.auto import tqdm\n"
                     "def fit(epochs, model, loss_func, opt, train_dl, valid_dl):\n"
                     "    history = []\n"
                     "    for epoch in tqdm(range(epochs)):\n"
                     "        print('epoch', epoch, file=sys.stderr)\n"
                     "        history += reference_fit(1, model, loss_func, opt, train_dl, valid_dl)\n"
                     "    return history")
    chatty["reference_fit"] = reference.fit
    check.fit(chatty["fit"])
    out, err = capfd.readouterr()
    assert err == "" and out.splitlines() == ["✓ fit: 2 public checks passed. Hidden tests run when your work is "
                                              "graded."]


def test_trained_model_passes_the_course_answer_and_reports_its_accuracy(capsys):
    check.trained_model(train_model)
    out = capsys.readouterr().out
    assert out.startswith("validation accuracy 0.853 (threshold 0.6).\n")   # the bundled sample, seed 0
    check.trained_model_hidden(train_model, seed=5)
    assert capsys.readouterr().out == "✓ train_model: hidden tests passed.\n"


def test_a_train_model_that_returns_no_history_fails_after_training():
    def forgets_the_history(model, train_ds, valid_ds, epochs, bs, lr):
        train_model(model, train_ds, valid_ds, epochs, bs, lr)

    with pytest.raises(AssertionError, match=r"one entry per epoch: epochs = 1 here, so 1 entries; got None"):
        check.trained_model(forgets_the_history)
