"""Lesson 07's answers (``handwritten.reference.engine``): the tiny autograd engine agrees with torch.autograd
and with central differences, follows the lesson's worked examples, and trains. (That it is the instructor
notebook's engine is tested in tests/checks/test_autograd.py, beside the notebook's other tests.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwritten.reference import engine
from handwritten.reference.engine import Tensor


def test_the_lessons_first_graph():
    x = Tensor(0.5)
    a = 3 * x
    y = a * a + 3 * a
    y.backward()
    assert float(x.grad) == 18.0 and float(a.grad) == 6.0


def test_unbroadcast_is_the_lessons_example():
    g = np.arange(12.0).reshape(3, 4)
    assert engine.unbroadcast(g, (4,)).tolist() == [12.0, 15.0, 18.0, 21.0]
    assert engine.unbroadcast(g, (3, 1)).tolist() == [[6.0], [22.0], [38.0]]
    assert engine.unbroadcast(g, (1, 4)).tolist() == [[12.0, 15.0, 18.0, 21.0]]
    assert engine.unbroadcast(np.ones((2, 3, 4)), ()).shape == ()
    assert float(engine.unbroadcast(np.ones((2, 3)), ())) == 6


def test_topological_order_lists_each_node_once_after_its_parents():
    x = Tensor(1.0)
    a = 3 * x
    loss = engine.sum_all(a * a + a)
    order = engine.topological_order(loss)
    assert len(order) == len({id(n) for n in order}) and order[-1] is loss
    position = {id(n): i for i, n in enumerate(order)}
    assert all(position[id(p)] < position[id(n)] for n in order for p in n.parents)


def test_the_engine_matches_torch_on_a_network():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, 6)
    shapes = [(5, 7), (7,), (7, 4), (4,)]
    params = [Tensor(rng.standard_normal(s)) for s in shapes]
    w1, b1, w2, b2 = params
    h = engine.relu(Tensor(x) @ w1 + b1)
    loss = engine.cross_entropy(engine.reshape(h @ w2 + b2, (6, 4)), y)
    loss.backward()
    tparams = [torch.tensor(p.data, requires_grad=True) for p in params]
    tw1, tb1, tw2, tb2 = tparams
    tloss = F.cross_entropy(torch.relu(torch.tensor(x) @ tw1 + tb1) @ tw2 + tb2, torch.tensor(y))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op,shape", [
    (lambda t: engine.mean(engine.mul(t, t)), (2, 3)),
    (lambda t: engine.sum_all(engine.mul(engine.add(t, Tensor(np.arange(3.0))), 2.5)), (4, 3)),
    (lambda t: engine.sum_all(engine.mul(engine.log_softmax(t), np.arange(12.0).reshape(3, 4))), (3, 4)),
    (lambda t: engine.cross_entropy(engine.reshape(t, (2, 6)), [1, 5]), (3, 4)),
    (lambda t: engine.sum_all(engine.mul(engine.matmul(t, Tensor(np.ones((3, 2)))), np.arange(8.0).reshape(4, 2))),
     (4, 3)),
    (lambda t: engine.mean(engine.relu(engine.matmul(Tensor(np.arange(6.0).reshape(2, 3) - 2), t))), (3, 5)),
])
def test_numerical_gradient_agrees_with_backward(op, shape):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(shape)
    weight = Tensor(w.copy())
    op(weight).backward()
    estimate = engine.numerical_gradient(lambda values: op(Tensor(values)).item(), w.copy())
    np.testing.assert_allclose(estimate, weight.grad, rtol=1e-5, atol=1e-7)
    assert np.abs(weight.grad).max() > 0


def test_log_softmax_and_cross_entropy_do_not_overflow():
    logits = np.array([[1000.0, 1001.0, 999.0], [-800.0, -805.0, -790.0]])
    out = engine.log_softmax(Tensor(logits))
    expected = torch.log_softmax(torch.tensor(logits), dim=-1).numpy()
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    loss = engine.cross_entropy(Tensor(logits), [1, 2])
    assert loss.item() == pytest.approx(F.cross_entropy(torch.tensor(logits), torch.tensor([1, 2])).item(), rel=1e-12)


def test_module_zero_grad_linear_and_sgd():
    np.random.seed(0)
    layer = engine.Linear(4, 3)
    assert layer.weight.shape == (4, 3) and layer.bias.shape == (3,)
    assert np.abs(layer.weight.data).max() <= 0.5 and layer.parameters() == [layer.weight, layer.bias]
    x = Tensor(np.ones((2, 4)))
    engine.sum_all(layer(x)).backward()
    np.testing.assert_array_equal(layer.bias.grad, [2.0, 2.0, 2.0])
    before = layer.weight.data.copy()
    opt = engine.SGD(iter(layer.parameters()), lr=0.5)
    opt.step()
    np.testing.assert_allclose(layer.weight.data, before - 0.5 * 2.0)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_fit_trains_the_mlp():
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((10, 784))
    y = rng.integers(0, 10, 400)
    x = centres[y] + 0.5 * rng.standard_normal((400, 784))
    np.random.seed(0)
    model = engine.MLP(16)
    losses = engine.fit(3, model, engine.cross_entropy, engine.SGD(model.parameters(), lr=0.1), x, y, bs=32)
    assert len(losses) == 3 * 13 and all(isinstance(v, float) for v in losses)
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:5])
    assert (model(Tensor(x)).data.argmax(axis=1) == y).mean() > 0.95


@pytest.mark.parametrize("formula", [
    lambda a, b: a - b, lambda a, b: 1 - a, lambda a, b: b - 2.5, lambda a, b: -a * b, lambda a, b: a ** 3,
    lambda a, b: a ** 0.5 / b, lambda a, b: 2 / b, lambda a, b: (a - b) ** 2 / 4,
], ids=["a-b", "1-a", "b-2.5", "-a*b", "a**3", "a**0.5/b", "2/b", "(a-b)**2/4"])
def test_sub_neg_pow_div_agree_with_torch(formula):
    """The operators students reach for in the notebook (-, unary -, **, /, with a number on either side) work
    and agree with torch.autograd, broadcasting a (3,) against a (2, 3)."""
    rng = np.random.default_rng(2)
    a0, b0 = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, 3)
    a, b = Tensor(a0.copy()), Tensor(b0.copy())
    out = formula(a, b)
    engine.sum_all(out).backward()
    at, bt = (torch.tensor(v, requires_grad=True) for v in (a0, b0))
    expected = formula(at, bt)
    expected.sum().backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.grad, at.grad.numpy() if at.grad is not None else 0 * a0, rtol=1e-12)
    np.testing.assert_allclose(b.grad, bt.grad.numpy() if bt.grad is not None else 0 * b0, rtol=1e-12)


def test_power_refuses_a_tensor_exponent():
    with pytest.raises(TypeError, match="number"):
        Tensor(2.0) ** Tensor(3.0)


def test_sgd_zero_grad_then_backward_replaces_then_adds():
    """SGD.zero_grad's zeros are a read-only view that backward() replaces; a second pass adds to what the first
    left, and no node's gradient is changed in place (a gradient shared by two nodes stays right for both)."""
    rng = np.random.default_rng(1)
    x, w = Tensor(rng.standard_normal((1, 4))), Tensor(rng.standard_normal((4, 3)))
    opt = engine.SGD([w], lr=0.1)
    opt.zero_grad()
    assert not w.grad.any() and not w.grad.flags.writeable
    for passes in (1, 2):
        out = x @ w + x @ w                                   # add passes the same array to both of its parents
        engine.sum_all(out).backward()
        np.testing.assert_allclose(w.grad, passes * 2 * x.data.T * np.ones((1, 3)), rtol=1e-12)
    np.testing.assert_array_equal(out.grad, np.ones((1, 3)))


def test_requires_grad_false_skips_only_that_gradient():
    rng = np.random.default_rng(2)
    x, w = Tensor(rng.standard_normal((3, 4)), requires_grad=False), Tensor(rng.standard_normal((4, 2)))
    flat, wc = Tensor(rng.standard_normal((2, 25)), requires_grad=False), Tensor(rng.standard_normal((3, 1, 3, 3)))
    xi = engine.reshape(flat, (2, 1, 5, 5))              # computed from data alone: no gradient wanted either
    assert not xi.requires_grad and engine.reshape(wc, (27,)).requires_grad
    engine.sum_all(x @ w).backward()
    engine.sum_all(engine.conv2d(xi, wc, Tensor(np.zeros(3)), pad=1)).backward()
    assert not x.grad.any() and not xi.grad.any()
    np.testing.assert_allclose(w.grad, x.data.sum(axis=0)[:, None] * np.ones((1, 2)), rtol=1e-12)
    t = torch.tensor(xi.data)
    tw = torch.tensor(wc.data, requires_grad=True)
    F.conv2d(t, tw, padding=1).sum().backward()
    np.testing.assert_allclose(wc.grad, tw.grad.numpy(), rtol=1e-10)


def test_the_lessons_cnn_matches_torch():
    np.random.seed(3)
    model = engine.CNN(4)
    assert [p.shape for p in model.parameters()] == [(4, 1, 3, 3), (4,), (784, 10), (10,)]
    assert np.abs(model.weight.data).max() <= 1 / 3
    x, y = np.random.default_rng(3).random((5, 784)), np.array([0, 3, 9, 1, 3])
    engine.cross_entropy(model(Tensor(x)), y).backward()
    tp = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    h = F.max_pool2d(torch.relu(F.conv2d(torch.tensor(x).reshape(5, 1, 28, 28), tp[0], tp[1], padding=1)), 2)
    F.cross_entropy(h.flatten(1) @ tp[2] + tp[3], torch.tensor(y)).backward()
    for p, t in zip(model.parameters(), tp):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-9, atol=1e-12)
