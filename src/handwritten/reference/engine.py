"""Lesson 07, build your own framework: the tiny autograd engine on NumPy arrays -- a ``Tensor`` that remembers
how it was computed and fills in gradients with ``backward()``, ``unbroadcast`` and the ops a network needs,
``Module``, ``Linear``, ``SGD``, the lesson's ``MLP``, ``CNN`` and ``fit`` -- ``numerical_gradient``, which checks
any of its gradients by central differences, and a convolution layer (``conv2d``, on ``unfold`` and ``fold``) and
``max_pool2d``."""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- the Tensor and backward()

__all__ = [
    "Tensor", "tensor", "topological_order", "backprop", "unbroadcast", "add", "mul", "neg", "sub", "power",
    "div", "matmul", "relu", "sum_all", "mean", "reshape", "log_softmax", "cross_entropy", "unfold", "fold",
    "conv2d", "max_pool2d", "Module", "Linear", "MLP", "CNN", "SGD", "fit", "numerical_gradient",
]


class Tensor:
    """A NumPy array (float64) that remembers the Tensors it was computed from (``parents``) and how to pass a
    gradient back to them (``grad_fn``: the output's gradient -> a tuple, one gradient per parent). (Lesson 07.)

    ``requires_grad=False`` (PyTorch's word) marks data, such as a batch of images, whose gradient nobody reads, and
    so does every Tensor computed from such data alone: ``matmul`` and ``conv2d`` then skip computing it (their
    grad_fn gives ``None`` for it)."""

    def __init__(self, data, parents=(), grad_fn=None, requires_grad=True):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self.parents = tuple(parents)
        self.grad_fn = grad_fn
        self.requires_grad = any(_wanted(p) for p in self.parents) if self.parents else requires_grad

    @property
    def shape(self):
        return self.data.shape

    def item(self):
        return float(self.data)

    def __repr__(self):
        return f"Tensor({self.data!r})"

    def backward(self):
        """Fill in ``.grad`` of every Tensor this one depends on (self is a scalar, like a loss). (Lesson 07.)"""
        backprop(self, np.ones_like(self.data))


def tensor(x):
    """``x`` itself if it is a Tensor, else a Tensor made from it (a number in ``2 * x``). (Lesson 07.)"""
    return x if isinstance(x, Tensor) else Tensor(x)


def topological_order(root) -> list:
    """Every node ``root`` depends on, each after all its parents (a depth-first post-order, without recursion,
    each node once). (Lesson 07.)"""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in getattr(node, "parents", ()))
    return order


def backprop(root, grad) -> None:
    """``backward()`` with any starting gradient: set ``root.grad`` to ``grad``, then call every node's grad_fn
    once, in reverse topological order, adding each gradient it returns to its parent's. (Lesson 07.)"""
    root.grad = np.array(grad, dtype=np.float64)
    for node in reversed(topological_order(root)):
        if node.grad_fn is not None:
            for parent, g in zip(node.parents, node.grad_fn(node.grad)):
                if g is None:        # a gradient not asked for (requires_grad=False)
                    continue
                g = np.asarray(g, dtype=np.float64)
                if getattr(parent.grad, "base", None) is _ZERO and parent.grad.shape == g.shape:
                    parent.grad = g      # 0 + g is g: no new array, no pass over a weight's gradient (speed)
                else:
                    parent.grad = np.asarray(parent.grad + g)   # a new array: gradients are never changed in place


# ``_zeros(shape)``: zeros that cost no memory and no time, a read-only view of one 0 (what ``SGD.zero_grad`` sets,
# and what ``backprop`` replaces instead of adding to it).
_ZERO = np.zeros(())
_ZERO.flags.writeable = False


def _zeros(shape):
    return np.broadcast_to(_ZERO, shape)


# ---------------------------------------------------------------- the ops


def unbroadcast(grad, shape):
    """``grad`` summed over the axes that broadcasting added to, or stretched in, an array of ``shape``.
    (Lesson 07.)"""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def add(a, b):
    """``a + b`` with broadcasting. (Lesson 07.)"""
    a, b = tensor(a), tensor(b)
    return Tensor(a.data + b.data, (a, b), lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)))


def mul(a, b):
    """``a * b`` elementwise, with broadcasting. (Lesson 07.)"""
    a, b = tensor(a), tensor(b)
    return Tensor(a.data * b.data, (a, b),
                  lambda g: (unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)))


def neg(a):
    """``-a``. (Lesson 07.)"""
    a = tensor(a)
    return Tensor(-a.data, (a,), lambda g: (-g,))


def sub(a, b):
    """``a - b`` with broadcasting: ``a + (-b)``. (Lesson 07.)"""
    return add(a, neg(b))


def power(a, p):
    """``a ** p`` elementwise for a number ``p`` (not a Tensor): the gradient is ``p * a ** (p - 1)``.
    (Lesson 07.)"""
    if isinstance(p, Tensor):
        raise TypeError("power(a, p): p must be a number, not a Tensor")
    a = tensor(a)
    return Tensor(a.data ** p, (a,), lambda g: (g * p * a.data ** (p - 1),))


def div(a, b):
    """``a / b`` with broadcasting: ``a * b ** -1``. (Lesson 07.)"""
    return mul(a, power(tensor(b), -1))


def _wanted(t) -> bool:
    """Whether ``t``'s gradient is wanted (not data marked ``requires_grad=False``; a student's Tensor always is)."""
    return getattr(t, "requires_grad", True)


def matmul(a, b):
    """``a @ b`` for 2-D ``a`` and ``b``. (Lesson 07.)"""
    a, b = tensor(a), tensor(b)

    def grad_fn(g):
        # One row (one digit per step): a.T @ g is an outer product, which broadcasting computes, the same
        # numbers, in half the time of BLAS's general product (speed).
        return (g @ b.data.T if _wanted(a) else None,
                (a.data.T * g if a.shape[0] == 1 else a.data.T @ g) if _wanted(b) else None)

    return Tensor(a.data @ b.data, (a, b), grad_fn)


def relu(a):
    """``max(a, 0)`` elementwise. (Lesson 07.)"""
    mask = a.data > 0
    return Tensor(a.data * mask, (a,), lambda g: (g * mask,))


def sum_all(a):
    """The sum of every element of ``a``, as a scalar Tensor. (Lesson 07.)"""
    return Tensor(a.data.sum(), (a,), lambda g: (np.broadcast_to(g, a.shape),))


def mean(a):
    """The mean of every element of ``a``, as a scalar Tensor. (Lesson 07.)"""
    n = a.data.size
    return Tensor(a.data.mean(), (a,), lambda g: (np.broadcast_to(g / n, a.shape),))


def reshape(a, shape):
    """``a`` with a new shape: the same elements in the same order. (Lesson 07.)"""
    return Tensor(a.data.reshape(shape), (a,), lambda g: (g.reshape(a.shape),))


def _log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax(a):
    """``log(softmax(a))`` along the last axis, without overflow (each row's maximum subtracted first).
    (Lesson 07.)"""
    out = _log_softmax(a.data)
    return Tensor(out, (a,), lambda g: (g - np.exp(out) * g.sum(axis=-1, keepdims=True),))


def cross_entropy(logits, targets):
    """The mean negative log-likelihood of the integer ``targets`` under ``softmax(logits)``, a scalar Tensor.
    (Lesson 07.)"""
    targets = np.asarray(targets)
    rows = np.arange(len(targets))
    logp = _log_softmax(logits.data)

    def grad_fn(g):
        d = np.exp(logp)
        d[rows, targets] -= 1
        return (g * d / len(targets),)

    return Tensor(-logp[rows, targets].mean(), (logits,), grad_fn)


# ---------------------------------------------------------------- convolution and pooling


def unfold(x, kh, kw, stride=1, pad=0):
    """Lesson 04's ``im2col`` in NumPy: every ``kh`` x ``kw`` window of ``x`` (N, C, H, W), zero-padded by ``pad``,
    as the columns of an (N, C * kh * kw, H' * W') array, ordered as ``F.unfold`` orders them. (Lesson 07.)"""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def fold(cols, shape, kh, kw, stride=1, pad=0):
    """``col2im``, the transpose of ``unfold``: each column's values added back where its window lies in an array of
    ``shape`` (N, C, H, W) (overlapping windows add up; the padding is dropped). (Lesson 07.)"""
    n, c, h, w = shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, :, i, j]
    return out[:, :, pad:pad + h, pad:pad + w]


def conv2d(x, w, b, stride=1, pad=0):
    """A convolution layer (PyTorch's cross-correlation): ``x`` (N, C, H, W), ``w`` (F, C, kh, kw), ``b`` (F,) ->
    (N, F, H', W'), as one matrix product with ``unfold(x)``; backward through the same product, and ``fold`` for
    the input. (Lesson 07.)"""
    x, w, b = tensor(x), tensor(w), tensor(b)
    n, f, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
    ho, wo = (x.shape[2] + 2 * pad - kh) // stride + 1, (x.shape[3] + 2 * pad - kw) // stride + 1
    cols = unfold(x.data, kh, kw, stride, pad)                     # (N, K, L)
    w2 = w.data.reshape(f, -1)                                     # (F, K)
    out = (w2 @ cols).reshape(n, f, ho, wo) + b.data.reshape(1, f, 1, 1)

    def grad_fn(g):
        g2 = g.reshape(n, f, ho * wo)                              # (N, F, L)
        dw = np.einsum("nfl,nkl->fk", g2, cols).reshape(w.shape)
        dx = fold(w2.T @ g2, x.shape, kh, kw, stride, pad) if _wanted(x) else None
        return dx, dw, g.sum(axis=(0, 2, 3))

    return Tensor(out, (x, w, b), grad_fn)


def max_pool2d(x, k=2):
    """Max pooling over non-overlapping ``k`` x ``k`` windows of ``x`` (N, C, H, W) (H and W multiples of ``k``);
    each window's gradient goes to its maximum alone, the first one if several tie (as in PyTorch). (Lesson 07.)"""
    n, c, h, w = x.shape
    windows = x.data.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, -1)
    first = windows.argmax(axis=-1)
    out = np.take_along_axis(windows, first[..., None], axis=-1)[..., 0]

    def grad_fn(g):
        d = np.zeros_like(windows)
        np.put_along_axis(d, first[..., None], g[..., None], axis=-1)
        return (d.reshape(n, c, h // k, w // k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w),)

    return Tensor(out, (x,), grad_fn)


Tensor.__add__ = Tensor.__radd__ = add
Tensor.__mul__ = Tensor.__rmul__ = mul
Tensor.__neg__ = neg
Tensor.__sub__ = sub
Tensor.__rsub__ = lambda a, b: sub(b, a)
Tensor.__pow__ = power
Tensor.__truediv__ = div
Tensor.__rtruediv__ = lambda a, b: div(b, a)
Tensor.__matmul__ = matmul
Tensor.relu, Tensor.sum, Tensor.mean, Tensor.reshape = relu, sum_all, mean, reshape

# ---------------------------------------------------------------- layers, optimiser, training


class Module:
    """The base class of layers and models: ``parameters()``, ``zero_grad()``, and calling runs ``forward``.
    (Lesson 07.)"""

    def parameters(self):
        params = []
        for value in vars(self).values():
            items = value if isinstance(value, list | tuple) else [value]
            for item in items:
                if isinstance(item, Tensor):
                    params.append(item)
                elif hasattr(item, "parameters") and callable(item.parameters):
                    params += item.parameters()
        return params

    def zero_grad(self):
        """Every parameter's gradient set to zeros of its shape. (Lesson 07.)"""
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)

    def __call__(self, *args):
        return self.forward(*args)


class Linear(Module):
    """``x @ weight + bias``; the weight is stored ``(n_in, n_out)`` and starts, like the bias, uniform in
    ``±1/sqrt(n_in)`` (NumPy's global random state). (Lesson 07.)"""

    def __init__(self, n_in, n_out):
        bound = 1 / math.sqrt(n_in)
        self.weight = Tensor(np.random.uniform(-bound, bound, (n_in, n_out)))
        self.bias = Tensor(np.random.uniform(-bound, bound, n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class MLP(Module):
    """The lesson's network: 784 pixels -> ``n_hidden`` ReLU units -> 10 logits. (Lesson 07.)"""

    def __init__(self, n_hidden=128):
        self.hidden = Linear(784, n_hidden)
        self.out = Linear(n_hidden, 10)

    def forward(self, x):
        return self.out(relu(self.hidden(x)))


class CNN(Module):
    """The lesson's small CNN: ``channels`` 3x3 filters (padding 1) -> ReLU -> 2x2 max pooling -> a linear layer from
    ``channels * 14 * 14`` numbers to 10 logits, on (N, 784) pixels. The filters and their biases start uniform in
    ``±1/3`` (as ``nn.Conv2d``'s: 1/sqrt(C * kh * kw)), drawn before the linear layer's. (Lesson 07.)"""

    def __init__(self, channels=8):
        bound = 1 / math.sqrt(9)
        self.weight = Tensor(np.random.uniform(-bound, bound, (channels, 1, 3, 3)))
        self.bias = Tensor(np.random.uniform(-bound, bound, channels))
        self.out = Linear(channels * 14 * 14, 10)

    def forward(self, x):
        h = max_pool2d(relu(conv2d(reshape(x, (-1, 1, 28, 28)), self.weight, self.bias, pad=1)))
        return self.out(reshape(h, (h.shape[0], -1)))


class SGD:
    """Plain gradient descent: ``step()`` moves each parameter by ``-lr * grad``, in place. (Lesson 07.)"""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self):
        for p in self.params:
            p.data -= self.lr * p.grad

    def zero_grad(self):
        for p in self.params:
            p.grad = _zeros(p.shape)


def fit(epochs, model, loss_func, opt, x_train, y_train, bs):
    """Mini-batch SGD: each epoch in a new random order (NumPy's global random state); returns every batch's
    loss. (Lesson 07.)"""
    losses = []
    for _ in range(epochs):
        order = np.random.permutation(len(x_train))
        for start in range(0, len(x_train), bs):
            batch = order[start:start + bs]
            loss = loss_func(model(Tensor(x_train[batch], requires_grad=False)), y_train[batch])   # (speed)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


# ---------------------------------------------------------------- checking a gradient


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``d f(x) / dx`` by central differences, one element of ``x`` at a time (``f`` returns a number; ``x`` is
    changed and put back). (Lesson 07.)"""
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad
