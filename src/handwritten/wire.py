"""Values as text, both ways across the grading boundary, without pickle.

A graded notebook's test cells run in the grader's trusted process, and the student's code in its sandboxed
kernel (``checks/_remote.py``, ``checks/_agent.py``). What crosses between them is data: ``None``, booleans,
numbers, strings, lists, tuples, dicts, ``torch.Size``, dtypes, tensors (their dtype, shape and raw bytes,
whether they require grad, and their ``.grad``), NumPy arrays, and *references*: markers a side knows how to
resolve (a name in the student's namespace, an object the kernel keeps, a function of the course). Decoding
runs no code: it builds tensors from bytes it has measured, and anything it does not know is an error.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable

import torch

MAX_BYTES = 64 * 1024**2  # the most text one answer may be: a larger one is refused before it is parsed
MAX_DEPTH = 64             # nesting deeper than this is refused (a list of a list of ... of a list)
_PLAIN = (type(None), bool, int, float, str)


class WireError(ValueError):
    """A value that cannot cross the boundary, or text that is not a value."""


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise WireError(f"not a dtype: {name!r}")
    return dtype


def _tensor_bytes(t: torch.Tensor) -> str:
    # a fresh dense copy: .contiguous() keeps a one-element tensor's odd stride (it counts as contiguous), and
    # view(uint8) needs stride 1
    t = t.detach().cpu().clone(memory_format=torch.contiguous_format).reshape(-1)
    return base64.b64encode(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"").decode()


def to_data(value, refer: Callable | None = None, depth: int = 0):
    """``value`` as JSON-ready data; ``refer(value)`` gives the marker (a dict) of anything else, or None."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if isinstance(value, bool | type(None) | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"__int__": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        if value.layout != torch.strided or value.is_quantized:
            raise WireError("only dense tensors cross the grading boundary")
        data = {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "bytes": _tensor_bytes(value), "requires_grad": bool(value.requires_grad)}
        if value.is_leaf and value.grad is not None:
            data["grad"] = to_data(value.grad, refer, depth + 1)
        return {"__tensor__": data}
    if isinstance(value, torch.Size):
        return {"__size__": list(value)}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray" and value.dtype.kind in "biuf":
        return {"__ndarray__": to_data(torch.from_numpy(value.copy()), refer, depth + 1)}
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return {"__npscalar__": [str(value.dtype), to_data(value.item(), refer, depth + 1)]}
    if type(value) in (list, tuple):
        items = [to_data(v, refer, depth + 1) for v in value]
        return items if type(value) is list else {"__tuple__": items}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: to_data(v, refer, depth + 1) for k, v in value.items()}}
    marker = refer(value) if refer is not None else None
    if marker is None:
        raise WireError(f"a {type(value).__name__} cannot cross the grading boundary")
    return marker


def from_data(data, resolve: Callable | None = None, depth: int = 0):
    """The value ``data`` stands for; ``resolve(marker)`` turns a reference marker back into an object."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if isinstance(data, _PLAIN):
        return data
    if isinstance(data, list):
        return [from_data(v, resolve, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise WireError("not a value")
    (kind, body), = data.items()
    if kind == "__tuple__" and isinstance(body, list):
        return tuple(from_data(v, resolve, depth + 1) for v in body)
    if kind == "__dict__" and isinstance(body, dict):
        return {k: from_data(v, resolve, depth + 1) for k, v in body.items()}
    if kind == "__tensor__" and isinstance(body, dict):
        return _tensor(body, resolve, depth)
    if kind == "__size__" and isinstance(body, list) and all(type(n) is int and n >= 0 for n in body):
        return torch.Size(body)
    if kind == "__dtype__":
        return _dtype(body)
    if kind == "__int__" and isinstance(body, str) and body.lstrip("-").isdigit():
        return int(body)
    if kind == "__float__" and body in ("nan", "inf", "-inf"):
        return float(body)
    if kind == "__ndarray__":
        tensor = from_data(body, resolve, depth + 1)
        if not isinstance(tensor, torch.Tensor):
            raise WireError("not an array")
        return tensor.detach().numpy()
    if kind == "__npscalar__" and isinstance(body, list) and len(body) == 2:
        import numpy as np

        return np.dtype(str(body[0])).type(from_data(body[1], resolve, depth + 1))
    if resolve is not None:
        return resolve(data)
    raise WireError(f"unknown kind of value: {kind!r}")


def _tensor(body: dict, resolve, depth: int) -> torch.Tensor:
    dtype = _dtype(body.get("dtype"))
    shape = body.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError("a tensor's shape is a list of sizes")
    raw = base64.b64decode(body.get("bytes", ""), validate=True)
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if len(raw) != size:
        raise WireError(f"a tensor of shape {tuple(shape)} and {dtype} needs {size} bytes, not {len(raw)}")
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    tensor = flat.view(dtype).reshape(shape)
    if body.get("requires_grad") is True and (dtype.is_floating_point or dtype.is_complex):
        tensor.requires_grad_(True)
    if "grad" in body:
        grad = from_data(body["grad"], resolve, depth + 1)
        if isinstance(grad, torch.Tensor) and tensor.requires_grad and grad.shape == tensor.shape:
            tensor.grad = grad.to(dtype)
    return tensor


def dumps(value, refer: Callable | None = None) -> str:
    """``value`` as ASCII text (base64 of its JSON), the form it crosses in."""
    return base64.b64encode(json.dumps(to_data(value, refer), allow_nan=False).encode()).decode()


def loads(text: str, resolve: Callable | None = None, max_bytes: int = MAX_BYTES):
    """The value ``text`` (from ``dumps``) stands for; WireError for anything else."""
    if not isinstance(text, str) or len(text) > max_bytes:
        raise WireError("the answer is too large or not text")
    try:
        data = json.loads(base64.b64decode(text, validate=True))
    except (ValueError, RecursionError) as error:
        raise WireError(f"not a value ({type(error).__name__})") from None
    return from_data(data, resolve)
