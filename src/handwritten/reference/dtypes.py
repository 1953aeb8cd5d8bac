"""The dtype rule the course's answers follow: they compute in float32, or in a wider float when an input is
one (a float64 image gives a float64 answer, an integer or uint8 image a float32 one)."""

from __future__ import annotations

import torch

__all__ = ["as_float"]


def as_float(*tensors) -> list[torch.Tensor]:
    """The tensors in one floating dtype: float32, or wider if any of them is."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(dtype) for t in tensors]
