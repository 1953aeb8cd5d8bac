"""The seam across the grading boundary, with the kernel's agent in this process: what crosses is data, the
student's objects stay where they are, and errors and messages are the ones the seam gives in the kernel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handwritten.checks import _agent, _core, _remote
from handwritten.checks.conv import conv2d, corr2d
from handwritten.reference import convolution as reference


def kernel(source: str):
    """A student's namespace, and a session that reaches it only through the agent's text interface."""
    namespace = {"torch": torch, "nn": nn}
    exec(source, namespace)
    sent = []

    def send(text: str) -> str:
        sent.append(text)
        return _agent.serve(text, namespace)

    return namespace, _remote.Session(send), sent


def test_a_call_crosses_as_text_and_comes_back_as_data():
    namespace, session, sent = kernel("def double(x):\n    print('noise')\n    return x * 2\n")
    with session.running():
        got = _core.call("double", session.name("double"), torch.ones(3))
    assert torch.equal(got, torch.full((3,), 2.0)) and len(sent) == 1 and isinstance(sent[0], str)


def test_what_is_not_data_stays_in_the_kernel_as_a_reference_named_like_it():
    namespace, session, _ = kernel("class Box:\n    def __init__(self, v):\n        self.v = v\n"
                                   "    def get(self):\n        return self.v + 1\n")
    with session.running():
        box = _core.call("Box", session.name("Box"), torch.tensor(1.0))
        assert type(box).__name__ == "Box" and not isinstance(box, torch.Tensor)
        assert _core.call("Box.get", box.get) == 2.0  # a bound method stays there too
        assert box.v == 1.0  # an attribute comes back as data
        with pytest.raises(_remote.RemoteError):
            box()  # only through the seam
        with pytest.raises(_remote.RemoteError):
            box.v = 3


def test_errors_read_as_in_the_kernel():
    _, session, _ = kernel("def broken(x):\n    return x + 'a'\n"
                           "def unfinished(x):\n    raise NotImplementedError()\n"
                           "class MyError(KeyError):\n    pass\n"
                           "def odd(x):\n    raise MyError('mine')\n")
    with session.running():
        with pytest.raises(AssertionError, match="broken raised TypeError: unsupported operand"):
            _core.call("broken", session.name("broken"), 1)
        with pytest.raises(NotImplementedError):
            _core.call("unfinished", session.name("unfinished"), 1)
        seen = []
        with pytest.raises(AssertionError, match="odd raised MyError: 'mine'"):
            _core.call("odd", session.name("odd"), 1, explain=lambda e: seen.append(isinstance(e, KeyError)))
        assert seen == [True]
        with pytest.raises(_remote.MissingName, match="'missing' is not defined"):
            _core.call("missing", session.name("missing"), 1)


def test_a_check_cannot_send_its_own_objects():
    _, session, _ = kernel("def f(m):\n    return m\n")
    with session.running(), pytest.raises(_remote.RemoteError, match="Linear"):
        _core.call("f", session.name("f"), nn.Linear(2, 2))
    with session.running(), pytest.raises(_remote.RemoteError, match="function"):
        _core.call("f", session.name("f"), lambda x: x)


def test_references_are_put_in_place_in_the_kernel_for_the_requests_made_meanwhile():
    namespace, session, _ = kernel("def corr2d(X, K):\n    return torch.zeros(1)\n"
                                   "def twice(X, K):\n    return corr2d(X, K) * 2\n")
    X, K = torch.ones(3, 3), torch.ones(2, 2)
    with session.running():
        with _core.references_in_place(session.name("twice"), corr2d=reference.corr2d):
            assert torch.equal(_core.call("twice", session.name("twice"), X, K), reference.corr2d(X, K) * 2)
        assert torch.equal(_core.call("twice", session.name("twice"), X, K), torch.zeros(1))
    assert namespace["corr2d"] is not reference.corr2d


def test_whole_checks_run_here_against_the_kernels_objects():
    namespace, session, _ = kernel("import torch.nn.functional as F\n"
                                   "def corr2d(X, K):\n"
                                   "    return F.conv2d(X[None, None], K[None, None])[0, 0]\n"
                                   "class Conv2D(nn.Module):\n"
                                   "    def __init__(self, kernel_size):\n"
                                   "        super().__init__()\n"
                                   "        self.weight = nn.Parameter(torch.rand(kernel_size))\n"
                                   "        self.bias = nn.Parameter(torch.zeros(1))\n"
                                   "    def forward(self, x):\n"
                                   "        return corr2d(x, self.weight) + self.bias\n")
    with session.running():
        corr2d(session.name("corr2d"))
        conv2d(session.name("Conv2D"))
    exec("Conv2D.forward = lambda self, x: corr2d(x, self.weight)", namespace)  # the bias forgotten
    with session.running(), pytest.raises(AssertionError, match="the bias is missing"):
        conv2d(session.name("Conv2D"))


def test_a_forged_answer_is_an_error_not_a_pass():
    with _remote.Session(lambda text: "garbage!").running() as session, \
            pytest.raises(_remote.RemoteError, match="did not answer with data"):
        _core.call("f", session.name("f"), 1)
