"""Lesson 07 (build your own framework): the reference engine the checks rely on agrees with
torch.autograd, the instructor's engine trains exactly like PyTorch from the same weights, and the
checks explain the mistakes they catch, on stdout only."""

from __future__ import annotations

import math
import sys

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwritten.checks import autograd as check

from conftest import ROOT

LESSON = "07-build-your-own-framework"


def notebook_engine() -> dict:
    """The instructor notebook's solution cells, run in one namespace."""
    nb = nbformat.read(ROOT / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    namespace = {"np": np, "math": math}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            exec(cell.source, namespace)
    return namespace


def test_reference_engine_matches_torch_on_a_network():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, 6)
    shapes = [(5, 7), (7,), (7, 4), (4,)]
    params = [check.Tensor(rng.standard_normal(s)) for s in shapes]
    w1, b1, w2, b2 = params
    h = check.ref_relu(check.Tensor(x) @ w1 + b1)
    loss = check.ref_cross_entropy(check.ref_reshape(h @ w2 + b2, (6, 4)), y)
    loss.backward()
    tparams = [torch.tensor(p.data, requires_grad=True) for p in params]
    tw1, tb1, tw2, tb2 = tparams
    tloss = F.cross_entropy(torch.relu(torch.tensor(x) @ tw1 + tb1) @ tw2 + tb2, torch.tensor(y))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_numerical_gradient_agrees_with_backward():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 4))
    x = check.Tensor(rng.standard_normal((2, 3)))

    def loss_of(values):
        return check.ref_mean(check.ref_mul(x @ check.Tensor(values), x @ check.Tensor(values))).item()

    weight = check.Tensor(w)
    out = x @ weight
    check.ref_mean(out * out).backward()
    np.testing.assert_allclose(check.numerical_gradient(loss_of, w.copy()), weight.grad, rtol=1e-6, atol=1e-8)


def test_instructor_engine_trains_like_pytorch_from_the_same_weights():
    ns = notebook_engine()
    np.random.seed(3)
    layers = [ns["Linear"](784, 16), ns["Linear"](16, 10)]
    net = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)).double()
    with torch.no_grad():
        for layer, ours in zip((net[0], net[2]), layers):
            layer.weight.copy_(torch.from_numpy(ours.weight.data.T))
            layer.bias.copy_(torch.from_numpy(ours.bias.data))
    params = [p for layer in layers for p in layer.parameters()]
    opt, topt = ns["SGD"](params, lr=0.1), torch.optim.SGD(net.parameters(), lr=0.1)
    rng = np.random.default_rng(4)
    for _ in range(20):
        x, y = rng.random((8, 784)), rng.integers(0, 10, 8)
        loss = ns["cross_entropy"](layers[1](layers[0](ns["Tensor"](x)).relu()), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)


def test_backward_that_recurses_along_every_path_is_named():
    class Recursive(check.Tensor):
        def backward(self, grad=None):
            self.grad = np.ones_like(self.data) if grad is None else grad
            if self.grad_fn is not None:
                for parent, g in zip(self.parents, self.grad_fn(self.grad)):
                    parent.grad = parent.grad + g
                    parent.backward(g)

    with pytest.raises(AssertionError, match="more than once"):
        check.backward(Recursive)


def test_checks_print_only_to_stdout_and_survive_a_patched_allclose(capfd, monkeypatch):
    ns = notebook_engine()
    check.add(ns["add"])
    check.backward(ns["Tensor"])
    out, err = capfd.readouterr()
    assert "public checks passed" in out and err == ""
    monkeypatch.setattr(np, "allclose", lambda *args, **kwargs: True)

    def wrong_relu(a):
        return check.Tensor(np.abs(a.data), (a,), lambda g: (g,))

    with pytest.raises(AssertionError, match="relu"):
        check.relu(wrong_relu)


def test_the_benchmark_takes_its_engine_from_the_notebook():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import autograd_speed

    ns = autograd_speed.engine()
    np.random.seed(0)
    model = ns["MLP"]()
    assert [p.shape for p in model.parameters()] == [(784, 128), (128,), (128, 10), (10,)]
