"""Lesson 03's answers (``handwritten.reference.torch_nn``), against values worked out by hand and against the
loops they replace: the checks of lesson 03 and ``handwritten.train`` stand on them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from handwritten.reference import torch_nn as reference


def test_log_softmax_is_finite_for_large_scores_and_sums_to_one_along_the_last_dimension():
    x = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0]])
    got = reference.log_softmax(x)
    # a shift changes no probability: both rows are log(e^0, e^1, e^2) - log(1 + e + e²)
    row = [v - math.log(1 + math.e + math.e ** 2) for v in (0.0, 1.0, 2.0)]
    assert got.tolist() == [pytest.approx(row, abs=1e-6)] * 2
    assert torch.allclose(reference.log_softmax(torch.randn(3, 4, 5)).exp().sum(-1), torch.ones(3, 4))


def test_nll_is_minus_the_mean_of_each_rows_log_probability_at_its_target():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    assert reference.nll(logp, torch.tensor([0, 1])).item() == pytest.approx(-(math.log(0.5) + math.log(0.8)) / 2)


def test_accuracy_compares_the_argmax_over_the_classes_with_the_labels():
    out = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert reference.accuracy(out, torch.tensor([1, 0, 0, 0])).item() == 0.75
    assert reference.HISTORY_KEYS == ("train_loss", "valid_loss", "valid_accuracy")


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def _batch(seed=0, n=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_loss_batch_without_an_optimiser_only_measures():
    model, (xb, yb) = _model(), _batch()
    before = [p.detach().clone() for p in model.parameters()]
    loss, n = reference.loss_batch(model, F.cross_entropy, xb, yb)
    assert isinstance(loss, float) and n == 10
    assert loss == pytest.approx(F.cross_entropy(model(xb), yb).item())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())


def test_loss_batch_with_an_optimiser_takes_one_step_and_zeroes_the_gradients():
    model, (xb, yb) = _model(), _batch()
    by_hand = _model()
    F.cross_entropy(by_hand(xb), yb).backward()
    with torch.no_grad():
        for p in by_hand.parameters():
            p -= 0.1 * p.grad
    opt = optim.SGD(model.parameters(), lr=0.1)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loss, _ = reference.loss_batch(model, F.cross_entropy, xb, yb, opt, scheduler)
    assert loss == pytest.approx(F.cross_entropy(_model()(xb), yb).item())   # the loss before the step
    assert all(torch.allclose(p, q) for p, q in zip(model.parameters(), by_hand.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)                    # and one step of the scheduler


def test_get_data_shuffles_the_training_set_only_and_doubles_the_validation_batch():
    train_ds = TensorDataset(torch.arange(20.0), torch.arange(20))
    valid_ds = TensorDataset(torch.arange(9.0), torch.arange(9))
    torch.manual_seed(0)
    train_dl, valid_dl = reference.get_data(train_ds, valid_ds, 4)
    assert [len(yb) for _, yb in train_dl] == [4] * 5
    first, second = (torch.cat([yb for _, yb in train_dl]).tolist() for _ in range(2))
    assert sorted(first) == list(range(20)) and first != list(range(20)) and first != second
    assert [yb.tolist() for _, yb in valid_dl] == [list(range(8)), [8]]


def test_fit_trains_in_train_mode_validates_in_eval_mode_and_weights_the_means_by_batch_size():
    x, y = _batch(1, n=23)
    train_dl = DataLoader(TensorDataset(x[:13], y[:13]), batch_size=5)     # 5, 5 and 3
    valid_dl = DataLoader(TensorDataset(x[13:], y[13:]), batch_size=4)     # 4, 4 and 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    twin.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    history = reference.fit(2, model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), train_dl, valid_dl)
    # the same two epochs by hand, from the same weights and the same dropout masks
    torch.manual_seed(1)
    opt = optim.SGD(twin.parameters(), lr=0.1)
    for epoch in range(2):
        twin.train()
        train = []
        for xb, yb in train_dl:
            loss = F.cross_entropy(twin(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            train.append((loss.item(), len(xb)))
        twin.eval()
        with torch.no_grad():   # through valid_dl, as fit does: each pass over a DataLoader draws a random seed
            out, labels = torch.cat([twin(xb) for xb, _ in valid_dl]), y[13:]
        want = {"train_loss": sum(v * n for v, n in train) / 13, "valid_loss": F.cross_entropy(out, labels).item(),
                "valid_accuracy": (out.argmax(1) == labels).float().mean().item()}
        assert set(history[epoch]) == set(reference.HISTORY_KEYS)
        for key in reference.HISTORY_KEYS:
            assert history[epoch][key] == pytest.approx(want[key], rel=1e-5), (epoch, key)
    assert not model.training


def test_cross_entropy_grad_is_autograds_gradient_of_the_mean_cross_entropy():
    scores = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, 1, 1, 2, 0])
    F.cross_entropy(scores, target).backward()
    assert torch.allclose(reference.cross_entropy_grad(scores.detach(), target), scores.grad)
    big = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert reference.cross_entropy_grad(big, torch.tensor([2])).tolist() == [[1.0, 0.0, -1.0]]


def test_train_epoch_returns_the_mean_over_the_images_of_the_losses_before_each_step():
    torch.manual_seed(0)
    x, y = torch.randn(10, 3), torch.tensor([0, 1] * 5)
    model, twin = nn.Linear(3, 2), nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    loader = DataLoader(TensorDataset(x, y), batch_size=4)   # 4, 4 and 2 images
    model.eval()
    got = reference.train_epoch(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), loader)
    assert model.training
    opt = optim.SGD(twin.parameters(), lr=0.1)
    losses = [reference.loss_batch(twin, F.cross_entropy, xb, yb, opt) for xb, yb in loader]
    assert got == pytest.approx(sum(loss * n for loss, n in losses) / 10)


def test_choose_epochs_counts_from_one_and_keeps_the_earliest_of_equals():
    history = [{"valid_loss": v} for v in (0.9, 0.4, 0.4, 0.5)]
    assert reference.choose_epochs(history) == 2
    assert reference.choose_epochs(history[:1]) == 1
