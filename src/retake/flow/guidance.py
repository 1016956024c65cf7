"""Guidance strategies: which conditioning branches a step needs and how their velocities combine.

Branch names say what the network sees; the caller's `predict(x, t, branch)` maps them to inputs:
- "full":    the instruction and the source video,
- "no_text": the negative / empty prompt and the same source video,
- "none":    the empty prompt and no source (zeros, as InsViE drops it).
Scales are floats or per-step schedules `(step, num_steps) -> float`, step 0 being the first (noisiest) step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

Branch = Literal["full", "no_text", "none"]
ScaleSchedule = Callable[[int, int], float]
Scale = float | ScaleSchedule

# The negative prompt ICVE (through HunyuanVideo's sampler) substitutes when none is given.
ICVE_NEGATIVE_PROMPT = (
    "Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, bad teeth, "
    "bad eyes, bad limbs, distortion"
)


def constant(value: float) -> ScaleSchedule:
    """The same scale at every step."""
    return lambda step, num_steps: float(value)


def linear(start: float, end: float) -> ScaleSchedule:
    """From `start` at the first step to `end` at the last, linearly."""

    def schedule(step: int, num_steps: int) -> float:
        _check_step(step, num_steps)
        frac = step / (num_steps - 1) if num_steps > 1 else 0.0
        return start + (end - start) * frac

    return schedule


def cosine_ramp(scale: float, *, exponent: float = 5.0) -> ScaleSchedule:
    """CogVideoX's dynamic CFG (used by InsViE): 1 + scale * (1 - cos(pi * (step / num_steps) ** exponent)) / 2.

    Guidance starts near 1 (no extrapolation) while the layout forms and rises over the late steps.
    """

    def schedule(step: int, num_steps: int) -> float:
        _check_step(step, num_steps)
        return 1.0 + scale * (1.0 - math.cos(math.pi * (step / num_steps) ** exponent)) / 2.0

    return schedule


def _check_step(step: int, num_steps: int) -> None:
    if not 0 <= step < num_steps:
        raise ValueError(f"step must be in [0, num_steps), got step {step} of num_steps {num_steps}")


def resolve_scale(scale: Scale, step: int, num_steps: int) -> float:
    """The scale for one step, whether given as a number or a schedule."""
    if callable(scale):
        return float(scale(step, num_steps))
    return float(scale)


class Guidance(Protocol):
    """What `denoise` needs from a guidance strategy."""

    @property
    def branches(self) -> tuple[Branch, ...]: ...

    def combine(self, preds: Mapping[str, Tensor], *, step: int, num_steps: int) -> Tensor: ...


@dataclass(frozen=True)
class NoGuidance:
    """A single conditional prediction, used as is."""

    @property
    def branches(self) -> tuple[Branch, ...]:
        return ("full",)

    def combine(self, preds: Mapping[str, Tensor], *, step: int = 0, num_steps: int = 1) -> Tensor:
        return preds["full"]


@dataclass(frozen=True)
class TextCFG:
    """Text-only classifier-free guidance (ICVE): e = e(neg, src) + s * (e(txt, src) - e(neg, src)).

    Both branches see the same source; only the prompt differs. `negative_prompt` is for the caller, which
    encodes it for the "no_text" branch; ICVE's default is `ICVE_NEGATIVE_PROMPT` (see `TextCFG.icve`).
    """

    scale: Scale = 6.0
    negative_prompt: str = ""

    @classmethod
    def icve(cls) -> TextCFG:
        """ICVE's inference setting: scale 6.0 with HunyuanVideo's default negative prompt."""
        return cls(scale=6.0, negative_prompt=ICVE_NEGATIVE_PROMPT)

    @property
    def branches(self) -> tuple[Branch, ...]:
        return ("full", "no_text")

    def combine(self, preds: Mapping[str, Tensor], *, step: int = 0, num_steps: int = 1) -> Tensor:
        s = resolve_scale(self.scale, step, num_steps)
        uncond = preds["no_text"]
        return uncond + s * (preds["full"] - uncond)


@dataclass(frozen=True)
class TextVideoGuidance:
    """InsViE's 3-way guidance (InstructPix2Pix form):
    e = e(0, 0) + s_v * (e(0, src) - e(0, 0)) + s_t * (e(txt, src) - e(0, src)).
    """

    text_scale: Scale = 7.5
    video_scale: Scale = 1.2
    negative_prompt: str = ""

    @property
    def branches(self) -> tuple[Branch, ...]:
        return ("full", "no_text", "none")

    def combine(self, preds: Mapping[str, Tensor], *, step: int = 0, num_steps: int = 1) -> Tensor:
        s_t = resolve_scale(self.text_scale, step, num_steps)
        s_v = resolve_scale(self.video_scale, step, num_steps)
        none, no_text = preds["none"], preds["no_text"]
        return none + s_v * (no_text - none) + s_t * (preds["full"] - no_text)


@dataclass(frozen=True)
class PinnedFrames:
    """Another guidance whose mixed velocity (B, C, F, H, W) takes `velocity` (B, C, K, H, W) on its first K
    latent frames: frames bound to a known straight path (`EditPipeline.edit`'s prefix). Set after the mix,
    so the frames keep their path under any guidance, affine or not."""

    inner: Guidance
    velocity: Tensor

    @property
    def branches(self) -> tuple[Branch, ...]:
        return self.inner.branches

    def combine(self, preds: Mapping[str, Tensor], *, step: int = 0, num_steps: int = 1) -> Tensor:
        mixed = self.inner.combine(preds, step=step, num_steps=num_steps)
        pinned = self.velocity.shape[2]
        return torch.cat([self.velocity.to(mixed.dtype), mixed[:, :, pinned:]], dim=2)
