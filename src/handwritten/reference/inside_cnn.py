"""Lesson 06, inside a CNN: counting right answers, and the shift test's shifted digits."""

from __future__ import annotations

import torch

SHIFT_DIRECTIONS = ("left", "right", "up", "down")


def shift_image(image: torch.Tensor, pixels: int, direction: str = "left") -> torch.Tensor:
    """``image`` (any shape ending in height, width) moved ``pixels`` pixels towards ``direction``; what moves
    in from the opposite border is zero, and a shift as wide as the image leaves nothing. Lesson 06's
    ``shift_left(img, w)`` is ``shift_image(img, w, "left")``."""
    if direction not in SHIFT_DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(SHIFT_DIRECTIONS)}, not {direction!r}")
    pixels = int(pixels)
    if pixels < 0:
        raise ValueError(f"the shift must be 0 or more pixels, not {pixels}")
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    if direction == "left" and pixels < w:
        out[..., :, :w - pixels] = image[..., :, pixels:]
    elif direction == "right" and pixels < w:
        out[..., :, pixels:] = image[..., :, :w - pixels]
    elif direction == "up" and pixels < h:
        out[..., :h - pixels, :] = image[..., pixels:, :]
    elif direction == "down" and pixels < h:
        out[..., pixels:, :] = image[..., :h - pixels, :]
    return out
