"""Lesson 07's checks (``handwritten.checks.autograd``): what the grader fixtures do not show. The course's
engine passes every check, visible and hidden; the hidden zero_grad check catches what the visible one cannot;
errors in student code fail the check that ran it, by name; the checks explain the mistakes they catch, on
stdout only, without importing what a graded run cannot afford; the instructor's engine trains exactly like
PyTorch from the same weights, and exactly like the course's reference engine."""

from __future__ import annotations

import math
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwritten.checks import autograd as check
from handwritten.reference import engine

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


ANSWERS = {  # each check and the course's answers it must pass (the hidden one with a seed)
    "backward": (engine.Tensor,), "unbroadcast": (engine.unbroadcast,), "add": (engine.add,),
    "mul": (engine.mul,), "matmul": (engine.matmul,), "relu": (engine.relu,),
    "sum_mean": (engine.sum_all, engine.mean), "reshape": (engine.reshape,), "log_softmax": (engine.log_softmax,),
    "cross_entropy": (engine.cross_entropy,), "zero_grad": (engine.Module,), "linear": (engine.Linear,),
    "sgd": (engine.SGD,), "numerical_gradient": (engine.numerical_gradient,),
    "conv2d": (engine.conv2d,), "max_pool2d": (engine.max_pool2d,), "cnn": (engine.CNN,),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_course_engine_passes_every_check(name, capsys):
    getattr(check, name)(*ANSWERS[name])
    getattr(check, f"{name}_hidden")(*ANSWERS[name], seed=5)
    out = capsys.readouterr().out
    assert "public checks passed" in out and "hidden tests passed" in out


def test_every_visible_check_has_a_hidden_one():
    visible = [name for name in check.__all__ if not name.endswith("_hidden")]
    assert sorted(f"{name}_hidden" for name in visible) == sorted(n for n in check.__all__ if n.endswith("_hidden"))
    assert all(callable(getattr(check, name)) for name in check.__all__)


class _WalkingModule(engine.Module):
    """zero_grad that walks the attributes itself: Tensors and Modules, but not lists of them."""

    def zero_grad(self):
        for value in vars(self).values():
            if isinstance(value, engine.Tensor):
                value.grad = np.zeros_like(value.data)
            elif isinstance(value, engine.Module):
                value.zero_grad()


def test_hidden_zero_grad_catches_a_module_that_skips_lists():
    check.zero_grad(_WalkingModule)        # the visible net has a Tensor and a nested Module only
    with pytest.raises(AssertionError, match="still holds its old gradient"):
        check.zero_grad_hidden(_WalkingModule, seed=1958)


def test_an_error_in_a_grad_fn_fails_the_op_by_name():
    def add(a, b):
        a, b = engine.tensor(a), engine.tensor(b)
        return engine.Tensor(a.data + b.data, (a, b), lambda g: (g, {}["no such key"]))

    with pytest.raises(AssertionError, match=r"add for a \(2, 3\) Tensor and a \(2, 3\) Tensor: its grad_fn "
                                             r"raised KeyError"):
        check.add(add)


def test_a_shape_error_in_matmul_is_explained():
    def matmul(a, b):
        return engine.Tensor(a.data @ b.data, (a, b), lambda g: (b.data.T @ g, a.data.T @ g))

    with pytest.raises(AssertionError, match=r"matmul for a \(2, 3\) @ \(3, 4\) product raised ValueError .*"
                                             r"a's gradient is g @ b.T"):
        check.matmul(matmul)


def test_an_error_in_backward_or_a_constructor_fails_by_name():
    class Broken(engine.Tensor):
        def backward(self):
            raise ZeroDivisionError("oops")

    with pytest.raises(AssertionError, match=r"backward\(\) for the graph .* raised ZeroDivisionError: oops"):
        check.backward(Broken)

    class NoBias(engine.Module):
        def __init__(self, n_in, n_out):
            raise TypeError("missing bias")

    with pytest.raises(AssertionError, match=r"Linear\(4, 3\) raised TypeError: missing bias"):
        check.linear(NoBias)


def test_unfinished_work_propagates():
    class Unfinished(engine.Tensor):
        def backward(self):
            raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check.backward(Unfinished)

    def relu(a):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check.relu(relu)


def test_what_student_code_prints_is_swallowed(capfd):
    def noisy_fit(*args):
        print("epoch 1 of 1")
        print("a warning", file=sys.stderr)
        return engine.fit(*args)

    check.trained(noisy_fit)
    out, err = capfd.readouterr()
    assert "epoch 1 of 1" not in out and err == ""
    assert "test accuracy" in out and "public checks passed" in out


def test_the_ops_checks_do_not_import_sympy():
    """torch.autograd.grad with grad_outputs imports sympy (a second or more of a graded run): the checks
    take the same gradients from a scalar."""
    code = ("import sys\nfrom handwritten.checks import autograd as check\nfrom handwritten.reference import engine\n"
            "check.add(engine.add); check.cross_entropy_hidden(engine.cross_entropy, seed=1)\n"
            "print('sympy' in sys.modules, 'torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_backward_that_recurses_along_every_path_is_named():
    class Recursive(engine.Tensor):
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
        return engine.Tensor(np.abs(a.data), (a,), lambda g: (g,))

    with pytest.raises(AssertionError, match="relu"):
        check.relu(wrong_relu)


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


def test_the_reference_engine_is_the_instructor_notebooks():
    """handwritten.reference.engine and the notebook's answers: the same weights from the same seed, the same
    batches in the same order, the same losses."""
    ns = notebook_engine()
    rng = np.random.default_rng(4)
    x, y = rng.random((96, 784)), rng.integers(0, 10, 96)
    losses = {}
    for name, (linear, sgd, fit, loss) in {
            "reference": (engine.Linear, engine.SGD, engine.fit, engine.cross_entropy),
            "notebook": (ns["Linear"], ns["SGD"], ns["fit"], ns["cross_entropy"])}.items():
        np.random.seed(3)
        layers = [linear(784, 16), linear(16, 10)]

        def model(xb, layers=layers):
            return layers[1](layers[0](xb).relu())

        params = [p for layer in layers for p in layer.parameters()]
        losses[name] = fit(2, model, loss, sgd(params, lr=0.1), x, y, bs=32)
    assert len(losses["reference"]) == 6
    np.testing.assert_allclose(losses["reference"], losses["notebook"], rtol=1e-12)


def test_the_benchmark_times_the_reference_engine_which_trains_as_the_notebooks():
    """make bench times handwritten.reference.engine, with its savings (zeros replaced, the images' gradient skipped,
    one-row products): from the same seed it gives the notebook's CNN and MLP the same losses, step after step."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import autograd_speed

    ns = autograd_speed.engine()
    assert ns["CNN"] is engine.CNN and ns["MLP"] is engine.MLP and ns["SGD"] is engine.SGD
    nb = notebook_engine()
    nb.update(unfold=engine.unfold, fold=engine.fold)       # given in the notebook; its conv2d looks them up here
    rng = np.random.default_rng(6)
    x, y = rng.random((8, 784)), rng.integers(0, 10, 8)

    def mlp(space):     # the notebook's MLP class is given, not an answer: the same network from its Linear
        layers = [space["Linear"](784, 32), space["Linear"](32, 10)]
        model = lambda xb: layers[1](layers[0](xb).relu())  # noqa: E731
        model.parameters = lambda: [p for layer in layers for p in layer.parameters()]
        return model

    for make, bs in [(lambda space: space["CNN"](), 4), (mlp, 1)]:
        losses = {}
        for name, (space, data) in {"bench": (ns | {"Linear": engine.Linear}, {"requires_grad": False}),
                                    "notebook": (nb, {})}.items():
            np.random.seed(1)
            model = make(space)
            opt = space["SGD"](model.parameters(), lr=0.3)
            losses[name] = []
            for i in range(0, 8, bs):
                loss = space["cross_entropy"](model(space["Tensor"](x[i:i + bs], **data)), y[i:i + bs])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses[name].append(loss.item())
        np.testing.assert_allclose(losses["bench"], losses["notebook"], rtol=1e-12)


def test_the_notebooks_numerical_gradient_is_the_references():
    """The notebook's answer and the reference agree, leave x as it was, and move x itself (a function that reads
    the array, not its argument, sees the change)."""
    ns = notebook_engine()
    x = np.random.default_rng(0).standard_normal((2, 3))
    before = x.copy()
    for fn in (ns["numerical_gradient"], engine.numerical_gradient):
        got = fn(lambda _: float((x ** 3).sum()), x)
        np.testing.assert_allclose(got, 3 * before ** 2, rtol=1e-7, atol=1e-8)
        assert np.array_equal(x, before)
