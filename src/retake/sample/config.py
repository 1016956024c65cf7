"""Sampler settings of one edit, and the named defaults a bundle ships with (ICVE, InsViE, Flatland).

`EditConfig` is what a bundle stores as its defaults and what `EditPipeline.edit` resolves a call into: every
argument the caller leaves out comes from here. The guidance strategy follows from the scales:
`video_scale` set -> InsViE's 3-way guidance; otherwise text-only CFG, collapsed to a single branch at scale 1
(where CFG equals the conditional prediction, so the negative branch would be wasted work).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from retake.checks import check_finite, check_int
from retake.flow.guidance import ICVE_NEGATIVE_PROMPT, Guidance, NoGuidance, TextCFG, TextVideoGuidance


@dataclass(frozen=True)
class EditConfig:
    """Sampling defaults. The class defaults are the small Flatland setting (`EditConfig.flatland()`).

    steps: Euler steps; shift: sigma shift (sigma' = s*sigma / (1 + (s-1)*sigma)); text_scale: text CFG;
    video_scale: None for text-only CFG, else InsViE's video guidance; negative_prompt: the "no_text" branch's
    prompt; embedded_guidance: the distilled-guidance input (used only by models with guidance_embeds);
    frames: output frames (4k+1 for the causal VAE); height, width: output size in pixels.
    """

    steps: int = 20
    shift: float = 1.0
    text_scale: float = 3.0
    video_scale: float | None = None
    negative_prompt: str = ""
    embedded_guidance: float = 1.0
    frames: int = 17
    height: int = 64
    width: int = 64

    def __post_init__(self) -> None:
        # Counts must be ints: 2.5 steps or 5.5 frames would fail far away (a range, a slice) or round.
        check_int("steps", self.steps, minimum=1)
        check_int("frames", self.frames, minimum=1)
        if check_int("height", self.height) < 1 or check_int("width", self.width) < 1:
            raise ValueError(f"size must be positive, got {self.height}x{self.width}")
        _check_scale("shift", self.shift, strictly_positive=True)
        _check_scale("cfg (text_scale)", self.text_scale)
        _check_scale("embedded_guidance", self.embedded_guidance)
        if self.video_scale is not None:
            _check_scale("video cfg (video_scale)", self.video_scale)
        if not isinstance(self.negative_prompt, str):
            raise ValueError(f"negative_prompt must be a str, got {type(self.negative_prompt).__name__}")

    # ------------------------------------------------------------------------------------------------------
    # presets
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def icve(cls) -> EditConfig:
        """ICVE's inference (leoisufa/ICVE): 50 steps, shift 7, text CFG 6 against HunyuanVideo's negative
        prompt, embedded guidance 1, 61 frames at 480x768."""
        return cls(
            steps=50,
            shift=7.0,
            text_scale=6.0,
            negative_prompt=ICVE_NEGATIVE_PROMPT,
            embedded_guidance=1.0,
            frames=61,
            height=480,
            width=768,
        )

    @classmethod
    def insvie(cls) -> EditConfig:
        """InsViE's inference: 50 steps, 3-way guidance text 7.5 / video 1.2, CogVideoX's 49 frames at 480x720.

        CogVideoX samples with DDIM, not a flow; shift 7 is HunyuanVideo's flow shift for video latents of this
        size, the matching choice for an InsViE-style model trained with retake's flow objective."""
        return cls(
            steps=50,
            shift=7.0,
            text_scale=7.5,
            video_scale=1.2,
            frames=49,
            height=480,
            width=720,
        )

    @classmethod
    def flatland(cls) -> EditConfig:
        """The Flatland lab bench: small, fast on CPU (17 frames at 64x64, 20 steps)."""
        return cls()

    # ------------------------------------------------------------------------------------------------------
    # use
    # ------------------------------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def guidance(self) -> Guidance:
        """The guidance strategy these scales describe (see the module docstring)."""
        if self.video_scale is not None:
            return TextVideoGuidance(self.text_scale, self.video_scale, self.negative_prompt)
        if self.text_scale == 1.0:
            return NoGuidance()
        return TextCFG(self.text_scale, self.negative_prompt)

    def with_overrides(self, **overrides: Any) -> EditConfig:
        """A copy with the given fields replaced; None values mean "keep the default"."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EditConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sampler settings {unknown}; known: {sorted(known)}")
        return cls(**values)


def _check_scale(name: str, value: float, *, strictly_positive: bool = False) -> None:
    """A finite number (not a str such as "3", nor NaN, which passes every comparison) >= 0, or > 0."""
    if strictly_positive:
        check_finite(name, value, above=0)
    else:
        check_finite(name, value, minimum=0)


SAMPLER_PRESETS = {"icve": EditConfig.icve, "insvie": EditConfig.insvie, "flatland": EditConfig.flatland}


def get_defaults(name: str) -> EditConfig:
    """The named sampler defaults: icve, insvie or flatland."""
    if name not in SAMPLER_PRESETS:
        raise ValueError(f"unknown sampler defaults {name!r}; known: {', '.join(sorted(SAMPLER_PRESETS))}")
    return SAMPLER_PRESETS[name]()
