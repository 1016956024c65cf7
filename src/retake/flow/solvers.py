"""ODE steps for the flow: x moves along the predicted velocity from t to t_next (t decreasing)."""

from __future__ import annotations

import torch
from torch import Tensor

from retake.flow.objective import per_sample


def euler_step(x: Tensor, v: Tensor, t: float | Tensor, t_next: float | Tensor) -> Tensor:
    """x_{t_next} = x_t + (t_next - t) * v, t and t_next scalars or per sample (B,). Exact when the velocity
    is constant along the path."""
    if v.shape != x.shape:
        raise ValueError(f"velocity and x shapes differ: {tuple(v.shape)} vs {tuple(x.shape)}")
    if isinstance(t, Tensor) or isinstance(t_next, Tensor):
        # The difference in fp32 first: rounding t and t_next to x's dtype (bf16) apart would skew the step.
        dt = torch.as_tensor(t_next, dtype=torch.float32) - torch.as_tensor(t, dtype=torch.float32)
        return x + per_sample(dt, x) * v
    return x + (t_next - t) * v
