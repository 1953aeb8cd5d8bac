"""Mini-batches sliced from tensors held in memory (lessons 02 and 05).

Lesson 02 builds its batches by hand before meeting ``DataLoader``; lesson 05 comes back to them to train
fast: ``DataLoader(TensorDataset(x, y), batch_size, shuffle)`` fetches and stacks the items one by one, while
one random permutation per pass and one indexing per batch do the same work at once.
"""

from __future__ import annotations

import torch

__all__ = ["TensorBatches"]


class TensorBatches:
    """Batches sliced from tensors already in memory: ``for xb, yb in TensorBatches(x, y, 64, shuffle=True)``.

    It yields what ``DataLoader(TensorDataset(x, y), batch_size, shuffle)`` yields, in a new random order on
    every pass when ``shuffle`` (``generator`` makes the order reproducible). Images kept as ``uint8`` (to save
    memory) are scaled to floats in [0, 1] batch by batch: the same values as scaling them all first.
    (Lessons 02 and 05.)"""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator, device=self.x.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                xb, yb = self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                xb, yb = self.x[idx], self.y[idx]
            yield (xb.float() / 255 if xb.dtype == torch.uint8 else xb), yb
