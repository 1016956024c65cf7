"""Sigma schedules for sampling: t = sigma in [0, 1], 1 is pure noise, with the resolution-dependent shift."""

from __future__ import annotations

import torch
from torch import Tensor

from retake.checks import check_finite, check_int

# The network's `timestep` input is t scaled to [0, 1000] (diffusers / HunyuanVideo convention).
TIMESTEP_SCALE = 1000.0


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """sigma' = s * sigma / (1 + (s - 1) * sigma): keeps 0 and 1 fixed and, for s > 1, spends more steps at high
    noise, where large latents (video) still have structure to decide (SD3 / HunyuanVideo flow shift)."""
    check_finite("shift", shift, above=0)
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def sigma_schedule(steps: int, *, shift: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """steps + 1 sigmas from 1 down to 0 (uniform in t before the shift), fp32, shape (steps + 1,)."""
    steps = check_int("steps", steps, minimum=1)
    sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32, device=device)
    return shift_sigmas(sigmas, shift)


def to_timestep(t: Tensor) -> Tensor:
    """The network's `timestep` argument for a flow time t (t * 1000)."""
    return t * TIMESTEP_SCALE
