"""The source K/V cache of one-way attention.

In one-way mode the source tokens attend only to themselves and are modulated by a vector that holds neither the
timestep nor the text, so their keys and values in every layer are a function of the source video (and the
embedded guidance) alone. `InContextTransformer.build_source_cache` computes them once per video; every denoising
step and both guidance branches then reuse them and skip all source-token work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from retake.model.layers import Grid


@dataclass(frozen=True)
class SourceCache:
    """Per-block source keys and values (dual blocks first, then single blocks), each (B, S, H, Dh),
    taken after QK RMSNorm and RoPE, exactly as the attention consumes them."""

    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    grid: Grid  # the source's token grid (T, H, W)
    guidance: Tensor | None  # (B,) the embedded guidance the cache was built with, or None

    @property
    def num_tokens(self) -> int:
        return self.keys[0].shape[1]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def layer(self, index: int, batch_size: int) -> tuple[Tensor, Tensor]:
        """K/V of block `index` for a batch of `batch_size` (a batch-1 cache broadcasts without copying)."""
        k, v = self.keys[index], self.values[index]
        if k.shape[0] == batch_size:
            return k, v
        if k.shape[0] == 1:
            return k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)
        raise ValueError(f"source cache has batch {k.shape[0]}, cannot serve a batch of {batch_size}")

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def check_guidance(self, guidance: Tensor | None, batch_size: int) -> None:
        """The source vector includes the guidance embedding, so a cache only serves the guidance it saw."""
        if self.guidance is None or guidance is None:
            if (self.guidance is None) != (guidance is None):
                raise ValueError("source cache and forward disagree on whether guidance is given")
            return
        mine = self.guidance.expand(batch_size) if self.guidance.numel() == 1 else self.guidance
        if mine.shape != guidance.shape or not torch.equal(mine.to(guidance), guidance):
            raise ValueError(
                f"source cache was built with guidance {self.guidance.tolist()}, forward got {guidance.tolist()}"
            )
