"""ODE steps for the flow: x moves along the predicted velocity from t to t_next (t decreasing)."""

from __future__ import annotations

from torch import Tensor


def euler_step(x: Tensor, v: Tensor, t: float | Tensor, t_next: float | Tensor) -> Tensor:
    """x_{t_next} = x_t + (t_next - t) * v. Exact when the velocity is constant along the path."""
    return x + (t_next - t) * v
