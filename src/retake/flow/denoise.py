"""The one sampling loop: ask the guidance which branches it needs, predict each, combine, take an Euler step.

It knows nothing about models: `predict(x, t, branch)` is the caller's closure over the network, the text
embeddings and the source latents, and returns the velocity for that conditioning branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from rich.progress import track
from torch import Tensor

from retake.flow.guidance import Branch, Guidance
from retake.flow.solvers import euler_step

Predict = Callable[[Tensor, Tensor, Branch], Tensor]


@dataclass(frozen=True)
class Step:
    """What a callback sees after each step: x_next is the state at t_next, velocity the guided prediction."""

    index: int
    num_steps: int
    t: float
    t_next: float
    x_next: Tensor
    velocity: Tensor


def _check_sigmas(sigmas: Tensor) -> Tensor:
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be 1-D with at least 2 values, got shape {tuple(sigmas.shape)}")
    if not bool(torch.isfinite(sigmas).all()):
        raise ValueError(f"sigmas must be finite, got {sigmas.tolist()}")
    if bool((sigmas[1:] > sigmas[:-1]).any()):
        raise ValueError(f"sigmas must not increase (t runs from noise to data), got {sigmas.tolist()}")
    return sigmas


@torch.no_grad()
def denoise(
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    predict: Predict,
    guidance: Guidance,
    *,
    progress: bool = True,
    callback: Callable[[Step], None] | None = None,
) -> Tensor:
    """Integrate x from t = sigmas[0] to sigmas[-1] (usually 1 -> 0) with Euler steps; returns the final x.

    x: noisy latents (B, ...) at t = sigmas[0]. predict receives t as a (B,) fp32 tensor in [0, 1] (scale it
    with `retake.flow.schedule.to_timestep` for the network).
    """
    if x.ndim < 1:
        raise ValueError(f"x must be batched latents (B, ...), got shape {tuple(x.shape)}")
    ts = _check_sigmas(sigmas).tolist()
    num_steps = len(ts) - 1
    steps = track(range(num_steps), description="denoising", total=num_steps, disable=not progress)
    for i in steps:
        t, t_next = ts[i], ts[i + 1]
        t_batch = torch.full((x.shape[0],), t, dtype=torch.float32, device=x.device)
        preds = {branch: predict(x, t_batch, branch) for branch in guidance.branches}
        v = guidance.combine(preds, step=i, num_steps=num_steps)
        x = euler_step(x, v, t, t_next)  # refuses a velocity not shaped like x (it would broadcast)
        if callback is not None:
            callback(Step(index=i, num_steps=num_steps, t=t, t_next=t_next, x_next=x, velocity=v))
    return x
