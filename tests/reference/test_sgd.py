"""Lesson 02's answers (``handwritten.reference.sgd``), against values worked out by hand and against PyTorch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handwritten.reference import sgd
from handwritten.reference.batching import TensorBatches


def test_f_is_the_quadratic_and_mse_the_mean_squared_error():
    t = torch.tensor([0.0, 1.0, 2.0])
    assert sgd.f(t, torch.tensor([1.0, 2.0, 3.0])).tolist() == [3.0, 6.0, 11.0]
    assert sgd.mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])).item() == 5.0


def test_apply_step_steps_downhill_in_place_and_returns_the_loss_before_the_step():
    t, speed = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0])
    params = torch.zeros(3, requires_grad=True)   # predicts 0: loss (1 + 9) / 2 = 5
    # d loss / d(a, b, c) = mean(2 (pred - speed) * (t², t, 1)) = (-3, -3, -4)
    assert sgd.apply_step(params, t, speed, 0.1) == 5.0
    assert params.detach().tolist() == pytest.approx([0.3, 0.3, 0.4])
    assert params.grad is None and params.requires_grad


def test_mnist_loss_is_the_distance_of_the_sigmoid_from_the_target():
    scores = torch.tensor([0.0, 0.0, 100.0, -100.0])
    targets = torch.tensor([1, 0, 1, 1])
    # 0.5 for either target at a score of 0; 0 for a confident right answer, 1 for a confident wrong one
    assert sgd.mnist_loss(scores, targets).item() == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)


def test_batch_accuracy_thresholds_the_raw_scores_at_0():
    xb = torch.tensor([[2.0], [-1.0], [0.3], [-0.2]])
    yb = torch.tensor([[1], [0], [0], [1]])
    assert sgd.batch_accuracy(xb, yb).item() == 0.5


def test_basic_optim_steps_as_torch_optim_sgd_does():
    torch.manual_seed(0)
    mine, theirs = nn.Linear(4, 1), nn.Linear(4, 1)
    theirs.load_state_dict(mine.state_dict())
    opt_mine = sgd.BasicOptim(mine.parameters(), 0.3)   # a generator: BasicOptim keeps a list
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.3)
    x = torch.randn(8, 4)
    for _ in range(3):
        for model, opt in [(mine, opt_mine), (theirs, opt_theirs)]:
            model(x).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
    assert torch.allclose(mine.weight, theirs.weight) and torch.allclose(mine.bias, theirs.bias)
    assert all(p.grad is None for p in mine.parameters())


def test_validate_epoch_weights_each_batch_by_its_size_and_records_no_gradients():
    x = torch.tensor([[1.0], [1.0], [1.0], [-1.0], [-1.0], [-1.0], [1.0]])
    y = torch.tensor([[1], [1], [0], [0], [0], [1], [1]])
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    # batches of 3: 2/3 right, 2/3 right, 1/1 right; 5/7 over all the images, not the mean of the batch means
    accuracy = sgd.validate_epoch(model, TensorBatches(x, y, 3))
    assert type(accuracy) is float and accuracy == pytest.approx(5 / 7)
    assert model.weight.grad is None


def test_batch_accuracy_compares_each_score_with_its_own_label_whatever_the_shapes():
    xb = torch.tensor([[2.0], [-1.0], [0.3]])
    yb = torch.tensor([1, 1, 0])
    for scores, labels in [(xb, yb), (xb, yb[:, None]), (xb[:, 0], yb), (xb[:, 0], yb[:, None])]:
        assert sgd.batch_accuracy(scores, labels).item() == pytest.approx(1 / 3)


def test_the_hand_derived_gradients_match_autograd_and_the_finite_difference():
    g = torch.Generator().manual_seed(0)
    time, speed = torch.rand(9, generator=g, dtype=torch.float64), torch.randn(9, generator=g, dtype=torch.float64)
    params = torch.randn(3, generator=g, dtype=torch.float64)
    p = params.clone().requires_grad_(True)
    sgd.mse(sgd.f(time, p), speed).backward()
    assert torch.allclose(sgd.quadratic_gradient(params, time, speed), p.grad)
    numeric = sgd.finite_difference(lambda q: sgd.mse(sgd.f(time, q), speed), params)
    assert torch.allclose(numeric, p.grad, atol=1e-7) and torch.equal(params, p.detach())
    xb = torch.rand(6, 4, generator=g, dtype=torch.float64)
    yb = torch.tensor([[1], [0], [1], [1], [0], [0]])
    w = torch.randn(4, 1, generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(1, generator=g, dtype=torch.float64).requires_grad_(True)
    sgd.mnist_loss(xb @ w + b, yb).backward()
    grad_w, grad_b = sgd.mnist_loss_gradient(xb, yb, w.detach(), b.detach())
    assert torch.allclose(grad_w, w.grad) and torch.allclose(grad_b, b.grad)


def test_basic_optim_leaves_a_parameter_without_a_gradient_alone():
    used, unused = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    opt = sgd.BasicOptim([used, unused], 0.5)
    (used ** 2).sum().backward()
    opt.step()
    assert used.detach().tolist() == [0.0, 0.0] and unused.detach().tolist() == [1.0, 1.0, 1.0]


def test_train_model_learns_a_separable_problem_and_reports_every_epoch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, :1] > 0).long()                             # label 1 where the first coordinate is positive
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    accuracies = sgd.train_model(model, sgd.BasicOptim(model.parameters(), 1.0),
                                 TensorBatches(x, y, 20, shuffle=True, generator=g), TensorBatches(x, y, 50), 5)
    assert len(accuracies) == 5 and accuracies[-1] > 0.95 and accuracies[-1] >= accuracies[0]
