"""handwritten.wire: values cross the grading boundary as data, both ways, and nothing else does."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch

from handwritten import wire


def roundtrip(value):
    return wire.loads(wire.dumps(value))


def test_data_comes_back_equal_with_its_types():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    (x * 2).sum().backward()
    value = {"plain": (1, 2.5, None, True, "s", 2**70), "tensors": [torch.arange(5), torch.zeros(0, 2),
             torch.tensor([True, False]), torch.randn(2, dtype=torch.bfloat16), torch.tensor(3)],
             "size": torch.Size([2, 3]), "dtype": torch.float16, "array": np.arange(3.0), "x": x}
    back = roundtrip(value)
    assert back["plain"] == (1, 2.5, None, True, "s", 2**70) and type(back["plain"]) is tuple
    for got, sent in zip(back["tensors"], value["tensors"]):
        assert got.dtype == sent.dtype and got.shape == sent.shape and torch.equal(got, sent)
    assert back["size"] == torch.Size([2, 3]) and back["dtype"] is torch.float16
    assert isinstance(back["array"], np.ndarray) and back["array"].tolist() == [0.0, 1.0, 2.0]
    assert back["x"].requires_grad and torch.equal(back["x"].grad, torch.full((3, 4), 2.0, dtype=torch.float64))
    assert math.isnan(roundtrip(float("nan"))) and roundtrip(float("-inf")) == float("-inf")


def test_views_with_odd_strides_cross_whole():
    row = torch.tensor([[3.0, 1.0, 2.0]]).argsort(1)[:, 0]  # one element, stride 3: "contiguous" all the same
    for sent in (row, torch.arange(12.0).reshape(3, 4).t(), torch.arange(10)[::3], torch.arange(6).expand(2, 6)):
        got = roundtrip(sent)
        assert got.dtype == sent.dtype and torch.equal(got, sent)


def test_a_sent_tensor_is_a_copy():
    sent = torch.zeros(3)
    got = roundtrip(sent)
    got += 1
    assert sent.sum() == 0


@pytest.mark.parametrize("value", [object(), lambda: 1, torch.nn.Linear(2, 2), {1: "not a str key"},
                                   iter([1, 2]), torch.zeros(3).to_sparse()])
def test_anything_else_cannot_cross_without_a_reference(value):
    with pytest.raises(wire.WireError):
        wire.dumps(value)


def test_a_reference_crosses_as_its_marker():
    thing = object()
    text = wire.dumps([thing], refer=lambda v: {"__ref__": 7} if v is thing else None)
    assert wire.loads(text, resolve=lambda marker: ("resolved", marker)) == [("resolved", {"__ref__": 7})]
    with pytest.raises(wire.WireError):
        wire.loads(text)  # without a resolver, a marker is an error


def forged(data) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize("data", [
    {"__tensor__": {"dtype": "float32", "shape": [1000, 1000], "bytes": ""}},         # claims more than it holds
    {"__tensor__": {"dtype": "float32", "shape": [-1], "bytes": ""}},
    {"__tensor__": {"dtype": "os.system", "shape": [1], "bytes": "AAAAAA=="}},        # not a dtype
    {"__pickle__": "gASV"},                                                            # no such kind
    {"__dict__": {"a": 1}, "extra": 2},
])
def test_forged_answers_are_refused(data):
    with pytest.raises(wire.WireError):
        wire.loads(forged(data))


def test_too_large_or_too_deep_is_refused_before_it_is_built():
    with pytest.raises(wire.WireError, match="too large"):
        wire.loads("A" * 100, max_bytes=10)
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeply"):
        wire.dumps(deep)
    with pytest.raises(wire.WireError):
        wire.loads(forged(json.loads(json.dumps(deep))))
    with pytest.raises(wire.WireError):
        wire.loads("not base64 at all!")
