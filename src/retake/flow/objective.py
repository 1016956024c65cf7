"""The rectified-flow training objective: which t to train on, the noisy input x_t and the velocity target.

Conventions (all of retake): t in [0, 1] with t = 1 the start point x1; x_t = (1 - t) * x0 + t * x1; the
network predicts the velocity v = x1 - x0, so an Euler step x_{t'} = x_t + (t' - t) * v moves towards the data.
x1 is pure noise, or the source latents plus noise for a model trained with the source prior (`flow_start`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from retake.checks import check_finite, check_int
from retake.flow.schedule import shift_sigmas

FrameWeighting = Literal["uniform", "decay"]


def per_sample(t: float | Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample (B,) or scalar t so it broadcasts over `like` (B, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, *([1] * (like.ndim - 1)))


def sample_t(
    batch: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
) -> Tensor:
    """Training times (batch,) from a logit-normal: t = sigmoid(u), u ~ N(mean, std), then the sigma shift.

    Logit-normal puts most samples at mid noise where the velocity is hardest to predict (SD3); the shift moves
    them towards noise, matching the shifted sampling schedule.
    """
    batch = check_int("batch", batch, minimum=1)
    check_finite("mean", mean)
    check_finite("std", std, above=0)
    # Draw on the generator's device so a seed gives the same t whatever `device` is.
    u = torch.randn(batch, generator=generator, device=generator.device, dtype=torch.float32)
    t = torch.sigmoid(u * std + mean)
    return shift_sigmas(t, shift).to(device)


def flow_start(noise: Tensor, anchor: Tensor | None = None) -> Tensor:
    """The path's start point x1 at t = 1: `noise`, or `anchor + noise` (the source prior: an anchor of the
    target's shape, e.g. the clean source latents)."""
    if anchor is None:
        return noise
    if anchor.shape != noise.shape:
        raise ValueError(
            f"the prior's anchor must be shaped like the noise: {tuple(anchor.shape)} vs {tuple(noise.shape)}"
        )
    return anchor.to(noise.dtype) + noise


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) * x0 + t * noise, t scalar or per sample (B,); `noise` is the start point x1."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise shapes differ: {tuple(x0.shape)} vs {tuple(noise.shape)}")
    t = per_sample(t, x0)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """d x_t / dt = noise - x0 (constant along the straight path); `noise` is the start point x1."""
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise shapes differ: {tuple(x0.shape)} vs {tuple(noise.shape)}")
    return noise - x0


def frame_weights(
    num_frames: int, *, kind: FrameWeighting = "uniform", power: float = 2.0, mix: float = 1.0
) -> Tensor:
    """Per-frame loss weights (num_frames,).

    "uniform": ones. "decay" (InsViE): w_i = (1 - mix) + mix * (1 - i / F) ** power, so the first frame weighs
    1 and later frames less: the edit is anchored on early frames and propagated. InsViE mixes this with the
    uniform loss by its `frameloss_weight`, which is `mix` here.
    """
    num_frames = check_int("num_frames", num_frames, minimum=1)
    if kind == "uniform":
        return torch.ones(num_frames)
    if kind == "decay":
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        check_finite("power", power, minimum=0)  # a negative power would weigh later frames more
        i = torch.arange(num_frames, dtype=torch.float32)
        return (1.0 - mix) + mix * (1.0 - i / num_frames) ** power
    raise ValueError(f"unknown frame weighting {kind!r}; expected 'uniform' or 'decay'")


def flow_loss(
    pred: Tensor,
    target: Tensor,
    *,
    frame_weights: Tensor | None = None,
    mask: Tensor | None = None,
    element_weights: Tensor | None = None,
) -> Tensor:
    """Mean squared velocity error over target latents (B, C, F, H, W), a scalar.

    frame_weights (F,) multiply each frame's squared error; the sum is divided by the number of (unmasked)
    elements, not by the weights, so uniform weights give the plain MSE and "decay" weights reproduce InsViE's
    mean of weighted per-frame losses. mask (bool or 0/1, broadcastable to pred, e.g. (B, 1, F, H, W)) keeps
    only the elements that count, e.g. real target tokens and not padding. element_weights (broadcastable to
    pred, e.g. (B, 1, F, H, W)) multiply the squared error like frame_weights.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    err = (pred.float() - target.float()) ** 2
    if frame_weights is not None:
        if pred.ndim != 5 or frame_weights.shape != (pred.shape[2],):
            raise ValueError(
                f"frame_weights must have shape (F,) = ({pred.shape[2] if pred.ndim == 5 else '?'},) for "
                f"(B, C, F, H, W) inputs, got {tuple(frame_weights.shape)} for {tuple(pred.shape)}"
            )
        err = err * frame_weights.to(err).view(1, 1, -1, 1, 1)
    if element_weights is not None:
        err = err * _broadcast("element_weights", element_weights.to(err), err.shape)
    if mask is None:
        return err.mean()
    keep = _broadcast("mask", mask.to(err.dtype), err.shape)
    count = keep.sum()
    if count == 0:
        raise ValueError("mask selects no elements: the loss would be undefined")
    return (err * keep).sum() / count


def _broadcast(name: str, weights: Tensor, shape: torch.Size) -> Tensor:
    try:
        return torch.broadcast_to(weights, shape)
    except RuntimeError as exc:
        raise ValueError(
            f"{name} {tuple(weights.shape)} does not broadcast to the loss {tuple(shape)}"
        ) from exc


def noise_source(
    source: Tensor,
    *,
    generator: torch.Generator,
    log_sigma_mean: float = -3.0,
    log_sigma_std: float = 0.5,
) -> Tensor:
    """InsViE's light source noise: source + sigma * n, log sigma ~ N(mean, std) per sample, n ~ N(0, I).

    A little noise on the clean condition keeps the model from copying source latents verbatim and makes it
    robust to the encode/decode gap (as in image-to-video conditioning augmentation).
    """
    if log_sigma_std < 0:
        raise ValueError(f"log_sigma_std must be >= 0, got {log_sigma_std}")
    b = source.shape[0]
    z = torch.randn(b, generator=generator, device=generator.device, dtype=torch.float32)
    sigma = torch.exp(z * log_sigma_std + log_sigma_mean).to(source)
    n = torch.randn(source.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return source + per_sample(sigma, source) * n.to(source)
