"""Lesson 04's checks (``handwritten.checks.conv``): what the grader fixtures do not show. The course's own
answers pass every check, visible and hidden; errors in student code fail the check that ran it, by name;
unfinished work propagates; odd return values are explained. (tests/test_checks.py has the corr2d ones.)"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from handwritten.checks import conv as check
from handwritten.reference import convolution as reference

ANSWERS = {  # each visible check and the course's answer it must pass
    "corr2d": reference.corr2d,
    "output_shape": reference.conv_output_shape,
    "corr2d_multi_in": reference.corr2d_multi_in,
    "corr2d_multi_in_out": reference.corr2d_multi_in_out,
    "corr2d_1x1": reference.corr2d_multi_in_out,
    "pool2d": reference.pool2d,
    "pool2d_padding_stride": reference.pool2d,
    "receptive_field": reference.receptive_field,
    "influence": reference.influence,
}


class Conv2D(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return reference.corr2d(x, self.weight) + self.bias


def learn_kernel(X, Y, kernel_size, lr, num_steps):
    conv = nn.Conv2d(1, 1, kernel_size=kernel_size, bias=False)
    for _ in range(num_steps):
        loss = ((conv(X[None, None]) - Y[None, None]) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        with torch.no_grad():
            conv.weight -= lr * conv.weight.grad
    return conv.weight.detach().reshape(kernel_size)


def conv_forward_naive(x, w, b, stride=1, pad=0):
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    kh, kw = w.shape[2:]
    out = x.new_zeros(x.shape[0], w.shape[0], (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1)
    for n, f, i, j in itertools.product(*(range(d) for d in out.shape)):
        out[n, f, i, j] = (xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw] * w[f]).sum() + b[f]
    return out


def conv_forward_im2col(x, w, b, stride=1, pad=0):
    n, f = len(x), len(w)
    h, w_ = ((size + 2 * pad - k) // stride + 1 for size, k in zip(x.shape[2:], w.shape[2:]))
    return (w.reshape(f, -1) @ reference.im2col(x, w.shape[2:], stride, pad) + b[:, None]).reshape(n, f, h, w_)


# answers written here, where the course's reference cannot stand in (a class, a training loop, and the layer,
# whose checks refuse the F.conv2d the reference is)
WRITTEN_HERE = {"conv2d": Conv2D, "learned_kernel": learn_kernel, "conv_forward_naive": conv_forward_naive,
                "conv_forward_im2col": conv_forward_im2col}


def test_every_visible_check_has_a_hidden_one():
    visible = [name for name in check.__all__ if not name.endswith("_hidden")]
    assert sorted(visible) == sorted([*ANSWERS, *WRITTEN_HERE])
    assert all(f"{name}_hidden" in check.__all__ for name in visible)


@pytest.mark.parametrize("name", sorted([*ANSWERS, *WRITTEN_HERE]))
def test_the_course_answers_pass_visible_and_hidden(name, capsys):
    answer = {**ANSWERS, **WRITTEN_HERE}[name]
    getattr(check, name)(answer)
    getattr(check, f"{name}_hidden")(answer, seed=5)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "public checks passed" in out[0] and out[1].endswith(": hidden tests passed.")


def test_the_layer_checks_refuse_the_library_convolution_they_compare_with():
    with pytest.raises(AssertionError, match="calls PyTorch's convolution"):
        check.conv_forward_naive(reference.conv_forward)


@pytest.mark.parametrize("run", [
    lambda fn: check.influence(fn),
    lambda fn: check.conv_forward_im2col(fn),
    lambda fn: check.receptive_field_hidden(fn, seed=1),
    lambda fn: check.pool2d(fn),
    lambda fn: check.output_shape(fn),
    lambda fn: check.conv2d(fn),
    lambda fn: check.learned_kernel_hidden(fn, seed=1),
    lambda fn: check.corr2d_multi_in_out(fn),
])
def test_unfinished_work_raises_not_implemented(run):
    def unfinished(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        run(unfinished)


@pytest.mark.parametrize("run,fragment", [
    (lambda fn: check.pool2d(fn), "pool2d(mode='max') raised ZeroDivisionError"),
    (lambda fn: check.conv2d(fn), "Conv2D((1, 2)) raised ZeroDivisionError"),
    (lambda fn: check.corr2d_1x1(fn), "corr2d_multi_in_out_1x1 raised ZeroDivisionError"),
])
def test_an_error_in_student_code_fails_the_check_and_names_it(run, fragment):
    def broken(*args, **kwargs):
        return 1 / 0

    with pytest.raises(AssertionError) as failure:
        run(broken)
    assert fragment in str(failure.value)


def test_a_forward_that_fails_is_named():
    class Broken(Conv2D):
        def forward(self, x):
            raise IndexError("no such row")

    with pytest.raises(AssertionError, match="Conv2D.forward raised IndexError: no such row"):
        check.conv2d(Broken)


def test_a_conv2d_without_a_bias_parameter_is_explained():
    class NoBias(nn.Module):
        def __init__(self, kernel_size):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(kernel_size))

        def forward(self, x):
            return reference.corr2d(x, self.weight)

    with pytest.raises(AssertionError, match="needs a self.bias attribute"):
        check.conv2d(NoBias)


@pytest.mark.parametrize("answer,fragment", [
    (lambda n, k, p=(0, 0), s=(1, 1): 8, "should return a pair"),
    (lambda n, k, p=(0, 0), s=(1, 1): (8, 8, 1), "should return a pair"),
    (lambda n, k, p=(0, 0), s=(1, 1): tuple((a - b + 2 * c + d) / d for a, b, c, d in zip(n, k, p, s)),
     "floor division"),
])
def test_output_shapes_that_are_not_pairs_of_whole_numbers_are_explained(answer, fragment):
    with pytest.raises(AssertionError, match=fragment):
        check.output_shape(answer)


def test_output_shape_may_be_a_generator_or_a_list():
    check.output_shape(lambda n, k, p=(0, 0), s=(1, 1): ((a - b + 2 * c + d) // d for a, b, c, d in zip(n, k, p, s)))
    check.output_shape(lambda n, k, p=(0, 0), s=(1, 1): [(a - b + 2 * c + d) // d for a, b, c, d in zip(n, k, p, s)])


def test_a_wrong_formula_is_named_only_when_it_explains_every_answer():
    def stride_ignored(n, k, p=(0, 0), s=(1, 1)):
        return tuple(a - b + 2 * c + 1 for a, b, c in zip(n, k, p))

    with pytest.raises(AssertionError, match="the stride is ignored"):
        check.output_shape_hidden(stride_ignored, seed=3)

    def wrong_once(n, k, p=(0, 0), s=(1, 1)):
        h, w = reference.conv_output_shape(n, k, p, s)
        return (h + 1, w) if tuple(n) == (8, 8) and tuple(s) == (2, 2) else (h, w)

    with pytest.raises(AssertionError) as failure:
        check.output_shape(wrong_once)
    assert "nn.Conv2d gives (4, 4)" in str(failure.value) and "It looks like" not in str(failure.value)


def test_multi_in_runs_with_the_reference_corr2d_in_place():
    """A wrong corr2d costs only its own test: corr2d_multi_in is checked with the course's corr2d."""
    namespace = {"corr2d": lambda X, K: torch.zeros(1)}
    exec("def corr2d_multi_in(X, K):\n    return sum(corr2d(x, k) for x, k in zip(X, K))", namespace)
    check.corr2d_multi_in(namespace["corr2d_multi_in"])
    check.corr2d_multi_in_hidden(namespace["corr2d_multi_in"], seed=2)
    assert namespace["corr2d"](None, None).shape == (1,)  # the student's own corr2d is back
