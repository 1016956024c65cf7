"""An exponential moving average of the trainable weights (the weights one usually samples from).

shadow <- decay * shadow + (1 - decay) * weight after every optimiser step, over the trainable parameters only
(with LoRA: the adapters, a few MB even for a 13B backbone). The shadow lives where the parameters live, in
float32 when they are low precision, and is swapped in with `swapped()` for evaluation or export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class EMA:
    """EMA of `model`'s parameters that require grad, keyed by their names."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow = {n: p.detach().clone().float() for n, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        names = list(self.params)
        current = [self.params[n].detach().float() for n in names]
        torch._foreach_lerp_([self.shadow[n] for n in names], current, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing, unexpected = set(self.shadow) - set(state), set(state) - set(self.shadow)
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not fit: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        for name, value in state.items():
            self.shadow[name].copy_(value)

    @contextmanager
    @torch.no_grad()
    def swapped(self) -> Iterator[None]:
        """Within the block the model holds the EMA weights; its own weights come back afterwards."""
        saved = {n: p.detach().clone() for n, p in self.params.items()}
        for name, param in self.params.items():
            param.copy_(self.shadow[name])
        try:
            yield
        finally:
            for name, param in self.params.items():
                param.copy_(saved[name])
