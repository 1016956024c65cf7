"""The transformer's typed configuration: sizes (diffusers' HunyuanVideo names) plus how the source enters.

Field names follow diffusers' `HunyuanVideoTransformer3DModel` so a config converts to its keyword arguments
one to one (`diffusers_kwargs`), which the anchor test and the 13B parameter count rely on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from retake.checks import check_finite, check_int


class Conditioning(StrEnum):
    """How the clean source video enters the network."""

    NONE = "none"  # text-to-video: no source at all
    SEQUENCE = "sequence"  # ICVE: source tokens prepended to the token sequence
    CHANNEL = "channel"  # InsViE: source latent concatenated with the noisy latent on channels


class AttentionMode(StrEnum):
    """Which keys the source tokens may attend to (only meaningful for sequence conditioning)."""

    FULL = "full"  # ICVE: every token attends to every (non-padding) token
    ONE_WAY = "one-way"  # source tokens attend only to source tokens, so their K/V can be cached


class Prior(StrEnum):
    """Where the flow starts at t = 1, i.e. what the sampler draws before the first step."""

    NOISE = "noise"  # N(0, I): the usual rectified flow
    # source latents + N(0, I): a data-dependent coupling (Albergo et al. 2023, "Stochastic interpolants with
    # data-dependent couplings"). The intent: what the edit leaves alone sits at both ends of the path, so the
    # network need not redraw it from noise. It did not help flatland-s (docs/training.md).
    SOURCE = "source"


class Prediction(StrEnum):
    """What the network's last layer predicts. `forward` returns the velocity either way."""

    VELOCITY = "velocity"  # v = x1 - x0 directly (HunyuanVideo, SD3)
    # the clean latents x0, turned into v = (x_t - x0) / t (Li & He 2025, "Back to Basics: Let Denoising
    # Generative Models Denoise"). A velocity holds the noise, which no layer can compress; a narrow model
    # whose patches carry as many numbers as its width (flatland-s) cannot pass it through, and its samples
    # keep grain. Clean latents are smooth and structured, so a narrow model can predict them.
    SAMPLE = "sample"
    # the clean latents as the source plus a predicted change, x0 = source + output, turned into a velocity as
    # SAMPLE. Most of an edit's target is its source: a model that has to redraw the source through its
    # blocks (flatland-s redrew unedited positions at t = 1 with 10-100x the error of copying them) spends
    # its width on that; here they are an output of zero, and a fresh model (zero last layer) starts as the
    # identity edit. Needs a source shaped like the target; without one (guidance's unconditional
    # branch, source dropout) the change is added to zeros.
    RESIDUAL = "residual"


@dataclass(frozen=True)
class TransformerConfig:
    """Every knob of `InContextTransformer`; the defaults are HunyuanVideo T/2 (13B) with ICVE conditioning."""

    in_channels: int = 16  # latent channels of one video (the channel mode doubles the patch input itself)
    out_channels: int | None = None  # None: same as in_channels
    num_attention_heads: int = 24
    attention_head_dim: int = 128
    num_layers: int = 20  # dual-stream blocks
    num_single_layers: int = 40  # single-stream blocks
    num_refiner_layers: int = 2  # text token refiner blocks
    mlp_ratio: float = 4.0
    patch_size: int = 2
    patch_size_t: int = 1
    guidance_embeds: bool = True  # embedded (distilled) guidance added to the modulation vector
    text_embed_dim: int = 4096
    pooled_projection_dim: int = 768
    rope_theta: float = 256.0
    rope_axes_dim: tuple[int, int, int] = (16, 56, 56)  # (time, height, width) split of the head dim
    conditioning: Conditioning = Conditioning.SEQUENCE
    attention: AttentionMode = AttentionMode.FULL
    # None: source and target share RoPE positions (ICVE; shapes must match). An int k puts source latent
    # frame i at temporal position k + i instead, so source and target may differ in length.
    source_time_offset: int | None = None
    prior: Prior = Prior.NOISE  # where sampling starts; the training path must match (see Prior)
    prediction: Prediction = Prediction.VELOCITY  # what the last layer predicts (see Prediction)

    def __post_init__(self) -> None:
        # JSON round trips (save_pretrained) turn tuples into lists and enums into strings; normalise here.
        object.__setattr__(self, "rope_axes_dim", tuple(int(a) for a in self.rope_axes_dim))
        object.__setattr__(self, "conditioning", _enum(Conditioning, self.conditioning, "conditioning"))
        object.__setattr__(self, "attention", _enum(AttentionMode, self.attention, "attention"))
        object.__setattr__(self, "prior", _enum(Prior, self.prior, "prior"))
        object.__setattr__(self, "prediction", _enum(Prediction, self.prediction, "prediction"))
        self._validate_counts()
        self._validate_sizes()
        self._validate_conditioning()

    def _validate_counts(self) -> None:
        for name in (
            "in_channels",
            "num_attention_heads",
            "attention_head_dim",
            "patch_size",
            "patch_size_t",
            "text_embed_dim",
            "pooled_projection_dim",
        ):
            check_int(name, getattr(self, name), minimum=1)
        # Zero blocks of a kind is a valid (if trivial) network; a negative count built none without a word.
        for name in ("num_layers", "num_single_layers", "num_refiner_layers"):
            check_int(name, getattr(self, name), minimum=0)
        # None means "as in_channels". diffusers reads 0 the same way (`out_channels or in_channels`); nothing
        # here writes 0, so it is refused rather than kept as a silent second spelling of None.
        if self.out_channels is not None and check_int("out_channels", self.out_channels) < 1:
            raise ValueError(
                f"out_channels must be None (same as in_channels) or >= 1, got {self.out_channels}"
            )
        if self.source_time_offset is not None:
            check_int("source_time_offset", self.source_time_offset)

    def _validate_sizes(self) -> None:
        check_finite("mlp_ratio", self.mlp_ratio, above=0)
        check_finite("rope_theta", self.rope_theta, above=0)
        if len(self.rope_axes_dim) != 3 or sum(self.rope_axes_dim) != self.attention_head_dim:
            raise ValueError(
                f"rope_axes_dim {self.rope_axes_dim} must be 3 even sizes summing to attention_head_dim "
                f"{self.attention_head_dim}"
            )
        if any(a % 2 for a in self.rope_axes_dim):
            raise ValueError(f"rope_axes_dim {self.rope_axes_dim} must be even (RoPE rotates pairs)")

    def _validate_conditioning(self) -> None:
        self._validate_residual()
        if self.attention is AttentionMode.ONE_WAY and self.conditioning is not Conditioning.SEQUENCE:
            raise ValueError(
                f"attention 'one-way' needs conditioning 'sequence', got conditioning '{self.conditioning}'"
            )
        if self.source_time_offset is not None and self.conditioning is not Conditioning.SEQUENCE:
            raise ValueError(
                f"source_time_offset={self.source_time_offset} needs conditioning 'sequence', "
                f"got '{self.conditioning}'"
            )
        if self.prior is Prior.SOURCE and (
            self.conditioning is Conditioning.NONE or self.source_time_offset is not None
        ):
            # The start point is source + noise, so a source of the target's shape must exist.
            raise ValueError(
                f"prior 'source' needs a source shaped like the target: conditioning 'sequence' or 'channel' "
                f"without source_time_offset, got conditioning '{self.conditioning}', "
                f"source_time_offset={self.source_time_offset}"
            )

    def _validate_residual(self) -> None:
        if self.prediction is not Prediction.RESIDUAL:
            return
        if self.conditioning is Conditioning.NONE or self.source_time_offset is not None:
            raise ValueError(
                f"prediction 'residual' needs a source shaped like the target: conditioning 'sequence' or "
                f"'channel' without source_time_offset, got conditioning '{self.conditioning}', "
                f"source_time_offset={self.source_time_offset}"
            )
        if self.attention is AttentionMode.ONE_WAY:
            # Sampling with a source K/V cache never hands forward the source latents the change is added to.
            raise ValueError("prediction 'residual' needs attention 'full', got 'one-way'")
        if self.latent_out_channels != self.in_channels:
            raise ValueError(
                f"prediction 'residual' needs out_channels equal to in_channels {self.in_channels}, "
                f"got {self.out_channels}"
            )

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def latent_out_channels(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    def to_kwargs(self) -> dict[str, Any]:
        """Plain JSON-able keyword arguments for `InContextTransformer(**kwargs)`."""
        kwargs = asdict(self)
        kwargs["rope_axes_dim"] = list(self.rope_axes_dim)
        kwargs["conditioning"] = str(self.conditioning)
        kwargs["attention"] = str(self.attention)
        kwargs["prior"] = str(self.prior)
        kwargs["prediction"] = str(self.prediction)
        return kwargs

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for diffusers' `HunyuanVideoTransformer3DModel` with the same T2V architecture."""
        ours = {"conditioning", "attention", "source_time_offset", "prior", "prediction"}
        kwargs = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ours}
        kwargs["out_channels"] = self.latent_out_channels
        kwargs["rope_axes_dim"] = tuple(self.rope_axes_dim)
        return kwargs


def _enum(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(str(v)) for v in kind)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None
