"""Checks for lesson 07, build your own framework: a ``Tensor`` on NumPy arrays with
``backward()``, ``unbroadcast``, the ops ``add``, ``mul``, ``matmul``, ``relu``, ``sum_all``,
``mean``, ``reshape``, ``log_softmax`` and ``cross_entropy``, then ``Module.zero_grad``,
``Linear``, ``SGD`` and ``fit``, ``numerical_gradient``, ``conv2d``, ``max_pool2d`` and the ``CNN`` built on them.

The oracle is ``torch.autograd`` in float64. A mistake is penalised once: every check runs the
student's function with the course's engine (``handwritten.reference.engine``: ``Tensor``,
``tensor``, ``unbroadcast`` and every op) in place, so an op is tested with the reference
``backward()`` and ``backward()`` is tested on nodes whose gradient functions are written out by
hand, with no op at all. The training check trains the reference network with the student's
``fit`` and the reference loss and optimiser. Every call into the student's code (constructing
their ``Tensor``, ``Linear`` or ``SGD``, calling a method, an op or a ``grad_fn`` it returned)
goes through ``_core.call``.

While graded, the checks run in the grader and the student's objects stay in their kernel, and so
must everything they are given: the reference Tensors an op is called on, the hand-made nodes of
``backward()`` (their ``grad_fn`` are closures), the modules for ``zero_grad``, the parameters for
``SGD`` and the network ``fit`` trains are built there by ``observe`` from data sent from here (the
arrays drawn here, a graph's or a module's description, a seed), and what the student's code did
comes back as data (outputs, gradients, weights), judged here against PyTorch or the reference
engine. The trained network's weights are loaded into the same network built here, and its test
accuracy is measured here.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..reference import engine
from ..reference.engine import Tensor
from ._core import call, fail, mnist, observe, passed, passed_hidden, references_in_place, seeded, train_then_check

__all__ = [
    "add", "add_hidden", "backward", "backward_hidden", "cnn", "cnn_hidden", "conv2d", "conv2d_hidden",
    "cross_entropy", "cross_entropy_hidden", "linear", "linear_hidden", "log_softmax", "log_softmax_hidden", "matmul",
    "matmul_hidden", "max_pool2d", "max_pool2d_hidden", "mul", "mul_hidden", "numerical_gradient",
    "numerical_gradient_hidden", "relu", "relu_hidden", "reshape", "reshape_hidden", "sgd", "sgd_hidden", "sum_mean",
    "sum_mean_hidden", "trained", "trained_hidden", "unbroadcast", "unbroadcast_hidden", "zero_grad",
    "zero_grad_hidden",
]

# Captured at import, before any student code runs (as in _core), so that a notebook which
# reassigns ``np.allclose`` does not change what the checks see.
_np_allclose = np.allclose

OPS = ("add", "mul", "matmul", "relu", "sum_all", "mean", "reshape", "log_softmax", "cross_entropy", "unfold", "fold",
       "conv2d", "max_pool2d")


def _references(*but) -> dict:
    """Every name of the reference engine, to put in place while one student function runs."""
    names = {"Tensor": Tensor, "tensor": engine.tensor, "unbroadcast": engine.unbroadcast, "Module": engine.Module,
             "Linear": engine.Linear, "SGD": engine.SGD, **{name: getattr(engine, name) for name in OPS}}
    return {k: v for k, v in names.items() if k not in but}


# ---------------------------------------------------------------- helpers


def _rng(seed):
    return np.random.default_rng(seed)


def _close(got, expected, rtol=1e-6, atol=1e-8):
    got = np.asarray(got, dtype=np.float64)
    return got.shape == np.shape(expected) and bool(_np_allclose(got, expected, rtol=rtol, atol=atol))


def _describe(args):
    return " and ".join(f"a {np.shape(a)} Tensor" if isinstance(a, np.ndarray) else f"the number {a:g}"
                        for a in args)


def _backprop(root, grad, what, explain=None):
    """The reference backward() for a node a student's op returned: seed ``root.grad`` with ``grad``, then call
    every grad_fn once (through the seam: it may be the student's), in reverse topological order, adding each
    returned gradient to its parent's. Every returned gradient is checked (how many, their shapes, finite) and a
    bad one fails naming ``what``."""
    root.grad = np.array(grad, dtype=np.float64)
    for node in reversed(engine.topological_order(root)):
        if node.grad_fn is None:
            continue
        grads = call(f"{what}: its grad_fn", node.grad_fn, node.grad, explain=explain)
        if not isinstance(grads, tuple | list) or len(grads) != len(node.parents):
            fail(f"{what}: its grad_fn must return a tuple with one gradient per parent "
                 f"({len(node.parents)}), got {type(grads).__name__}"
                 + (f" of length {len(grads)}" if isinstance(grads, tuple | list) else "")
                 + ". A single gradient is written (g,) with a comma.")
        for i, (parent, g) in enumerate(zip(node.parents, grads)):
            g = np.asarray(g, dtype=np.float64)
            if g.shape != parent.shape:
                fail(f"{what}: the gradient for parent {i} has shape {g.shape}, but that parent has shape "
                     f"{parent.shape}. A gradient always has the shape of what it is the gradient of"
                     + (": sum it over the broadcast axes with unbroadcast(g, shape)."
                        if g.size > int(np.prod(parent.shape)) else
                        ": is it transposed, or multiplied on the wrong side?" if g.shape == parent.shape[::-1]
                        else "."))
            if not np.isfinite(g).all():
                fail(f"{what}: a gradient contains inf or nan (an overflow?).")
            parent.grad = np.asarray(parent.grad + g)


def _torch_op(torch_fn, args, extra, upstream=None):
    """``torch_fn``'s value in float64 (numbers stay constants) and, given ``upstream``, the gradients of its
    array arguments for that upstream gradient. They are taken as the gradients of the scalar
    ``sum(out * upstream)``, the same numbers: ``torch.autograd.grad`` with ``grad_outputs`` would import sympy
    (seconds of a graded run) to compare their shapes."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args if isinstance(a, np.ndarray)]
    it = iter(leaves)
    out = torch_fn(*[next(it) if isinstance(a, np.ndarray) else a for a in args], *extra)
    if upstream is None:
        return out.detach().numpy(), None
    scalar = (out * torch.as_tensor(np.asarray(upstream), dtype=torch.float64)).sum()
    grads = torch.autograd.grad(scalar, leaves, allow_unused=True)
    return out.detach().numpy(), [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _op_forward(fn, where, args, extra, reuse, explain):
    """``fn`` called on reference Tensors made from the arrays in ``args`` (``observe``: beside the student's code):
    its output's value, the output and the leaves (references while graded)."""
    leaves = [Tensor(a.copy()) for a in args if isinstance(a, np.ndarray)]
    it = iter(leaves)
    call_args = [leaves[0], leaves[0]] if reuse else [next(it) if isinstance(a, np.ndarray) else a for a in args]
    out = call(where, fn, *call_args, *extra, explain=explain)
    if not isinstance(out, Tensor):
        fail(f"{where}: return a Tensor (Tensor(data, parents, grad_fn)), not {type(out).__name__}.")
    return {"value": out.data, "out": out, "leaves": leaves}


def _op_backward(out, leaves, upstream, where, explain):
    """The reference backward() from ``out`` for ``upstream`` (``observe``): the leaves' gradients and data."""
    if out.grad_fn is None:
        fail(f"{where}: the output has no grad_fn, so no gradient can flow back through it.")
    if not all(_reaches(out, leaf) for leaf in leaves):
        fail(f"{where}: the output's parents must be the Tensors it was computed from, "
             f"or backward() cannot reach them: Tensor(data, (a, b), grad_fn).")
    _backprop(out, upstream, where, explain)
    return {"grads": [leaf.grad for leaf in leaves], "data": [leaf.data for leaf in leaves]}


def _op_run(fn, where, args, extra, reuse, explain, seed):
    """``_op_forward``, then ``_op_backward`` for the upstream gradient drawn from ``seed`` for the output's shape,
    in one request (``observe``). A failure of the backward pass is returned, not raised: the check judges the
    forward value first."""
    seen = _op_forward(fn, where, args, extra, reuse, explain)
    upstream = _rng(seed).standard_normal(np.shape(seen["value"]))
    try:
        back = _op_backward(seen["out"], seen["leaves"], upstream, where, explain)
    except AssertionError as error:
        back = {"failed": str(error)}
    except NotImplementedError as error:
        back = {"not_implemented": str(error)}
    return {"value": seen["value"], "back": back}


def _check_op(name, fn, torch_fn, args, *, extra=(), case="", mistakes=(), reuse=False, seed=0, explain=None):
    """Call ``fn`` on reference Tensors made from the arrays in ``args`` (numbers are passed as they
    are; with ``reuse`` the one Tensor is passed twice), and compare its forward value and, through
    the reference backward(), its gradients with PyTorch's.

    ``mistakes`` are ``(description, test)`` pairs; ``test(i, got, want, leaves, upstream)`` is
    true when input i's gradient matches a known mistake, whose description becomes the message.
    ``explain`` words an error the student's code raises (see ``_core.call``; a ``functools.partial``
    of a function of this module, so that it can reach the kernel)."""
    where = f"{name} for {case or _describe(args)}"
    args = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in args]
    t_args = [args[0], args[0]] if reuse else args
    if reuse:
        reused = args[0]
        torch_fn_r = torch_fn
        torch_fn = lambda t, *rest: torch_fn_r(t, t, *rest)  # noqa: E731
        t_args = [reused]
    with references_in_place(fn, **_references(name)):
        seen = observe(_op_run, fn, where, args, tuple(extra), reuse, explain, seed)
    expected, _ = _torch_op(torch_fn, t_args, extra)
    value = seen["value"]
    if value.shape != expected.shape:
        fail(f"{where}: the output has shape {value.shape}, expected {expected.shape}.")
    if not np.isfinite(value).all():
        fail(f"{where}: the output contains inf or nan: does something overflow?")
    if not _close(value, expected):
        fail(f"{where}: wrong forward value.\nexpected:\n{expected}\ngot:\n{value}")
    upstream = _rng(seed).standard_normal(value.shape)
    _, wanted = _torch_op(torch_fn, t_args, extra, upstream)
    back = seen["back"]
    if "failed" in back:
        fail(back["failed"])
    if "not_implemented" in back:
        raise NotImplementedError(back["not_implemented"])
    leaves = [Tensor(d) for d in back["data"]]     # as the student's op left them, for the mistakes' tests
    for i, (leaf, got, want) in enumerate(zip(leaves, back["grads"], wanted)):
        want = want.numpy()
        if not _close(got, want):
            for description, test in mistakes:
                if test(i, got, want, leaves, upstream):
                    fail(f"{where}: {description}")
            label = "the input" if len(leaves) == 1 else f"input {i} (shape {leaf.shape})"
            fail(f"{where}: wrong gradient for {label}.\nexpected (torch.autograd):\n{want}\ngot:\n{got}")


def _reaches(root, leaf):
    return any(node is leaf for node in engine.topological_order(root))


# ---------------------------------------------------------------- backward()


def _node(cls, data, parents=(), grad_fn=None, log=None, name=""):
    """A node of the student's Tensor class whose grad_fn, if any, records when it is called."""
    if grad_fn is None:
        return call("Tensor(data)", cls, np.asarray(data, dtype=np.float64))

    def recorded(g):
        if log is not None:
            log.append(name)
        return grad_fn(g)

    return call("Tensor(data, parents, grad_fn)", cls, np.asarray(data, dtype=np.float64), tuple(parents), recorded)


def _hand_graph(cls, x0, case):
    """The lesson's graph, built from x = ``x0`` with the student's Tensor class (``observe``: its grad_fn stay
    beside their code), and ``loss.backward()``: what it left in loss.grad and x.grad, and the order in which
    the grad_fn were called. a is used twice, and the path a -> b -> c -> d is longer than a -> d, so a's
    gradient is complete only after b has passed its part back:

        a = 3x,   b = 2a,   c = b * b,   d = c + 3a   (elementwise),   loss = sum(d)"""
    log, shape = [], x0.shape
    a0 = 3 * x0
    x = _node(cls, x0)
    a = _node(cls, a0, (x,), lambda g: (3 * g,), log, "a")
    b = _node(cls, 2 * a0, (a,), lambda g: (2 * g,), log, "b")
    c = _node(cls, (2 * a0) ** 2, (b,), lambda g: (2 * (2 * a0) * g,), log, "c")
    d = _node(cls, (2 * a0) ** 2 + 3 * a0, (c, a), lambda g: (g, 3 * g), log, "d")
    loss = _node(cls, ((2 * a0) ** 2 + 3 * a0).sum(), (d,), lambda g: (np.broadcast_to(g, shape),), log, "loss")
    call(f"backward() for {case}", loss.backward)
    return {"loss_grad": loss.grad, "x_grad": x.grad, "log": log}


def _check_backward_graph(cls, rng, case, shape=(2, 3)):
    x0 = rng.standard_normal(shape)
    seen = observe(_hand_graph, cls, x0, case)
    a0 = 3 * x0
    expected, partial = 3 * (8 * a0 + 3), (3 * 8 * a0, 3 * 3 * np.ones(shape))    # d loss / dx = 3 (8a + 3)
    loss_grad, x_grad, log = seen["loss_grad"], seen["x_grad"], seen["log"]
    if np.shape(loss_grad) != () or not _np_allclose(loss_grad, 1):
        fail(f"backward() for {case}: after loss.backward(), loss.grad should be 1 (d loss / d loss), "
             f"got {loss_grad!r}.")
    order = ["loss", "d", "c", "b", "a"]
    counts = {name: log.count(name) for name in order}
    if any(n > 1 for n in counts.values()):
        fail(f"backward() for {case}: a node's grad_fn was called more than once ({counts}): visit every "
             f"node once, in topological order, instead of recursing along every path.")
    if any(n == 0 for n in counts.values()):
        fail(f"backward() for {case}: some nodes' grad_fn were never called ({counts}).")
    if log != order:
        fail(f"backward() for {case}: the grad_fn were called in the order {log}, but a node's gradient is "
             f"complete only when every node that uses it has passed its part back: go through the nodes in "
             f"reverse topological order (here {order}).")
    if not _close(x_grad, expected):
        if any(_close(x_grad, p) for p in partial):
            fail(f"backward() for {case}: a is used twice (by b and by d), and its gradient holds only one of "
                 f"the two contributions: add each gradient to parent.grad (+=) instead of replacing it.")
        fail(f"backward() for {case}: wrong gradient for x.\nexpected:\n{expected}\ngot:\n{x_grad}")


def _accumulated(cls, x0, case):
    """x.grad after two backward passes of y = sum(x**2) into the leaf x = ``x0`` (``observe``)."""
    x = _node(cls, x0)
    for _ in range(2):
        y = _node(cls, (x0 ** 2).sum(), (x,), lambda g: (2 * x0 * g,))
        call(f"backward() for {case}", y.backward)
    return x.grad


def _check_accumulates(cls, rng, case):
    x0 = rng.standard_normal(3)
    got = observe(_accumulated, cls, x0, case)
    if not _close(got, 4 * x0):
        if _close(got, 2 * x0):
            fail(f"backward() for {case}: after two backward passes through x, x.grad should hold the sum of "
                 f"both gradients, as in PyTorch (that is why we zero gradients before each step): add to "
                 f"parent.grad (+=) instead of replacing it.")
        fail(f"backward() for {case}: after two backward passes, x.grad should be 2 * (2x) = {4 * x0}, "
             f"got {got}.")


def _is_class(obj) -> bool:
    return isinstance(obj, type)


def backward(cls):
    """Visible check: the lesson's hand-made graph, and two backward passes into one leaf."""
    if not observe(_is_class, cls):
        fail("pass the class itself: check.backward(Tensor).")
    rng = _rng(7)
    _check_backward_graph(cls, rng, "the graph a = 3x, b = 2a, c = b*b, d = c + 3a, loss = sum(d)")
    _check_accumulates(cls, rng, "y = sum(x**2), twice")
    passed("Tensor.backward", 3)


def _random_dag(rng, n_leaves, n_nodes, shape):
    """A random graph of elementwise nodes, each a weighted sum of squares and values of earlier
    nodes: its leaves' values, each node's ``(picks, coeffs, squared)``, and the leaves' gradients
    when the same graph, in PyTorch, is summed and back-propagated."""
    leaves0 = [rng.standard_normal(shape) for _ in range(n_leaves)]
    torch_nodes = [torch.tensor(v, requires_grad=True) for v in leaves0]
    nodes = []
    for _ in range(n_nodes):
        k = int(rng.integers(1, 4))
        picks = [int(i) for i in rng.integers(0, len(torch_nodes), k)]
        picks[-1] = len(torch_nodes) - 1                 # chain to the newest: a long path exists
        coeffs = rng.uniform(-1.5, 1.5, k)
        squared = rng.random(k) < 0.3
        nodes.append((picks, coeffs, squared))
        torch_nodes.append(sum(float(c) * (torch_nodes[i] ** 2 if s else torch_nodes[i])
                               for c, i, s in zip(coeffs, picks, squared)))
    torch_nodes[-1].sum().backward()
    return leaves0, nodes, [t.grad.numpy() if t.grad is not None else np.zeros(shape) for t in torch_nodes[:n_leaves]]


def _dag_gradients(cls, leaves0, nodes, shape, case):
    """The graph ``_random_dag`` describes, built with the student's Tensor class, summed and back-propagated
    with their backward() (``observe``): the leaves' gradients."""
    tensors = [_node(cls, v) for v in leaves0]
    values = list(leaves0)
    for picks, coeffs, squared in nodes:
        value = sum(c * (values[i] ** 2 if s else values[i]) for c, i, s in zip(coeffs, picks, squared))

        def grad_fn(g, coeffs=coeffs, squared=squared, srcs=tuple(values[i] for i in picks)):
            return tuple(c * (2 * v * g if s else g) for c, s, v in zip(coeffs, squared, srcs))

        tensors.append(_node(cls, value, [tensors[i] for i in picks], grad_fn))
        values.append(value)
    root = _node(cls, values[-1].sum(), (tensors[-1],), lambda g: (np.broadcast_to(g, shape),))
    call(case, root.backward)
    return [leaf.grad for leaf in tensors[:len(leaves0)]]


def backward_hidden(cls, seed):
    rng = _rng(seed)
    _check_backward_graph(cls, rng, "the same graph with a (4, 1) x", shape=(4, 1))
    _check_accumulates(cls, rng, "y = sum(x**2), twice")
    for trial in range(6):
        shape = [(), (3,), (2, 2)][trial % 3]
        leaves0, nodes, expected = _random_dag(rng, int(rng.integers(1, 4)), int(rng.integers(3, 9)), shape)
        grads = observe(_dag_gradients, cls, leaves0, nodes, shape, f"backward() for a random graph (trial {trial})")
        for i, (got, want) in enumerate(zip(grads, expected)):
            if not _close(got, want):
                fail(f"backward() for a random graph (trial {trial}): wrong gradient for leaf {i}.\n"
                     f"expected (torch.autograd):\n{want}\ngot:\n{got}")
    passed_hidden("Tensor.backward")


# ---------------------------------------------------------------- unbroadcast


UNBROADCAST_VISIBLE = [((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((3, 4), (3, 4))]


def _check_unbroadcast(fn, grad_shape, shape, rng):
    grad = rng.standard_normal(grad_shape)
    case = f"a {grad_shape} gradient and shape {shape}"
    got = call(f"unbroadcast for {case}", fn, grad.copy(), shape)
    want = engine.unbroadcast(grad, shape)
    got = np.asarray(got)
    if got.shape != want.shape:
        hint = ""
        if got.size == want.size:
            hint = (" The values are right but an axis of size 1 was dropped: sum over it with "
                    "keepdims=True.")
        elif got.size > want.size:
            hint = " Sum over every axis that broadcasting added (leading) or stretched (size 1 in shape)."
        fail(f"unbroadcast for {case}: the result has shape {got.shape}, expected {tuple(shape)}.{hint}")
    if not _close(got, want):
        fail(f"unbroadcast for {case}: wrong values: sum the gradient over the broadcast axes.\n"
             f"expected:\n{want}\ngot:\n{got}")


def unbroadcast(fn):
    rng = _rng(1)
    for grad_shape, shape in UNBROADCAST_VISIBLE:
        _check_unbroadcast(fn, grad_shape, shape, rng)
    passed("unbroadcast", len(UNBROADCAST_VISIBLE))


def unbroadcast_hidden(fn, seed):
    rng = _rng(seed)
    cases = [((2, 3, 4), (3, 1)), ((2, 3, 4), ()), ((5,), (1,)), ((2, 3, 4), (2, 1, 4)), ((4, 1), (1, 1)),
             ((2, 3, 4), (1, 3, 4)), ((6, 5), (5,)), ((3,), ())]
    for grad_shape, shape in cases:
        _check_unbroadcast(fn, grad_shape, shape, rng)
    passed_hidden("unbroadcast")


# ---------------------------------------------------------------- the ops


def _check_binary(name, fn, torch_fn, rng, shapes, scalars, reuse_shapes, mistakes):
    for a, b in shapes:
        _check_op(name, fn, torch_fn, [rng.standard_normal(a), rng.standard_normal(b)], mistakes=mistakes,
                  seed=int(rng.integers(1 << 30)))
    for s in scalars:
        x = rng.standard_normal(s)
        _check_op(name, fn, torch_fn, [x, 2.5], mistakes=mistakes, seed=1,
                  case=f"a {s} Tensor and the number 2.5")
        _check_op(name, fn, torch_fn, [-1.5, x], mistakes=mistakes, seed=2,
                  case=f"the number -1.5 and a {s} Tensor")
    for s in reuse_shapes:
        x = rng.standard_normal(s)
        _check_op(name, fn, torch_fn, [x], reuse=True, mistakes=mistakes, seed=3,
                  case=f"the same {s} Tensor twice ({name}(x, x))")


_UNREDUCED = ("a gradient has more elements than its input: where an input was broadcast, sum the gradient over "
              "the broadcast axes with unbroadcast(g, a.shape).",
              lambda i, got, want, leaves, up: np.size(got) > np.size(want))


def add(fn):
    rng = _rng(11)
    _check_binary("add", fn, torch.add, rng, [((2, 3), (2, 3)), ((3, 4), (4,))], [], [], [_UNREDUCED])
    passed("add", 2)


def add_hidden(fn, seed):
    rng = _rng(seed)
    _check_binary("add", fn, torch.add, rng, [((3, 1), (1, 4)), ((2, 3, 4), (3, 4)), ((5,), ())],
                  [(3, 2)], [(2, 3)], [_UNREDUCED])
    passed_hidden("add")


def _swapped(i, got, want, leaves, up):
    if len(leaves) != 2:
        return False
    other = leaves[1 - i].data
    mine = leaves[i].data
    try:
        wrong = engine.unbroadcast(up * mine * np.ones_like(other), np.shape(got))
        return _close(got, wrong) and not _np_allclose(mine, other)
    except ValueError:
        return False


_MUL_SWAPPED = ("the gradients are swapped: d(a*b)/da is b, so a's gradient is g * b.data (and b's is g * a.data).",
                _swapped)


def mul(fn):
    rng = _rng(12)
    _check_binary("mul", fn, torch.mul, rng, [((2, 3), (2, 3)), ((3, 4), (4,))], [], [], [_UNREDUCED, _MUL_SWAPPED])
    passed("mul", 2)


def mul_hidden(fn, seed):
    rng = _rng(seed)
    _check_binary("mul", fn, torch.mul, rng, [((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((5,), ())],
                  [(4,)], [(2, 3)], [_UNREDUCED, _MUL_SWAPPED])
    passed_hidden("mul")


def _matmul_wrong_side(i, got, want, leaves, up):
    return np.shape(got) == np.shape(want)[::-1] and np.shape(got) != np.shape(want) or (
        np.shape(got) == np.shape(want) and _close(got, np.asarray(want).T))


_MATMUL = ("a gradient is transposed or multiplied on the wrong side: for out = a @ b, a's gradient is g @ b.T and "
           "b's gradient is a.T @ g (check the shapes: each gradient has its input's shape).", _matmul_wrong_side)


def _explain_matmul(a, b, error):
    if isinstance(error, ValueError):
        return (f"matmul for a {a} @ {b} product raised ValueError ({error}): a gradient is transposed or "
                f"multiplied on the wrong side. For out = a @ b, a's gradient is g @ b.T and b's is a.T @ g.")
    return None


def _matmul_shape_error(a, b):
    """Words NumPy's shape error inside a wrong matmul (forward or grad_fn): a partial, which can reach the kernel."""
    return functools.partial(_explain_matmul, a, b)


def _check_matmul(fn, rng, shapes, reuse=()):
    for a, b in shapes:
        _check_op("matmul", fn, torch.matmul, [rng.standard_normal(a), rng.standard_normal(b)],
                  mistakes=[_MATMUL], seed=int(rng.integers(1 << 30)), explain=_matmul_shape_error(a, b))
    for s in reuse:
        _check_op("matmul", fn, torch.matmul, [rng.standard_normal(s)], reuse=True, mistakes=[_MATMUL], seed=5,
                  case=f"the same {s} matrix twice (x @ x)")


def matmul(fn):
    _check_matmul(fn, _rng(13), [((2, 3), (3, 4)), ((3, 3), (3, 3))])
    passed("matmul", 2)


def matmul_hidden(fn, seed):
    rng = _rng(seed)
    _check_matmul(fn, rng, [((1, 5), (5, 3)), ((4, 2), (2, 1)), ((5, 5), (5, 2)), ((3, 6), (6, 6))], reuse=[(3, 3)])
    passed_hidden("matmul")


def _passes_negatives(i, got, want, leaves, up):
    return _close(got, up) and (leaves[0].data < 0).any()


_RELU = ("the gradient flows through negative inputs too: relu's output does not change where the input is "
         "negative, so its gradient is zero there (g * (a.data > 0)).", _passes_negatives)


def _relu_input(rng, shape):
    x = rng.standard_normal(shape)
    x.flat[0], x.flat[-1] = -abs(x.flat[0]) - 0.1, abs(x.flat[-1]) + 0.1     # both signs, always
    return x


def relu(fn):
    rng = _rng(14)
    for shape in [(2, 5), (6,)]:
        _check_op("relu", fn, torch.relu, [_relu_input(rng, shape)], mistakes=[_RELU], seed=4)
    passed("relu", 2)


def relu_hidden(fn, seed):
    rng = _rng(seed)
    for shape in [(1, 7), (3, 4, 2), (10,)]:
        _check_op("relu", fn, torch.relu, [_relu_input(rng, shape)], mistakes=[_RELU], seed=int(rng.integers(99)))
    passed_hidden("relu")


def _mean_not_divided(i, got, want, leaves, up):
    n = leaves[0].data.size
    return n > 1 and _close(got, np.asarray(want) * n)


_MEAN = ("mean's gradient is n times too large: mean divides by n = a.data.size, so each element's gradient is "
         "g / n.", _mean_not_divided)


def _check_sum_mean(sum_fn, mean_fn, rng, shapes):
    for shape in shapes:
        _check_op("sum_all", sum_fn, torch.sum, [rng.standard_normal(shape)], seed=6)
        _check_op("mean", mean_fn, torch.mean, [rng.standard_normal(shape)], mistakes=[_MEAN], seed=7)


def sum_mean(sum_fn, mean_fn):
    _check_sum_mean(sum_fn, mean_fn, _rng(15), [(2, 3), (4,)])
    passed("sum_all and mean", 4)


def sum_mean_hidden(sum_fn, mean_fn, seed):
    _check_sum_mean(sum_fn, mean_fn, _rng(seed), [(1, 6), (2, 3, 4), (), (5, 1)])
    passed_hidden("sum_all and mean")


def _check_reshape(fn, rng, cases):
    for shape, new in cases:
        _check_op("reshape", fn, lambda t, s: t.reshape(s), [rng.standard_normal(shape)], extra=(new,), seed=8,
                  case=f"a {shape} Tensor reshaped to {new}")


def reshape(fn):
    _check_reshape(fn, _rng(16), [((2, 6), (3, 4)), ((2, 3, 4), (-1, 12))])
    passed("reshape", 2)


def reshape_hidden(fn, seed):
    _check_reshape(fn, _rng(seed), [((6,), (2, 3)), ((4, 28, 28), (-1, 784)), ((2, 3), (6,)), ((5, 1), (1, 5))])
    passed_hidden("reshape")


_OVERFLOW = ("the result overflows on large logits: exp(1000) is inf in float64. Subtract each row's maximum "
             "before exp (log_softmax(x) = (x - m) - log(sum(exp(x - m))), the same for any m).")


def _large_logits(rng, shape, size=1000.0):
    return size + 30 * rng.standard_normal(shape)


def _check_log_softmax(fn, rng, shapes, large):
    t_fn = lambda t: torch.log_softmax(t, dim=-1)  # noqa: E731
    for shape in shapes:
        _check_op("log_softmax", fn, t_fn, [rng.standard_normal(shape) * 3], seed=9)
    for shape in large:
        _with_overflow_message("log_softmax", fn, t_fn, [_large_logits(rng, shape)], seed=10,
                               case=f"large {shape} logits (around 1000)")


def _with_overflow_message(*args, **kwargs):
    """_check_op(*args, **kwargs), with the overflow explained if the output or a gradient is inf or nan."""
    with np.errstate(all="ignore"):
        try:
            _check_op(*args, **kwargs)
        except AssertionError as error:
            text = str(error)
            if "inf or nan" in text or "wrong forward value" in text:
                fail(text.split(":")[0] + ": " + _OVERFLOW)
            raise


def log_softmax(fn):
    _check_log_softmax(fn, _rng(17), [(2, 5)], [(3, 10)])
    passed("log_softmax", 2)


def log_softmax_hidden(fn, seed):
    rng = _rng(seed)
    _check_log_softmax(fn, rng, [(1, 10), (6, 3), (4,)], [(5, 10)])
    passed_hidden("log_softmax")


def _torch_cross_entropy(t, y):
    return F.cross_entropy(t, torch.as_tensor(y))


def _check_cross_entropy(fn, rng, cases):
    for (n, c), size in cases:
        logits = rng.standard_normal((n, c)) * 3 + (size if size else 0)
        if size:
            logits += 30 * rng.standard_normal((n, c))
        targets = rng.integers(0, c, n)
        case = f"{n} rows of {c} " + (f"large logits (around {size:g})" if size else "logits")
        (_with_overflow_message if size else _check_op)(
            "cross_entropy", fn, _torch_cross_entropy, [logits], extra=(targets,), case=case, seed=11)


def cross_entropy(fn):
    _check_cross_entropy(fn, _rng(18), [((4, 10), 0), ((3, 10), 1000.0)])
    passed("cross_entropy", 2)


def cross_entropy_hidden(fn, seed):
    _check_cross_entropy(fn, _rng(seed), [((1, 10), 0), ((7, 3), 0), ((5, 10), -800.0), ((6, 10), 5000.0)])
    passed_hidden("cross_entropy")


# ---------------------------------------------------------------- conv2d and max_pool2d


def _torch_conv2d(x, w, b, stride, pad):
    return F.conv2d(x, w, b, stride=stride, padding=pad)


def _bias_zero(i, got, want, leaves, up):
    return i == 2 and not np.any(got)


def _bias_not_summed(i, got, want, leaves, up):
    return i == 2 and _close(got, np.asarray(up).sum(axis=(2, 3))[0])


CONV_MISTAKES = (
    ("the bias's gradient is zero: every output of filter f adds b[f], so its gradient is g summed over the batch "
     "and both spatial axes, g.sum(axis=(0, 2, 3)).", _bias_zero),
    ("the bias's gradient is one image's: sum g over the batch axis too, g.sum(axis=(0, 2, 3)).", _bias_not_summed),
)


def _conv_case(rng, n, c, hw, f, k, stride, pad):
    return [rng.standard_normal((n, c, *hw)), rng.standard_normal((f, c, *k)), rng.standard_normal(f)], (stride, pad)


def _check_conv(fn, rng, cases):
    for n, c, hw, f, k, stride, pad in cases:
        args, extra = _conv_case(rng, n, c, hw, f, k, stride, pad)
        _check_op("conv2d", fn, _torch_conv2d, args, extra=extra, mistakes=CONV_MISTAKES, seed=int(rng.integers(99)),
                  case=f"x {args[0].shape}, w {args[1].shape}, stride {stride}, pad {pad}")


def conv2d(fn):
    _check_conv(fn, _rng(41), [(2, 1, (5, 5), 3, (3, 3), 1, 0), (3, 2, (6, 5), 4, (3, 3), 1, 1)])
    passed("conv2d", 2)


def conv2d_hidden(fn, seed):
    _check_conv(fn, _rng(seed), [(1, 3, (7, 8), 2, (2, 3), 2, 0), (2, 2, (9, 9), 3, (5, 5), 1, 2),
                                 (4, 1, (28, 28), 8, (3, 3), 1, 1)])
    passed_hidden("conv2d")


def _torch_max_pool(x, k):
    return F.max_pool2d(x, k)


def _pool_spread(i, got, want, leaves, up):
    return np.count_nonzero(got) > np.count_nonzero(want)


POOL_MISTAKES = (
    ("more elements got a gradient than there are windows: each window's gradient goes to its maximum alone "
     "(the arg-max; the first one if several tie, as PyTorch), the others get 0.", _pool_spread),
)


def _check_pool(fn, rng, cases):
    for shape, k, ties in cases:
        x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
        _check_op("max_pool2d", fn, _torch_max_pool, [x], extra=(k,), mistakes=POOL_MISTAKES,
                  seed=int(rng.integers(99)), case=f"x {shape}, k = {k}" + (", with ties" if ties else ""))


def max_pool2d(fn):
    _check_pool(fn, _rng(43), [((2, 3, 4, 6), 2, False), ((1, 2, 6, 6), 3, False)])
    passed("max_pool2d", 2)


def max_pool2d_hidden(fn, seed):
    _check_pool(fn, _rng(seed), [((3, 2, 8, 4), 2, False), ((2, 2, 4, 6), 2, True), ((1, 1, 2, 2), 2, True)])
    passed_hidden("max_pool2d")


# ---------------------------------------------------------------- numerical_gradient


def _numerical_run(fn, x0, coef, reads_argument):
    """The student's ``numerical_gradient`` on ``f(x) = sum(coef * x**3 + 5 x**2)`` at ``x0`` (``observe``: f and x
    are made beside their code). With ``reads_argument`` False, f ignores its argument and reads the array that
    was passed in, as a loss reads a Tensor's data: only changing that array itself moves f. Returns the
    estimate, x afterwards, whether the estimate is x itself, and how many times f was called."""
    x = np.array(x0, dtype=np.float64)
    calls = [0]

    def f(arg):
        calls[0] += 1
        v = arg if reads_argument else x
        return float((coef * v ** 3 + 5 * v ** 2).sum())

    got = call("numerical_gradient(f, x)", fn, f, x)
    return {"grad": None if got is None else np.array(got, dtype=np.float64), "x": x.copy(), "is_x": got is x,
            "calls": calls[0]}


def _check_numerical(fn, rng, shape, reads_argument):
    x0 = rng.uniform(-1, 1, shape)
    coef = rng.uniform(0.5, 2.0, shape)
    where = (f"numerical_gradient(f, x) for x of shape {shape}"
             + ("" if reads_argument else ", where f reads the array x itself (as a loss reads a weight's data)"))
    seen = observe(_numerical_run, fn, x0, coef, reads_argument)
    exact = 3 * coef * x0 ** 2 + 10 * x0
    if seen["grad"] is None:
        fail(f"{where}: return the array of estimates, got None.")
    if not _np_allclose(seen["x"], x0, rtol=0, atol=1e-12):
        fail(f"{where}: x is not as it was afterwards: put each element back (x[i] = old) after moving it.")
    if seen["is_x"]:
        fail(f"{where}: return a new array (np.zeros_like(x)), not x itself.")
    grad = seen["grad"]
    if grad.shape != x0.shape:
        fail(f"{where}: the estimate has shape {grad.shape}, x has {x0.shape}: one estimate per element "
             f"(np.ndindex(x.shape) gives every index of a many-dimensional array).")
    if not reads_argument and _np_allclose(grad, 0):
        fail(f"{where}: every estimate is 0: change x itself, in place (x[i] = old + eps), not a copy, so that a "
             f"function that reads x sees the change.")
    if _close(grad, 2 * exact, rtol=1e-5, atol=1e-6):
        fail(f"{where}: every estimate is twice the derivative: the two points are 2 * eps apart, so divide by "
             f"2 * eps.")
    if not _close(grad, exact, rtol=1e-7, atol=1e-7):
        worst = float(np.abs(grad - exact).max())
        forward = seen["calls"] <= x0.size + 1
        fail(f"{where}: an estimate is off by {worst:.1e} (a central difference is off by about 1e-10 here)"
             + ("; f was called only about once per element: a forward difference (f(x + eps) - f(x)) / eps errs "
                "by about eps * f''/2; use the central difference (f(x + eps) - f(x - eps)) / (2 * eps)."
                if forward else "."))


def numerical_gradient(fn):
    rng = _rng(7)
    for shape in [(5,), (2, 3)]:
        _check_numerical(fn, rng, shape, reads_argument=True)
    passed("numerical_gradient", 2)


def numerical_gradient_hidden(fn, seed):
    rng = _rng(seed)
    for shape, reads in [((2, 2, 3), True), ((), True), ((3, 4), False)]:
        _check_numerical(fn, rng, shape, reads_argument=reads)
    passed_hidden("numerical_gradient")


# ---------------------------------------------------------------- Module, Linear, SGD


# A module is described as data, {"module": class name, "attrs": {name: value}}, an array standing for a Tensor:
# drawn here, built in the kernel as a subclass of the student's Module (``_build``).


def _module(cls_name, /, **attrs) -> dict:
    return {"module": cls_name, "attrs": attrs}


def _visible_net(rng):
    """A subclass of the student's Module holding a Tensor, a nested module and a plain attribute."""
    return _module("Net", a=rng.standard_normal(4), inner=_module("Inner", w=rng.standard_normal((3, 2))),
                   name="not a parameter")


def _hidden_net(rng):
    """A deeper subclass of the student's Module: a list of layers (as an MLP keeps them), a tuple holding a
    Tensor and a module, a scalar parameter, two levels of nesting, and attributes that are not parameters."""

    def shape():
        return tuple(int(n) for n in rng.integers(1, 5, int(rng.integers(0, 3))))

    def layer():
        return _module("Layer", weight=rng.standard_normal(shape()), bias=rng.standard_normal(int(rng.integers(1, 5))))

    def block():
        return _module("Block", layers=[layer() for _ in range(int(rng.integers(2, 4)))], sizes=[3, 4])

    return _module("Net", scale=rng.standard_normal(()), blocks=[block(), layer()],
                   pair=(rng.standard_normal(shape()), block()), name="not a parameter")


def _subclass(module_cls, spec) -> type:
    """The subclass of the student's Module that ``spec`` describes: its __init__ sets the attributes."""
    def __init__(self):
        for name, value in spec["attrs"].items():
            setattr(self, name, _build(module_cls, value))

    return type(spec["module"], (module_cls,), {"__init__": __init__})


def _build(module_cls, spec):
    if isinstance(spec, np.ndarray):
        return Tensor(spec)
    if isinstance(spec, list | tuple):
        return type(spec)(_build(module_cls, item) for item in spec)
    if isinstance(spec, dict):
        return _subclass(module_cls, spec)()
    return spec


def _module_parameters(module_cls, spec):
    """The module ``spec`` describes, built (``observe``), and its parameters() as the student's code lists them:
    their data, and their shapes."""
    net = call("a subclass of Module", _subclass(module_cls, spec))
    params = call("Module.parameters()", net.parameters)
    return {"net": net, "params": params, "data": [p.data.copy() for p in params], "shapes": [p.shape for p in params]}


def _zeroed(net, params, grads, times):
    """Each parameter's gradient increased by ``grads`` (None: left as it is), then the student's zero_grad()
    called ``times`` times (``observe``): whether it returned None, and each parameter's shape, grad and data."""
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = np.asarray(p.grad + g)
    for _ in range(times):
        result = call("zero_grad()", net.zero_grad)
    return {"returned_none": result is None, "after": [(p.shape, p.grad, p.data) for p in params]}


def _check_zero_grad(module_cls, rng, make_net=_visible_net, times=1):
    with references_in_place(module_cls, **_references("Module")):
        built = observe(_module_parameters, module_cls, make_net(rng))
        grads = [rng.standard_normal(shape) if times == 1 or i % 3 else None     # hidden: some are already zero
                 for i, shape in enumerate(built["shapes"])]
        seen = observe(_zeroed, built["net"], built["params"], grads, times)
    if not seen["returned_none"]:
        fail("zero_grad() changes the gradients in place and returns nothing (None).")
    for (shape, grad, data), d in zip(seen["after"], built["data"]):
        if np.shape(grad) != shape:
            fail(f"zero_grad(): every parameter's grad should be an array of zeros of its own shape {shape}, "
                 f"got {grad!r:.60}.")
        if np.any(grad != 0):
            fail("zero_grad(): after model.zero_grad() a parameter still holds its old gradient: set every "
                 "p.grad in self.parameters() to zeros (p.grad = np.zeros_like(p.data), or p.grad[...] = 0).")
        if not np.array_equal(data, d):
            fail("zero_grad() changed a parameter's data: it should only touch p.grad.")


def zero_grad(module_cls):
    _check_zero_grad(module_cls, _rng(19))
    _check_zero_grad(module_cls, _rng(20))
    passed("Module.zero_grad", 2)


def zero_grad_hidden(module_cls, seed):
    """Deeper modules (lists of layers, tuples, a scalar parameter), some gradients already zero, zero_grad
    called twice."""
    rng = _rng(seed)
    for times in (1, 2, 1):
        _check_zero_grad(module_cls, rng, _hidden_net, times)
    passed_hidden("Module.zero_grad")


def _linear_layer(cls, case, n_in, n_out, seed):
    """The student's ``Linear(n_in, n_out)``, built with the random state set to ``seed`` (``observe``): the
    layer, and its weight's values."""
    layer = seeded(seed, lambda: call(case, cls, n_in, n_out), numpy=True)
    for name, shape in [("weight", (n_in, n_out)), ("bias", (n_out,))]:
        p = getattr(layer, name, None)
        if not isinstance(p, Tensor):
            fail(f"{case}: self.{name} should be a Tensor, got {type(p).__name__}.")
        if p.shape != shape:
            hint = (" It is stored (n_in, n_out) here, so that forward is x @ self.weight "
                    "(PyTorch stores the transpose).") if p.shape == shape[::-1] else ""
            fail(f"{case}: self.{name} has shape {p.shape}, expected {shape}.{hint}")
    return {"layer": layer, "weight": layer.weight.data}


def _linear_forward(layer, case, x):
    """``layer`` run on the batch ``x`` (``observe``): its output (and its value), and the weight and bias."""
    params = call(f"{case}.parameters()", layer.parameters)
    if len(params) != 2 or not all(any(p is q for q in params) for p in (layer.weight, layer.bias)):
        fail(f"{case}: layer.parameters() should return the weight and the bias (make Linear a subclass of "
             f"Module and keep them as attributes).")
    out = call(f"{case}.forward", layer, Tensor(x))
    if not isinstance(out, Tensor):
        fail(f"{case}: forward should return a Tensor, got {type(out).__name__}.")
    return {"out": out, "value": out.data, "weight": layer.weight.data, "bias": layer.bias.data}


def _linear_gradients(layer, out, case):
    """The reference backward() from ``out`` with a gradient of ones (``observe``): the weight's and bias's."""
    _backprop(out, np.ones(out.shape), f"{case}.forward")
    return {"weight": layer.weight.grad, "bias": layer.bias.grad}


def _check_linear(cls, n_in, n_out, batch, rng):
    case = f"Linear({n_in}, {n_out})"
    with references_in_place(cls, **_references("Linear")):
        built = observe(_linear_layer, cls, case, n_in, n_out, int(rng.integers(1 << 30)))
        w = built["weight"]
        if np.all(w == w.flat[0]):
            fail(f"{case}: every weight is the same number; start from random weights, or every unit "
                 f"computes the same thing forever.")
        scale = w.std() * math.sqrt(n_in)
        if not 0.2 < scale < 3:
            fail(f"{case}: the weights' standard deviation is {w.std():.4g}, far from about 1/sqrt(n_in) = "
                 f"{1 / math.sqrt(n_in):.4g}: scale the random weights by 1/sqrt(n_in).")
        x = rng.standard_normal((batch, n_in))
        seen = observe(_linear_forward, built["layer"], case, x)
        value = seen["value"]
        expected = x @ seen["weight"] + seen["bias"]
        if value.shape != expected.shape:
            fail(f"{case}: the output for a ({batch}, {n_in}) batch has shape {value.shape}, expected "
                 f"{expected.shape}.")
        if not _close(value, expected):
            if _close(value, x @ seen["weight"]):
                fail(f"{case}: the bias is missing: forward returns x @ self.weight + self.bias.")
            fail(f"{case}: wrong output: forward returns x @ self.weight + self.bias.")
        grads = observe(_linear_gradients, built["layer"], seen["out"], case)
    if not _close(grads["bias"], np.full(n_out, batch)) or not _close(grads["weight"], x.T @ np.ones((batch, n_out))):
        fail(f"{case}: gradients do not reach the weight and bias: compute forward from self.weight and "
             f"self.bias with Tensor operations (@ and +).")


def linear(cls):
    _check_linear(cls, 4, 3, 2, _rng(21))
    passed("Linear", 1)


def linear_hidden(cls, seed):
    rng = _rng(seed)
    for n_in, n_out, batch in [(784, 10, 5), (7, 1, 1), (3, 8, 4)]:
        _check_linear(cls, n_in, n_out, batch, rng)
    passed_hidden("Linear")


def _sgd(cls, arrays, lr):
    """The student's SGD over reference Tensors holding ``arrays``, given as a generator, as model.parameters()
    may be (``observe``): the optimiser and the parameters."""
    params = [Tensor(a.copy()) for a in arrays]
    return {"opt": call(f"SGD(params, lr={lr})", cls, iter(params), lr), "params": params}


def _sgd_step(opt, params, grads):
    """``grads`` added to the parameters' gradients, then the student's step() and zero_grad() (``observe``):
    each parameter's shape, grad and data."""
    for p, g in zip(params, grads):
        p.grad = np.asarray(p.grad + g)
    call("SGD.step()", opt.step)
    call("SGD.zero_grad()", opt.zero_grad)
    return [(p.shape, p.grad, p.data) for p in params]


def _check_sgd(cls, lr, rng, steps=2):
    with references_in_place(cls, **_references("SGD")):
        start = [rng.standard_normal(s) for s in [(3, 2), (2,), ()]]
        made = observe(_sgd, cls, start, lr)
        expected = [s.copy() for s in start]
        for _ in range(steps):
            grads = [rng.standard_normal(s.shape) for s in start]
            seen = observe(_sgd_step, made["opt"], made["params"], grads)
            expected = [e - lr * g for e, g in zip(expected, grads)]
            for shape, grad, _ in seen:
                if np.shape(grad) != shape or np.any(np.asarray(grad) != 0):
                    fail("SGD.zero_grad(): every parameter's grad should be zeros of its shape after zero_grad().")
    for (_, _, got), s, e in zip(seen, start, expected):
        if _close(got, s):
            fail("SGD.step(): the parameters did not change: update p.data itself (p.data -= lr * p.grad); "
                 "rebinding a loop variable changes nothing.")
        if _close(got, 2 * s - e):
            fail("SGD.step(): the parameters moved uphill: subtract lr * p.grad (gradient descent), don't add it.")
        if not _close(got, e):
            fail(f"SGD.step(): after {steps} steps with lr = {lr}, a parameter is\n{got}\nexpected\n{e}.")


def sgd(cls):
    _check_sgd(cls, 0.1, _rng(22))
    passed("SGD", 2)


def sgd_hidden(cls, seed):
    rng = _rng(seed)
    for lr in (0.5, 0.03):
        _check_sgd(cls, lr, rng, steps=3)
    passed_hidden("SGD")


# ---------------------------------------------------------------- training


# Test accuracy a trained network must reach, graded or not (the training is the same). Measured on the
# bundled sample (2,000 test images) over seeds 0-5, the reference network trained by:
#                               visible: 784-64-10, one epoch     hidden: 784-32-10, two epochs
#                               on 8,000 images, bs 32, lr 0.1    on 4,000 images, bs 24, lr 0.05
#                                                                 (re-measured at bs 24, whose last batch is smaller)
#   a correct fit               0.886-0.898                       0.868-0.881
#   one that never zeroes       0.131-0.333                       0.230-0.323
#   one that trains on its
#   first batch over and over   0.522-0.536                       0.510-0.651
#   one that zeroes between
#   backward and step, untrained  0.065-0.108 (chance)            0.068-0.108
# (On 4,000 images the visible run's correct fit drops to 0.844-0.866 and never-zeroes rises to 0.417-0.596:
# too close to the threshold to save its 0.2 s.)
THRESHOLD = 0.80
TRAIN_SUBSET = 8_000       # the whole sample; on full MNIST its first 8,000 images (training takes ~0.5 s)
HIDDEN_SUBSET = 4_000


def _arrays(split, stop=None):
    """The images ``:stop`` of ``split`` as NumPy float64 rows of 784 pixels in [0, 1], and their labels."""
    x, y = mnist(split, stop=stop, shape=(784,), dtype=torch.float64)
    return x.numpy(), y.numpy()


def _accuracy(model, x, y) -> float:
    """The fraction of ``x`` the reference model gets right; 0 once a parameter is inf or nan."""
    if not all(np.isfinite(p.data).all() for p in model.parameters()):
        return 0.0
    return float((model(Tensor(x)).data.argmax(axis=1) == y).mean())


def _fitted(fn, case, seed, n_hidden, n_train, epochs, bs, lr):
    """The reference MLP built with the random state set to ``seed``, then trained by the student's ``fit`` on the
    first ``n_train`` training images with the reference loss and SGD, under the same random state (``observe``: the
    network stays beside their code): what fit returned, and the trained parameters' values."""
    x, y = _arrays("train", n_train)

    batches, values = [], []

    def loss_func(logits, targets):
        """The reference loss, remembering the targets of every batch it is given and the loss it returned."""
        out = engine.cross_entropy(logits, targets)
        batches.append(np.array(targets).copy())
        values.append(float(out.data))
        return out

    def train():
        model = engine.MLP(n_hidden)
        opt = engine.SGD(model.parameters(), lr)
        with np.errstate(all="ignore"):
            losses = call(f"fit for {case}", fn, epochs, model, loss_func, opt, x, y, bs)
        if isinstance(losses, list | tuple) and not all(isinstance(v, float | int | np.floating) for v in losses):
            losses = ["not a number"] * len(losses)      # Tensors stay here; the check only needs to know
        return {"losses": losses, "weights": [p.data for p in model.parameters()], "batches": batches,
                "values": values}

    return seeded(seed, train, numpy=True)


def _check_trained(fn, n_train, epochs, bs, lr, seed, n_hidden):
    xt, yt = _arrays("test")
    y = np.asarray(mnist("train", stop=n_train, dtype=None)[1])
    n = len(y)
    case = f"an MLP 784-{n_hidden}-10, {epochs} epoch(s) on {n:,} images, bs = {bs}, lr = {lr}"
    n_batches = epochs * math.ceil(n / bs)

    def train(model):
        """Train the same network in the kernel; its trained weights, loaded into ``model`` (built here from the
        same seed), are judged here."""
        with references_in_place(fn, **_references()):
            seen = observe(_fitted, fn, case, seed, n_hidden, n_train, epochs, bs, lr)
        for p, w in zip(model.parameters(), seen["weights"]):
            p.data = np.array(w, dtype=np.float64).reshape(p.shape)
        return seen

    def check_losses(run):
        """What fit's statement asks beyond the accuracy: loss_func (the argument) once per batch, batches of bs
        (the last one smaller) going through every image once per epoch in a new random order, and the list of
        every batch's loss, as plain numbers, in order."""
        seen = run.result
        losses, batches, values = seen["losses"], seen["batches"], seen["values"]
        if not batches:
            fail(f"fit for {case}: the loss_func it was given was never called: compute each batch's loss with "
                 f"loss_func(model(Tensor(xb)), yb), the argument, not a function of the notebook.")
        sizes = [len(b) for b in batches]
        per_epoch = [bs] * (n // bs) + ([n % bs] if n % bs else [])
        if sizes != per_epoch * epochs:
            fail(f"fit for {case}: loss_func should be called on {epochs * len(per_epoch)} batches, "
                 f"{len(per_epoch)} per epoch of {bs} images (the last one {per_epoch[-1]}); its batches had "
                 f"{len(sizes)} sizes, starting {sizes[:4]}. Take the batches of bs indices from start = 0, bs, "
                 f"2 * bs, ... up to len(x_train).")
        epochs_seen = [np.concatenate(batches[e * len(per_epoch):(e + 1) * len(per_epoch)]) for e in range(epochs)]
        if any(not np.array_equal(np.sort(e), np.sort(y)) for e in epochs_seen):
            fail(f"fit for {case}: an epoch should show every training image exactly once (a permutation of the "
                 f"indices, cut into batches).")
        if any(np.array_equal(e, y) for e in epochs_seen):
            fail(f"fit for {case}: an epoch went through the images in their stored order: shuffle them "
                 f"(np.random.permutation(len(x_train))) at the start of each epoch.")
        if any(np.array_equal(a, b) for a, b in zip(epochs_seen, epochs_seen[1:])):
            fail(f"fit for {case}: two epochs saw the images in the same order: draw a new permutation at the start "
                 f"of each epoch, inside the epoch loop.")
        if not isinstance(losses, list | tuple) or len(losses) != n_batches:
            fail(f"fit for {case}: return the list of every batch's loss as a number ({n_batches} of them), "
                 f"got {losses!r:.80}.")
        if not all(isinstance(v, float | int | np.floating) for v in losses):
            fail(f"fit for {case}: the losses should be plain numbers (loss.item()), not Tensors.")
        if not _np_allclose(np.asarray(losses, dtype=np.float64), values, rtol=1e-12, atol=1e-12):
            fail(f"fit for {case}: the list should hold each batch's loss, as loss_func returned it, in the order "
                 f"of the batches (loss.item() after each step's loss).")

    return train_then_check(
        seed=seed, make_model=lambda: engine.MLP(n_hidden), train=train, accuracy=lambda m: _accuracy(m, xt, yt),
        threshold=THRESHOLD, check_result=check_losses, numpy=True,
        message=lambda run: (f"fit for {case}: after training, the test accuracy is {run.accuracy:.3f}, below "
                             f"{THRESHOLD} (untrained: {run.untrained:.3f}). Each step: loss = loss_func(model(xb), "
                             f"yb), opt.zero_grad(), loss.backward(), opt.step()."))


def trained(fn):
    """Train a fresh reference MLP with the student's ``fit`` (reference engine, loss and SGD)."""
    run = _check_trained(fn, TRAIN_SUBSET, 1, 32, 0.1, seed=0, n_hidden=64)
    print(f"test accuracy {run.accuracy:.3f} (untrained {run.untrained:.3f}; threshold {THRESHOLD}).")
    passed("fit", 1)


def trained_hidden(fn, seed):
    _check_trained(fn, HIDDEN_SUBSET, 2, 24, 0.05, seed=seed, n_hidden=32)
    passed_hidden("fit")


# ---------------------------------------------------------------- the CNN


# Validation accuracy the student's CNN must reach after the grader trains it (their class on the course's ops, fit,
# loss and SGD; one epoch on the first CNN_SUBSET training digits, bs 32, lr 0.3), measured on the notebook's 1,000
# validation digits (the last training digits, never trained on). The reference CNN on the bundled sample, seeds 0-5:
#                      1,000 digits, lr 0.3    2,000 digits, lr 0.1    2,000 digits, lr 0.3 (chosen)
#   8 filters          0.652-0.800             0.631-0.832             0.789-0.855
#   4 filters          0.211-0.714             0.712-0.844             0.794-0.860
#   untrained          0.056-0.111
# (about 1 s for 8 filters, 0.4 s for 4, while graded.)
CNN_THRESHOLD = 0.70
CNN_SUBSET = 2_000
CNN_LR = 0.3
CNN_BOUND = 1 / 3               # nn.Conv2d's 1/sqrt(C * kh * kw) for one input channel and 3x3 filters


def _cnn_shapes(channels):
    """The parameters' shapes by role: the filters, their biases, the linear layer's weight (n_in, n_out), its bias."""
    return {"filters": (channels, 1, 3, 3), "biases": (channels,), "weight": (channels * 14 * 14, 10), "bias": (10,)}


def _cnn_params(model, where):
    """The model's parameters, found as the course's Module finds them: the course's Linear is in place, and it is
    not a subclass of the student's Module."""
    params = call(f"{where}.parameters()", engine.Module.parameters, model)
    return [p for p in params if isinstance(p, Tensor)], len(params)


def _cnn_probe(cls, channels, seed, x, upstream):
    """The student's ``CNN(channels)`` built with NumPy's random state set to ``seed`` (``observe``: beside their
    code): its parameters as built, its output on the digits ``x``, and every parameter's gradient of
    ``sum(output * upstream)`` by the reference backward()."""
    where = f"CNN({channels})"

    def probe():
        model = call(where, cls, channels)
        params, listed = _cnn_params(model, where)
        start = [p.data.copy() for p in params]
        out = call(f"{where}(x) for x of shape {x.shape}", model, Tensor(x))
        if not isinstance(out, Tensor):
            return {"params": start, "listed": listed, "out": None, "out_type": type(out).__name__}
        for p in params:
            p.grad = np.zeros_like(p.data)
        engine.sum_all(engine.mul(out, upstream)).backward()
        return {"params": start, "listed": listed, "out": out.data, "grads": [p.grad.copy() for p in params]}

    return seeded(seed, probe, numpy=True)


def _cnn_fitted(cls, channels, seed, n_train, bs, lr):
    """The student's ``CNN(channels)`` built under ``seed``, then trained under the same random state by the
    reference ``fit``, loss and SGD for one epoch on the first ``n_train`` training digits (``observe``): the
    trained parameters' values."""
    x, y = _arrays("train", n_train)
    where = f"CNN({channels})"

    def train():
        model = call(where, cls, channels)
        params, _ = _cnn_params(model, where)
        with np.errstate(all="ignore"):
            call(f"training {where} (the course's fit, cross_entropy and SGD)", engine.fit, 1, model,
                 engine.cross_entropy, engine.SGD(params, lr), x, y, bs)
        return [p.data for p in params]

    return seeded(seed, train, numpy=True)


def _by_role(arrays, channels, where):
    """The arrays of the four parameters by role, told apart by shape; fails, naming the likely mistake, unless
    there are exactly those four."""
    want = _cnn_shapes(channels)
    got = [tuple(np.shape(a)) for a in arrays]
    if sorted(got) != sorted(want.values()):
        said = f"{where}.parameters() gives Tensors of shapes {got}; expected {sorted(want.values())} (in any order)"
        if (channels * 13 * 13, 10) in got or (channels * 26 * 26, 10) in got:
            fail(f"{said}: pad the convolution by 1 (conv2d(..., pad=1)) so that the maps stay 28 x 28 and pool to "
                 f"14 x 14: Linear(channels * 14 * 14, 10).")
        if (channels * 28 * 28, 10) in got:
            fail(f"{said}: pool the maps (max_pool2d with k = 2) before the linear layer: Linear(channels * 14 * 14, "
                 f"10).")
        if channels != 8 and (8, 1, 3, 3) in got:
            fail(f"{said}: use the channels argument, not 8: CNN(channels) has channels filters.")
        fail(f"{said}: self.weight (channels, 1, 3, 3), self.bias (channels,), self.out = Linear(channels * 14 * 14, "
             f"10), all found by parameters().")
    return {role: next(np.asarray(a, dtype=np.float64) for a, shape in zip(arrays, got) if shape == want[role])
            for role in want}


def _torch_cnn_output(p, x, relu=True, flatten="channels"):
    """The lesson's CNN in PyTorch (float64) with the parameters ``p`` (tensors, by role) on the rows ``x``."""
    h = F.conv2d(x.reshape(-1, 1, 28, 28), p["filters"], p["biases"], padding=1)
    h = F.max_pool2d(torch.relu(h) if relu else h, 2)
    h = h.flatten(1) if flatten == "channels" else h.permute(0, 2, 3, 1).flatten(1)
    return h @ p["weight"] + p["bias"]


def _check_cnn_probe(cls, channels, seed):
    where = f"CNN({channels})"
    rng = _rng(seed)
    x, _ = _arrays("train", 3)
    upstream = rng.standard_normal((3, 10))
    with references_in_place(cls, **_references()):
        seen = observe(_cnn_probe, cls, channels, seed, x, upstream)
    if len(seen["params"]) != seen["listed"]:
        fail(f"{where}.parameters() should list Tensors only.")
    start = _by_role(seen["params"], channels, where)
    for role, name in [("filters", "self.weight"), ("biases", "self.bias")]:
        values = start[role]
        if np.abs(values).max() > CNN_BOUND + 1e-12 or not np.any(values):
            fail(f"{where}: {name} should start uniform in ±1/3 (nn.Conv2d's 1/sqrt(C * kh * kw) = 1/sqrt(9)): "
                 f"np.random.uniform(-bound, bound, shape); its values lie in [{values.min():.3f}, "
                 f"{values.max():.3f}].")
    linear_bound = 1 / math.sqrt(channels * 14 * 14)
    if max(np.abs(start["weight"]).max(), np.abs(start["bias"]).max()) > linear_bound + 1e-12:
        fail(f"{where}: self.out should start as a new Linear(channels * 14 * 14, 10) (uniform in ±1/sqrt(n_in) = "
             f"±{linear_bound:.4f}), not with weights set afterwards.")
    if start["filters"].max() < CNN_BOUND / 2 or start["filters"].min() > -CNN_BOUND / 2:
        fail(f"{where}: self.weight should start uniform in ±1/3; its values lie in [{start['filters'].min():.3f}, "
             f"{start['filters'].max():.3f}], a narrower range.")
    if seen["out"] is None:
        fail(f"{where}(x) should return a Tensor of logits, got {seen['out_type']}.")
    params = {role: torch.tensor(a, requires_grad=True) for role, a in start.items()}
    xt = torch.from_numpy(x)
    expected = _torch_cnn_output(params, xt)
    out = np.asarray(seen["out"])
    if out.shape != tuple(expected.shape):
        fail(f"{where}(x) for x of shape {x.shape}: the output has shape {out.shape}, expected {tuple(expected.shape)} "
             f"(one row of 10 logits per image).")
    if not _close(out, expected.detach().numpy(), rtol=1e-9, atol=1e-10):
        with torch.no_grad():
            if _close(out, _torch_cnn_output(params, xt, relu=False).numpy(), rtol=1e-9, atol=1e-10):
                fail(f"{where}(x): the output is the network's without the ReLU: relu(conv2d(...)) before pooling.")
            if _close(out, _torch_cnn_output(params, xt, flatten="positions").numpy(), rtol=1e-9, atol=1e-10):
                fail(f"{where}(x): the pooled maps are flattened position by position: reshape the (N, channels, 14, "
                     f"14) maps to (N, -1) as they are, channel by channel, as nn.Flatten does.")
        fail(f"{where}(x): wrong output (compared with the same network in PyTorch, from your parameters: conv2d "
             f"padded by 1, ReLU, 2 x 2 max pooling, flattened, then self.out).")
    (expected * torch.from_numpy(upstream)).sum().backward()
    got = _by_role(seen["grads"], channels, where)
    for role, name in [("filters", "self.weight"), ("biases", "self.bias"), ("weight", "self.out.weight"),
                       ("bias", "self.out.bias")]:
        want = params[role].grad.numpy()
        if not _close(got[role], want, rtol=1e-7, atol=1e-9):
            if not np.any(got[role]):
                fail(f"{where}: {name} gets no gradient: build the forward pass on the Tensors themselves "
                     f"(conv2d(x, self.weight, self.bias, pad=1)), not on a new Tensor made from their .data.")
            fail(f"{where}: wrong gradient for {name} (compared with torch.autograd).")


def _check_cnn_trained(cls, channels, seed, n_train):
    where = f"CNN({channels})"
    xv, yv = mnist("train", start=-1_000, shape=(784,), dtype=torch.float64)
    xv, yv = xv.numpy(), yv.numpy()

    def train(model):
        with references_in_place(cls, **_references()):
            trained = observe(_cnn_fitted, cls, channels, seed, n_train, 32, CNN_LR)
        weights = _by_role(trained, channels, where)
        for p, role in zip(model.parameters(), ("filters", "biases", "weight", "bias")):
            p.data = weights[role]

    return train_then_check(
        seed=seed, make_model=lambda: engine.CNN(channels), train=train, accuracy=lambda m: _accuracy(m, xv, yv),
        threshold=CNN_THRESHOLD, numpy=True,
        message=lambda run: (f"{where}, trained by the course's fit for one epoch on {n_train:,} digits (bs 32, lr "
                             f"{CNN_LR}): validation accuracy {run.accuracy:.3f}, below {CNN_THRESHOLD} (untrained: "
                             f"{run.untrained:.3f})."))


def cnn(cls):
    """The student's CNN: parameters, their start, forward and gradients against PyTorch, then trained."""
    _check_cnn_probe(cls, 8, seed=0)
    run = _check_cnn_trained(cls, 8, seed=0, n_train=CNN_SUBSET)
    print(f"validation accuracy {run.accuracy:.3f} after one epoch on {CNN_SUBSET:,} digits (untrained "
          f"{run.untrained:.3f}; threshold {CNN_THRESHOLD}).")
    passed("CNN", 2)


def cnn_hidden(cls, seed):
    for channels in (4, 3):
        _check_cnn_probe(cls, channels, seed=seed + channels)
    _check_cnn_trained(cls, 4, seed=seed, n_train=CNN_SUBSET)
    passed_hidden("CNN")
