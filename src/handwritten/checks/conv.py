"""Checks for lesson 04, convolutions by hand: ``corr2d``, ``Conv2D``, the output-shape
formula, the learned edge kernel, multi-channel correlation, 1x1 convolution, ``pool2d``, the receptive field
(``receptive_field`` by formula, ``influence`` by experiment) and a whole convolution layer, with loops
(``conv_forward_naive``) and without (``conv_forward_im2col``).

The oracle is PyTorch, through the course's answers in ``handwritten.reference.convolution``: ``F.conv2d``
computes cross-correlation exactly as the lesson defines it, and ``F.max_pool2d`` / ``F.avg_pool2d`` pool with
the same padding rules. Every call into the student's code goes through ``_core.call``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..reference import convolution as reference
from ._core import (CountOps, as_float, as_number, as_tensor, call, close, compare, dimension_hint, fail, generator,
                    not_hard_coded, observe, passed, passed_hidden, randn, references_in_place, seeded)

__all__ = [
    "conv2d", "conv2d_hidden", "conv_forward_im2col", "conv_forward_im2col_hidden", "conv_forward_naive",
    "conv_forward_naive_hidden", "corr2d", "corr2d_1x1", "corr2d_1x1_hidden", "corr2d_hidden", "corr2d_multi_in",
    "corr2d_multi_in_hidden", "corr2d_multi_in_out", "corr2d_multi_in_out_hidden", "influence", "influence_hidden",
    "learned_kernel", "learned_kernel_hidden", "output_shape", "output_shape_hidden", "pool2d", "pool2d_hidden",
    "pool2d_padding_stride", "pool2d_padding_stride_hidden", "receptive_field", "receptive_field_hidden",
]

# ---------------------------------------------------------------- the lesson's examples


def _worked_example():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    return X, K


def _hollow_square():
    """The 8x8 image with a 4x4 hole, and the edge kernel K = [[1, -1]]."""
    X = torch.ones((8, 8))
    X[2:6, 2:6] = 0
    return X, torch.tensor([[1.0, -1.0]])


def _multi_channel_example():
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    return X, K


def _random_shapes(g, n_cases, max_size=9):
    """Input and kernel shapes, non-square on purpose, including the 1x1 kernel and a kernel
    as large as the input."""
    cases = []
    for i in range(n_cases):
        nh, nw = (int(v) for v in torch.randint(2, max_size + 1, (2,), generator=g))
        if i == 0:
            kh, kw = 1, 1
        elif i == 1:
            kh, kw = nh, nw
        else:
            kh = int(torch.randint(1, nh + 1, (1,), generator=g))
            kw = int(torch.randint(1, nw + 1, (1,), generator=g))
        cases.append(((nh, nw), (kh, kw)))
    return cases


# ---------------------------------------------------------------- corr2d


def _corr2d_mistakes(X, K, Y):
    mistakes = [("this is convolution, not cross-correlation: the kernel is flipped. "
                 "Cross-correlation multiplies X[i + a, j + b] by K[a, b], without flipping K.",
                 reference.corr2d(X, K.flip(0, 1)))]
    if Y.shape[0] == Y.shape[1]:
        mistakes.append(("the output is transposed: Y[i, j] belongs to row i and column j.", Y.T))
    return mistakes


def _check_corr2d(fn, X, K, case):
    expected = reference.corr2d(X, K)
    compare("corr2d", call("corr2d", fn, X, K), expected, case=case,
            shape_hint=lambda got, want: dimension_hint(got, want, tuple(X.shape)),
            mistakes=_corr2d_mistakes(X, K, expected))


def corr2d(fn):
    """Visible check: the lesson's two examples."""
    examples = [(*_worked_example(), "the 3x3 example with the 2x2 kernel"),
                (*_hollow_square(), "the 8x8 hollow square with K = [[1, -1]]")]
    not_hard_coded("corr2d", fn, [(X, K) for X, K, _ in examples])
    for X, K, case in examples:
        _check_corr2d(fn, X, K, case)
    passed("corr2d", 2)


def corr2d_hidden(fn, seed):
    g = generator(seed)
    not_hard_coded("corr2d", fn, [(randn(g, 5, 6), randn(g, 2, 3)) for _ in range(2)])
    for i, (xs, ks) in enumerate(_random_shapes(g, 6)):
        dtype = torch.float64 if i % 2 else torch.float32
        X, K = randn(g, *xs, dtype=dtype), randn(g, *ks, dtype=dtype)
        _check_corr2d(fn, X, K, f"a random {xs} {str(dtype)[6:]} input and a {ks} kernel")
    passed_hidden("corr2d")


# ---------------------------------------------------------------- Conv2D


def _conv2d_outputs(cls, kernel_size, K, X):
    """Build ``Conv2D(kernel_size)``, set its weight to ``K`` and its bias to 0.5, run it on ``X`` and back-propagate
    the sum of its output: the output and the parameters' gradients (``observe``: beside the student's class)."""
    layer = call(f"Conv2D({tuple(kernel_size)})", cls, kernel_size)
    if not isinstance(layer, nn.Module):
        fail("Conv2D should be a subclass of nn.Module (class Conv2D(nn.Module): ...).")
    params = dict(layer.named_parameters())
    for name in ("weight", "bias"):
        if not isinstance(getattr(layer, name, None), torch.Tensor):
            fail(f"Conv2D needs a self.{name} attribute.")
        if name not in params:
            fail(f"self.{name} must be an nn.Parameter: a plain tensor is invisible to "
                 f".parameters(), so no optimiser would ever train it.")
    if tuple(layer.weight.shape) != tuple(kernel_size):
        fail(f"Conv2D({kernel_size}).weight has shape {tuple(layer.weight.shape)}, "
             f"expected the kernel size {tuple(kernel_size)}.")
    if layer.bias.numel() != 1:
        fail(f"the bias is one number shared by every output (shape (1,)), "
             f"not shape {tuple(layer.bias.shape)}.")
    with torch.no_grad():
        layer.weight.copy_(K)
        layer.bias.fill_(0.5)
    Y = as_tensor("Conv2D.forward", call("Conv2D.forward", layer, X))
    if Y.requires_grad:
        Y.sum().backward()
    return {"Y": Y.detach(), "requires_grad": Y.requires_grad, "weight_grad": layer.weight.grad,
            "bias_grad": layer.bias.grad}


def _check_conv2d(cls, kernel_size):
    """Check a ``Conv2D(kernel_size)`` layer built on ``corr2d`` (the reference one is used)."""
    g = generator(sum(kernel_size))
    X = randn(g, kernel_size[0] + 4, kernel_size[1] + 5)
    K = randn(g, *kernel_size)
    with references_in_place(cls, corr2d=reference.corr2d):
        seen = observe(_conv2d_outputs, cls, tuple(kernel_size), K, X)
    Y = seen["Y"]
    expected = reference.corr2d(X, K) + 0.5
    compare("Conv2D.forward", Y, expected, case=f"a {tuple(X.shape)} input",
            shape_hint=dimension_hint,
            mistakes=[("the bias is missing: forward returns corr2d(x, self.weight) + self.bias.",
                       reference.corr2d(X, K))])
    if not seen["requires_grad"]:
        fail("the output does not depend on the parameters through autograd: "
             "compute it from self.weight and self.bias with torch operations.")
    Kr = K.clone().requires_grad_(True)
    reference.corr2d(X, Kr).sum().backward()
    weight_grad, bias_grad = seen["weight_grad"], seen["bias_grad"]
    if not isinstance(weight_grad, torch.Tensor) or weight_grad.numel() != K.numel() \
            or not close(weight_grad.reshape(K.shape), Kr.grad):
        fail("the weight's gradient is wrong: forward should use self.weight as the kernel.")
    if not isinstance(bias_grad, torch.Tensor) or not close(bias_grad.sum(), torch.tensor(float(Y.numel()))):
        fail("the bias's gradient is wrong: add self.bias once to every output.")


def conv2d(cls):
    _check_conv2d(cls, (1, 2))
    passed("Conv2D", 1)


def conv2d_hidden(cls, seed):
    g = generator(seed)
    for _ in range(3):
        kh, kw = (int(v) for v in torch.randint(1, 5, (2,), generator=g))
        _check_conv2d(cls, (kh, kw))
    passed_hidden("Conv2D")


# ---------------------------------------------------------------- the output-shape formula


def _as_shape(name, value):
    def not_a_pair(error):
        return f"{name} should return a pair (height, width), got {value!r}." if isinstance(error, TypeError) else None

    shape = call(f"tuple({name}(...))", tuple, value, explain=not_a_pair)  # a generator runs student code
    if len(shape) != 2:
        fail(f"{name} should return a pair (height, width), got {value!r}.")
    for v in shape:
        if isinstance(v, float) or (isinstance(v, torch.Tensor) and v.is_floating_point()):
            fail(f"{name} returned {value!r}: sizes are whole numbers, use floor division //.")
    return tuple(int(v) for v in shape)


_WRONG_SHAPE_FORMULAS = [
    ("the first window is missing: the formula is (n - k + 2p + s) // s, i.e. (n - k + 2p) // s + 1.",
     lambda n, k, p, s: (n - k + 2 * p) // s),
    ("padding counted once: PyTorch's padding=p adds p rows at the top AND p at the bottom, "
     "so the formula has 2p.", lambda n, k, p, s: (n - k + p + s) // s),
    ("the stride is ignored: divide by s.", lambda n, k, p, s: n - k + 2 * p + 1),
    ("the padding is ignored: add 2p.", lambda n, k, p, s: (n - k + s) // s),
]


def _check_output_shapes(fn, cases):
    """Compare with nn.Conv2d on every case; explain a mismatch by the wrong formula that
    reproduces *all* of the student's answers, if there is one."""
    got = [_as_shape("conv_output_shape", call("conv_output_shape", fn, *case)) for case in cases]
    expected = [reference.conv_output_shape(*case) for case in cases]
    wrong = [i for i in range(len(cases)) if got[i] != expected[i]]
    if not wrong:
        return
    i = wrong[0]
    n, k, p, s = cases[i]
    message = (f"conv_output_shape for input {n}, kernel {k}, padding {p}, stride {s}: "
               f"got {got[i]}, nn.Conv2d gives {expected[i]}.")
    for description, formula in _WRONG_SHAPE_FORMULAS:
        if all(got[j][axis] == formula(*(arg[axis] for arg in cases[j]))
               for j in range(len(cases)) for axis in range(2)):
            fail(f"{message} It looks like {description}")
    fail(message)


_LESSON_SHAPE_CASES = [
    ((8, 8), (3, 3), (1, 1), (1, 1)),
    ((8, 8), (5, 3), (2, 1), (1, 1)),
    ((8, 8), (3, 3), (1, 1), (2, 2)),
    ((8, 8), (3, 5), (0, 1), (3, 4)),
]


def output_shape(fn):
    _check_output_shapes(fn, _LESSON_SHAPE_CASES)
    passed("conv_output_shape", len(_LESSON_SHAPE_CASES))


def output_shape_hidden(fn, seed):
    g = generator(seed)
    cases = []
    for _ in range(40):
        k = tuple(int(v) for v in torch.randint(1, 7, (2,), generator=g))
        p = tuple(int(torch.randint(0, kk // 2 + 1, (1,), generator=g)) for kk in k)
        s = tuple(int(v) for v in torch.randint(1, 5, (2,), generator=g))
        n = tuple(int(torch.randint(max(1, kk - 2 * pp), 30, (1,), generator=g)) for kk, pp in zip(k, p))
        cases.append((n, k, p, s))
    _check_output_shapes(fn, cases)
    passed_hidden("conv_output_shape")


# ---------------------------------------------------------------- learning the kernel


def _safe_learning_rate(X, kernel_size):
    """1 / the largest eigenvalue of the Hessian of the summed squared error: well inside the
    region 0 < lr < 2 / lambda_max where gradient descent converges. Also returns the Hessian's
    condition number, which says how many steps convergence takes."""
    kh, kw = kernel_size
    patches = X.double().unfold(0, kh, 1).unfold(1, kw, 1).reshape(-1, kh * kw)
    eig = torch.linalg.eigvalsh(2 * patches.T @ patches)
    return 1.0 / float(eig[-1]), float(eig[-1] / eig[0])


def _check_learned(fn, X, K_true, lr, num_steps, case):
    Y = reference.corr2d(X, K_true)
    got = as_tensor("learn_kernel", call("learn_kernel", fn, X.clone(), Y.clone(), tuple(K_true.shape), lr,
                                         num_steps))
    got = got.detach()
    if got.numel() == K_true.numel() and all(d == 1 for d in got.shape[:-2]):
        got = got.reshape(K_true.shape)
    if tuple(got.shape) != tuple(K_true.shape):
        fail(f"learn_kernel for {case}: return the kernel with shape {tuple(K_true.shape)}, "
             f"got {tuple(got.shape)}.")
    if not bool(torch.isfinite(got).all()) or float(got.abs().max()) > 1e6:
        fail(f"learn_kernel for {case}: training diverged (the kernel is {got.flatten().tolist()}). "
             f"Check the sign of the update (w -= lr * grad), that you zero the gradients every "
             f"step, and that you use the lr you are given.")
    if not close(got, K_true, rtol=0, atol=2e-2):
        fail(f"learn_kernel for {case}: learned {got.flatten().tolist()}, the true kernel is "
             f"{K_true.flatten().tolist()}. Did you zero the gradients every step, subtract "
             f"lr * grad, and run num_steps steps on the summed squared error?")


def learned_kernel(fn):
    X, K = _hollow_square()
    _check_learned(fn, X, K, lr=0.012, num_steps=100, case="the hollow square")
    passed("learn_kernel", 1)


def learned_kernel_hidden(fn, seed):
    g = generator(seed)
    for kernel_size in [(2, 2), (1, 3)]:
        X = randn(g, 7, 9)
        K = randn(g, *kernel_size)
        lr, condition = _safe_learning_rate(X, kernel_size)
        steps = int(math.ceil(12 * condition)) + 20
        _check_learned(fn, X, K, lr, steps, f"a random {tuple(X.shape)} image and a {kernel_size} kernel")
    passed_hidden("learn_kernel")


# ---------------------------------------------------------------- multiple channels


def _check_multi_in(fn, X, K, case):
    expected = reference.corr2d_multi_in(X, K)

    def hint(got, want):
        if got == (X.shape[0], *want):
            return "It returned one map per input channel: add them up into a single map."
        return dimension_hint(got, want, tuple(X.shape))

    with references_in_place(fn, corr2d=reference.corr2d):
        got = call("corr2d_multi_in", fn, X, K)
    compare("corr2d_multi_in", got, expected, case=case, shape_hint=hint,
            mistakes=[("only the first channel is used: sum corr2d(x, k) over every channel.",
                       reference.corr2d(X[0], K[0]))])


def corr2d_multi_in(fn):
    X, K = _multi_channel_example()
    _check_multi_in(fn, X, K, "the lesson's 2-channel example")
    passed("corr2d_multi_in", 1)


def corr2d_multi_in_hidden(fn, seed):
    g = generator(seed)
    for i, (xs, ks) in enumerate(_random_shapes(g, 4, max_size=7)):
        c = 1 + i
        dtype = torch.float64 if i % 2 else torch.float32
        X, K = randn(g, c, *xs, dtype=dtype), randn(g, c, *ks, dtype=dtype)
        _check_multi_in(fn, X, K, f"a random ({c}, {xs[0]}, {xs[1]}) input")
    passed_hidden("corr2d_multi_in")


def _check_multi_in_out(fn, X, K, case):
    expected = reference.corr2d_multi_in_out(X, K)

    def hint(got, want):
        if sorted(got) == sorted(want) and got != want:
            return "Stack the output channels along dim 0: the result is (c_o, h, w)."
        return dimension_hint(got, want, tuple(X.shape))

    with references_in_place(fn, corr2d=reference.corr2d, corr2d_multi_in=reference.corr2d_multi_in):
        got = call("corr2d_multi_in_out", fn, X, K)
    compare("corr2d_multi_in_out", got, expected, case=case, shape_hint=hint)


def corr2d_multi_in_out(fn):
    X, K = _multi_channel_example()
    K = torch.stack((K, K + 1, K + 2), 0)
    _check_multi_in_out(fn, X, K, "the lesson's example with 3 output channels")
    passed("corr2d_multi_in_out", 1)


def corr2d_multi_in_out_hidden(fn, seed):
    g = generator(seed)
    for i, (xs, ks) in enumerate(_random_shapes(g, 4, max_size=6)):
        ci, co = 1 + i % 3, 2 + i
        dtype = torch.float64 if i % 2 else torch.float32
        X, K = randn(g, ci, *xs, dtype=dtype), randn(g, co, ci, *ks, dtype=dtype)
        _check_multi_in_out(fn, X, K, f"a random ({ci}, {xs[0]}, {xs[1]}) input and {co} output channels")
    passed_hidden("corr2d_multi_in_out")


def _check_1x1(fn, X, K, case):
    expected = reference.corr2d_multi_in_out(X, K)
    co, ci = K.shape[:2]
    mixed_wrong = (K.reshape(ci, co).T @ X.reshape(ci, -1)).reshape(co, *X.shape[1:])
    with references_in_place(fn, corr2d=reference.corr2d, corr2d_multi_in=reference.corr2d_multi_in,
                             corr2d_multi_in_out=reference.corr2d_multi_in_out):
        got = call("corr2d_multi_in_out_1x1", fn, X, K)
    compare("corr2d_multi_in_out_1x1", got, expected, case=case, shape_hint=dimension_hint,
            mistakes=[("the channel-mixing matrix is transposed: reshape K to (c_o, c_i) and "
                       "compute K @ X with X reshaped to (c_i, h * w).", mixed_wrong)])


def corr2d_1x1(fn):
    g = generator(11)
    X, K = randn(g, 3, 3, 3), randn(g, 2, 3, 1, 1)
    _check_1x1(fn, X, K, "a (3, 3, 3) input and a (2, 3, 1, 1) kernel")
    passed("corr2d_multi_in_out_1x1", 1)


def corr2d_1x1_hidden(fn, seed):
    g = generator(seed)
    for ci, co, h, w, dtype in [(3, 3, 4, 4, torch.float32), (2, 5, 3, 7, torch.float64),
                                (4, 1, 6, 2, torch.float32)]:
        X, K = randn(g, ci, h, w, dtype=dtype), randn(g, co, ci, 1, 1, dtype=dtype)
        _check_1x1(fn, X, K, f"a ({ci}, {h}, {w}) input and a ({co}, {ci}, 1, 1) kernel")
    passed_hidden("corr2d_multi_in_out_1x1")


# ---------------------------------------------------------------- pooling


def _pool_mistakes(X, pool_size, mode, expected, padding=(0, 0), stride=(1, 1)):
    other = "avg" if mode == "max" else "max"
    ph, pw = pool_size
    mistakes = [(f"mode={mode!r} returned the {other} of each window: is `mode` ignored?",
                 reference.pool2d(X, pool_size, other, padding, stride))]
    if mode == "avg":
        mistakes.append(("avg pooling returns the mean of each window, not its sum: "
                         "divide by p_h * p_w (or use .mean()).", expected * (ph * pw)))
    else:
        mistakes.append(("each output is the max of its own window X[i:i + p_h, j:j + p_w], "
                         "not of the whole image.", torch.full_like(expected, float(X.max()))))
    if any(padding):
        (Xf,) = as_float(X)
        if mode == "max":
            zero_padded = F.max_pool2d(F.pad(Xf, (padding[1],) * 2 + (padding[0],) * 2)[None, None],
                                       pool_size, stride=stride)[0, 0]
            mistakes.append(("max pooling pads with -inf, not 0: a padded zero would beat every "
                             "negative value (F.max_pool2d never picks a padded cell).", zero_padded))
        else:
            mistakes.append(("avg pooling divides by the whole window p_h * p_w, padded zeros "
                             "included, as nn.AvgPool2d does by default (count_include_pad=True).",
                             F.avg_pool2d(Xf[None, None], pool_size, stride=stride, padding=padding,
                                          count_include_pad=False)[0, 0]))
    return mistakes


def _pool_hint(got, want):
    if len(got) == len(want) and all(g <= w for g, w in zip(got, want)) and got != want:
        return ("Too small: pool2d's stride is 1 unless you pass one (unlike nn.MaxPool2d, whose "
                "stride defaults to the window size).")
    return dimension_hint(got, want)


def _check_pool(fn, X, pool_size, mode, case, **kwargs):
    expected = reference.pool2d(X, pool_size, mode, **kwargs)
    if mode == "max" and not kwargs:
        got = call(f"pool2d(mode={mode!r})", fn, X, pool_size)  # the default mode is 'max'
    else:
        got = call(f"pool2d(mode={mode!r})", fn, X, pool_size, mode, **kwargs)
    compare(f"pool2d(mode={mode!r})", got, expected, case=case, shape_hint=_pool_hint,
            mistakes=_pool_mistakes(X, pool_size, mode, expected, **kwargs))


def pool2d(fn):
    X, _ = _worked_example()
    _check_pool(fn, X, (2, 2), "max", "the 3x3 example")
    _check_pool(fn, X, (2, 2), "avg", "the 3x3 example")
    passed("pool2d", 2)


def pool2d_hidden(fn, seed):
    g = generator(seed)
    for i, (xs, ks) in enumerate(_random_shapes(g, 6)):
        dtype = torch.float64 if i % 2 else torch.float32
        X = randn(g, *xs, dtype=dtype)
        for mode in ("max", "avg"):
            _check_pool(fn, X, ks, mode, f"a random {xs} input and a {ks} window")
    passed_hidden("pool2d")


def pool2d_padding_stride(fn):
    X = torch.arange(20.0).reshape(4, 5) - 25  # negative, so zero padding would show
    for mode in ("max", "avg"):
        _check_pool(fn, X, (3, 3), mode, "a 4x5 input, padding (1, 1), stride (2, 2)",
                    padding=(1, 1), stride=(2, 2))
    passed("pool2d with padding and stride", 2)


def pool2d_padding_stride_hidden(fn, seed):
    g = generator(seed)
    for _ in range(6):
        k = tuple(int(v) for v in torch.randint(1, 5, (2,), generator=g))
        p = tuple(int(torch.randint(0, kk // 2 + 1, (1,), generator=g)) for kk in k)
        s = tuple(int(v) for v in torch.randint(1, 4, (2,), generator=g))
        n = tuple(int(torch.randint(kk, 10, (1,), generator=g)) for kk in k)
        X = randn(g, *n) - 1
        for mode in ("max", "avg"):
            _check_pool(fn, X, k, mode, f"a random {n} input, window {k}, padding {p}, stride {s}",
                        padding=p, stride=s)
    passed_hidden("pool2d with padding and stride")



# ---------------------------------------------------------------- the receptive field, by formula


_WRONG_FIELDS = [
    ("the strides are ignored: after a stride-s layer, neighbouring units are s input pixels apart, so every "
     "later layer's k - 1 extra units count s times (times every stride below).",
     lambda layers: 1 + sum(k - 1 for k, _ in layers)),
    ("each layer's own stride is counted in its own step: a layer's window is spread by the strides of the "
     "layers *below* it. Add (k - 1) * jump first, then multiply the jump by this layer's stride.",
     lambda layers: _own_stride_first(layers)),
    ("the kernel sizes are multiplied: two 3x3 layers see 5x5 pixels, not 9x9. Each layer adds k - 1 units "
     "of the layer below it.", lambda layers: math.prod(k for k, _ in layers)),
    ("the kernel sizes are added: two 3x3 layers see 5x5 pixels, not 6x6. Each layer adds k - 1 units of the "
     "layer below it, and one unit of the input is one pixel.", lambda layers: sum(k for k, _ in layers)),
]


def _own_stride_first(layers):
    size, jump = 1, 1
    for k, s in layers:
        jump *= s
        size += (k - 1) * jump
    return size


def _field_of(value) -> int:
    number = as_number("receptive_field", value)
    if number != int(number):
        fail(f"receptive_field returned {value!r}: a receptive field is a whole number of pixels.")
    return int(number)


def _describe(layers) -> str:
    return "[" + ", ".join(f"(k={k}, s={s})" for k, s in layers) + "]"


def _check_fields(fn, stacks):
    """Compare with the reference on every stack; name the wrong formula that explains *all* of the answers."""
    got = [_field_of(call("receptive_field", fn, [tuple(layer) for layer in layers])) for layers in stacks]
    expected = [reference.receptive_field(layers) for layers in stacks]
    wrong = [i for i in range(len(stacks)) if got[i] != expected[i]]
    if not wrong:
        return
    i = wrong[0]
    message = (f"receptive_field({_describe(stacks[i])}) returned {got[i]}, but one unit of the last layer sees "
               f"{expected[i]}x{expected[i]} input pixels.")
    for description, formula in _WRONG_FIELDS:
        if all(got[j] == formula(stacks[j]) for j in range(len(stacks))):
            fail(f"{message} It looks like {description}")
    fail(message)


_LESSON_STACKS = [
    [(3, 1)],
    [(3, 1), (3, 1)],
    [(3, 2), (3, 1)],
    [(5, 1), (2, 2), (5, 1), (2, 2)],
]


def receptive_field(fn):
    """Visible check: one and two 3x3 convolutions, a stride-2 one below a 3x3, and LeNet's four layers."""
    _check_fields(fn, _LESSON_STACKS)
    passed("receptive_field", len(_LESSON_STACKS))


def receptive_field_hidden(fn, seed):
    """Hidden check: no layer at all, and twenty random stacks of up to six layers (kernels 1-7, strides 1-3)."""
    g = generator(seed)
    stacks = [[]]
    for _ in range(20):
        depth = int(torch.randint(1, 7, (1,), generator=g))
        stacks.append([(int(torch.randint(1, 8, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g)))
                       for _ in range(depth)])
    _check_fields(fn, stacks)
    passed_hidden("receptive_field")


# ---------------------------------------------------------------- the receptive field, by experiment


def _influence_net(spec, seed, dtype="float32"):
    """The network ``spec`` describes, its weights drawn from ``seed``: ("conv", c_in, c_out, k, stride),
    ("max", k, stride), ("avg", k, stride) or ("relu",) layers."""
    def make():
        layers = []
        for kind, *args in spec:
            if kind == "conv":
                c_in, c_out, k, stride = args
                layers.append(nn.Conv2d(c_in, c_out, k, stride=stride))
            elif kind == "relu":
                layers.append(nn.ReLU())
            else:
                layers.append((nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(args[0], stride=args[1]))
        return nn.Sequential(*layers).to(getattr(torch, dtype))
    return seeded(seed, make)


def _influence_seen(fn, spec, seed, dtype, x, i, j):
    """Build the network beside the student's code, run ``influence(net, x, i, j)``, return what it gave
    (``observe``)."""
    net = _influence_net(spec, seed, dtype)
    got = call("influence", fn, net, x, i, j)
    return got.detach().clone() if isinstance(got, torch.Tensor) else type(got).__name__


def _check_influence(fn, spec, seed, x, i, j, case):
    dtype = str(x.dtype).removeprefix("torch.")
    got = observe(_influence_seen, fn, spec, seed, dtype, x.clone(), i, j)
    if isinstance(got, str):
        fail(f"influence for {case} should return a torch.Tensor (x.grad), but it returned {got}.")
    net = _influence_net(spec, seed, dtype)
    expected = reference.influence(net, x, i, j)

    def grad_of(select):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(select(net(xr[None, None])), xr)
        return grad

    mistakes = [
        ("this is the gradient of the *sum of every output unit*: backpropagate from the one unit "
         "out[0, 0, i, j] only.", grad_of(lambda out: out.sum())),
        ("this is the gradient of the unit at every channel added up: take channel 0 only, out[0, 0, i, j].",
         grad_of(lambda out: out[0, :, i, j].sum())),
        ("this is where the gradient is non-zero, not the gradient itself: return x.grad.",
         expected.ne(0).to(expected.dtype)),
    ]
    out_shape = tuple(net(x[None, None]).shape[2:])
    if j < out_shape[0] and i < out_shape[1] and i != j:
        mistakes.append(("rows and columns are swapped: i is the row of the output unit and j its column, "
                         "out[0, 0, i, j].", grad_of(lambda out: out[0, 0, j, i])))

    def hint(got_shape, want):
        if got_shape[-2:] == want and len(got_shape) > 2:
            return "Return the gradient with the image's own shape (H, W): drop the batch and channel dimensions."
        return None

    compare("influence", got, expected, case=case, shape_hint=hint, mistakes=mistakes, atol=1e-6)


_VISIBLE_NET = [("conv", 1, 2, 3, 1), ("avg", 2, 2), ("conv", 2, 2, 3, 1)]


def influence(fn):
    """Visible check: a 3x3 convolution, 2x2 average pooling and another 3x3 convolution (2 channels), units
    (2, 3) and (0, 0) of a random 14x16 image."""
    g = generator(4)
    x = torch.rand(14, 16, generator=g)
    for i, j in [(2, 3), (0, 0)]:
        _check_influence(fn, _VISIBLE_NET, 7, x, i, j, f"the unit ({i}, {j}) of conv3-avgpool2-conv3 on a 14x16 image")
    passed("influence", 2)


def influence_hidden(fn, seed):
    """Hidden check: strides, max pooling and ReLU, three channels, float64, units at the corners."""
    g = generator(seed)
    nets = [
        ([("conv", 1, 3, 5, 1), ("relu",), ("max", 2, 2), ("conv", 3, 2, 3, 1)], (20, 18), torch.float32),
        ([("conv", 1, 2, 3, 2), ("conv", 2, 3, 3, 1)], (15, 13), torch.float64),
        ([("conv", 1, 2, 2, 1), ("avg", 3, 1), ("conv", 2, 2, 1, 1)], (9, 11), torch.float32),
    ]
    for k, (spec, shape, dtype) in enumerate(nets):
        x = randn(g, *shape, dtype=dtype)
        out_h, out_w = _influence_net(spec, 0)(torch.zeros(1, 1, *shape)).shape[2:]
        for i, j in [(out_h - 1, out_w - 1), (int(torch.randint(0, out_h, (1,), generator=g)), 0)]:
            _check_influence(fn, spec, seed + k, x, i, j, f"the unit ({i}, {j}) of a random {len(spec)}-layer "
                                                           f"network on a {shape} {str(dtype)[6:]} image")
    passed_hidden("influence")


# ---------------------------------------------------------------- a whole convolution layer


_CONVOLUTIONS = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d"}


class _Recorder(CountOps):
    """Counts the tensor operations, and notes whether a library convolution was among them."""

    def __init__(self):
        super().__init__()
        self.convolved = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _CONVOLUTIONS:
            self.convolved = True
        return super().__torch_function__(func, types, args, kwargs)


def _conv_seen(name, fn, x, w, b, stride, pad):
    """What ``fn(x, w, b, stride, pad)`` returns, how many tensor operations it made, and whether it called a
    library convolution (``observe``: counted where it runs)."""
    with _Recorder() as recorder:
        out = call(name, fn, x, w, b, stride, pad)
    if isinstance(out, torch.Tensor):
        out = out.detach()
    return {"out": out, "operations": recorder.count, "convolved": recorder.convolved}


def _conv_mistakes(x, w, b, stride, pad, expected):
    mistakes = [
        ("the bias is missing: add b[f] to every output of filter f.", F.conv2d(x, w, None, stride, pad)),
        ("the kernel is flipped (that is true convolution): multiply each window by w[f] as it is.",
         F.conv2d(x, w.flip(-2, -1), b, stride, pad)),
        ("only the first input channel is used: each output sums the window times the kernel over *every* "
         "channel.", F.conv2d(x[:, :1], w[:, :1], b, stride, pad)),
    ]
    if stride > 1:
        dense = F.conv2d(x, w, b, 1, pad)[..., :expected.shape[2], :expected.shape[3]]
        mistakes.append(("the output has the right shape, but its windows are one pixel apart: output (i, j) "
                         "starts at row i * stride and column j * stride.", dense))
    return mistakes


def _conv_hint(x, w, stride, pad):
    n, f = x.shape[0], w.shape[0]

    def size(s, p):
        return tuple((d + 2 * p - k) // s + 1 for d, k in zip(x.shape[2:], w.shape[2:]))

    def hint(got, want):
        if got == (f, n, *want[2:]) and f != n:
            return "The first two dimensions are swapped: the output is (N, F, H', W'), out[n, f] for image n."
        if len(got) == 4 and got[2:] == size(stride, 0) and pad:
            return (f"Without padding: add pad={pad} zeros on every side of each image first "
                    f"(F.pad(x, (pad, pad, pad, pad)) pads the last two dimensions).")
        if len(got) == 4 and got[2:] == size(1, pad) and stride > 1:
            return f"The stride is ignored: H' = (H + 2 pad - kh) // stride + 1, with stride={stride}."
        return dimension_hint(got, want)

    return hint


def _check_conv_forward(name, fn, x, w, b, stride, pad, case):
    expected = reference.conv_forward(x, w, b, stride, pad)
    seen = observe(_conv_seen, name, fn, x.clone(), w.clone(), b.clone(), stride, pad)
    if seen["convolved"]:
        fail(f"{name} calls PyTorch's convolution (F.conv2d or nn.Conv2d): this exercise builds it, from "
             f"{'loops' if name.endswith('naive') else 'unfold and one matrix multiply'}. F.conv2d is what it is "
             f"checked against.")
    xf, wf, bf = as_float(x, w, b)
    compare(name, seen["out"], expected, case=case, shape_hint=_conv_hint(x, w, stride, pad),
            mistakes=_conv_mistakes(xf, wf, bf, stride, pad, expected))
    return seen["operations"]


def _conv_case(g, n, c, f, size, kernel, dtype=torch.float32):
    return (randn(g, n, c, *size, dtype=dtype), randn(g, f, c, *kernel, dtype=dtype), randn(g, f, dtype=dtype))


_LESSON_CONV_CASES = [  # (N, C, F, (H, W), (kh, kw), stride, pad)
    (2, 3, 4, (5, 6), (3, 2), 1, 0),
    (2, 2, 3, (7, 6), (3, 3), 2, 1),
]


def _conv_visible(name, fn):
    g = generator(17)
    for n, c, f, size, kernel, stride, pad in _LESSON_CONV_CASES:
        x, w, b = _conv_case(g, n, c, f, size, kernel)
        _check_conv_forward(name, fn, x, w, b, stride, pad,
                            f"x {tuple(x.shape)}, w {tuple(w.shape)}, stride {stride}, pad {pad}")


def _conv_hidden(name, fn, seed):
    g = generator(seed)
    cases = [(1, 1, 1, (4, 4), (1, 1), 1, 0, torch.float32), (3, 2, 2, (6, 5), (4, 3), 1, 2, torch.float64),
             (2, 3, 1, (8, 7), (3, 3), 3, 1, torch.float32), (1, 2, 3, (5, 9), (2, 4), 2, 0, torch.float64),
             (2, 1, 2, (3, 3), (5, 5), 1, 1, torch.float32)]
    for n, c, f, size, kernel, stride, pad, dtype in cases:
        x, w, b = _conv_case(g, n, c, f, size, kernel, dtype)
        _check_conv_forward(name, fn, x, w, b, stride, pad,
                            f"x {tuple(x.shape)} {str(dtype)[6:]}, w {tuple(w.shape)}, stride {stride}, pad {pad}")


def conv_forward_naive(fn):
    """Visible check: two images with three channels and four filters; then stride 2 and padding 1; compared
    with F.conv2d, which the answer itself may not call."""
    _conv_visible("conv_forward_naive", fn)
    passed("conv_forward_naive", len(_LESSON_CONV_CASES))


def conv_forward_naive_hidden(fn, seed):
    """Hidden check: one image, one channel and a 1x1 kernel; float64; strides 2 and 3; padding up to 2; a
    kernel larger than the image, which padding makes fit."""
    _conv_hidden("conv_forward_naive", fn, seed)
    passed_hidden("conv_forward_naive")


def _check_no_loops(fn, seed):
    """Fail if the number of operations ``conv_forward_im2col`` makes grows with the images, the filters or the
    image size: a vectorised answer makes the same handful whatever their number."""
    g = generator(seed)
    sizes = {"base": (1, 2, 2, (6, 6)), "images": (5, 2, 2, (6, 6)), "filters": (1, 2, 6, (6, 6)),
             "pixels": (1, 2, 2, (12, 12))}
    said = {"base": "1 image, 2 filters and 6x6 pixels", "images": "5 images", "filters": "6 filters",
            "pixels": "12x12 pixels"}
    counts = {}
    for what, (n, c, f, size) in sizes.items():
        x, w, b = _conv_case(g, n, c, f, size, (3, 3))
        counts[what] = _check_conv_forward("conv_forward_im2col", fn, x, w, b, 1, 1,
                                           f"x {tuple(x.shape)}, w {tuple(w.shape)}, stride 1, pad 1")
    grows = [what for what in ("images", "filters", "pixels") if counts[what] > counts["base"] + 4]
    if grows:
        made = ", ".join(f"{count} with {said[what]}" for what, count in counts.items())
        fail(f"conv_forward_im2col made {made} tensor operations: their number grows with the "
             f"{' and the '.join(grows)}, so it loops over them. Without loops, a fixed handful of operations does "
             f"every window at once: unfold the padded images into columns, then one matrix multiply with "
             f"w.reshape(F, -1).")


def conv_forward_im2col(fn):
    """Visible check: the same two cases as conv_forward_naive's, and no loop (as many tensor operations for 5
    images, 6 filters or 12x12 pixels as for 1 image, 2 filters and 6x6 pixels)."""
    _conv_visible("conv_forward_im2col", fn)
    _check_no_loops(fn, 23)
    passed("conv_forward_im2col", len(_LESSON_CONV_CASES) + 1)


def conv_forward_im2col_hidden(fn, seed):
    _conv_hidden("conv_forward_im2col", fn, seed)
    _check_no_loops(fn, seed)
    passed_hidden("conv_forward_im2col")
