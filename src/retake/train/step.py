"""One training step's arithmetic: samples -> model inputs (with InsViE's tricks) -> flow-matching loss.

Per sample, with a generator keyed by (seed, stage, stream position) so that a resumed run and any split over
ranks draw exactly the same numbers, in this fixed order:

    u_identity, u_text, u_source ~ U(0, 1)      identity sample? text dropped? source dropped?
    source noise (when on)                      log sigma ~ N(mean, std), source += sigma * N(0, I)
    t ~ logit-normal (then shifted)             noise ~ N(0, I) shaped like the target latents

then x_t = (1 - t) x0 + t x1 and the network is asked for v = x1 - x0 given x_t, t * 1000, the text and
the clean (or lightly noised) source. x1 is the noise, or with the source prior the clean source + the noise
(also when the tricks noise or drop the source the network sees: the sampler starts from the clean source). Identity samples train "change nothing": target = source and the empty
prompt. Sequence and channel conditioning differ only inside the model, so this module has no mode switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from retake.flow.objective import (
    flow_loss,
    flow_start,
    frame_weights,
    interpolate,
    noise_source,
    sample_t,
    velocity_target,
)
from retake.flow.schedule import TIMESTEP_SCALE, to_timestep
from retake.model.config import Conditioning, Prior
from retake.model.text import TextEmbedding
from retake.train.config import TricksConfig
from retake.train.loader import StreamSample


def sample_generator(
    seed: int, stage: int, position: int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """The generator of one sample's draws: a function of (run seed, stage index, stream position) only."""
    mixed = np.random.SeedSequence([seed, stage, position]).generate_state(1, np.uint64)[0] >> 1
    return torch.Generator(device=device).manual_seed(int(mixed))


@dataclass(frozen=True)
class Batch:
    """Collated samples. source/target (B, C, F, H, W); text tokens (B, L, D)."""

    ids: tuple[str, ...]
    positions: tuple[int, ...]
    source: Tensor
    target: Tensor
    text: TextEmbedding

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.ids, self.positions, self.source.to(device), self.target.to(device), self.text.to(device)
        )


def collate(samples: Sequence[StreamSample]) -> Batch:
    """Stack samples; their latent and text shapes must agree (one stage = one resolution)."""
    items = [s.sample for s in samples]
    shapes = {tuple(s.source.shape) for s in items}
    if len(shapes) > 1:
        raise ValueError(f"samples in a batch have different latent shapes: {sorted(shapes)}")
    text = TextEmbedding(
        torch.cat([s.text.tokens for s in items]),
        torch.cat([s.text.mask for s in items]),
        torch.cat([s.text.pooled for s in items]),
    )
    return Batch(
        tuple(s.id for s in items),
        tuple(s.position for s in samples),
        torch.stack([s.source for s in items]),
        torch.stack([s.target for s in items]),
        text,
    )


@dataclass(frozen=True)
class StepInputs:
    """Everything the forward pass and the loss need, plus which tricks fired (B,) bool, for logs and tests."""

    noisy: Tensor  # x_t (B, C, F, H, W)
    t: Tensor  # (B,) in [0, 1]
    text: TextEmbedding
    source: Tensor | None  # (B, C, F, H, W) as the model sees it; None for text-to-video
    velocity: Tensor  # the regression target x1 - x0
    frame_weights: Tensor  # (F,)
    edit_weights: Tensor | None  # (B, 1, F, H, W) per-position loss weights (tricks.edit_weight), or None
    guidance: Tensor | None  # (B,) embedded guidance * 1000, when the model embeds guidance
    identity: Tensor
    text_dropped: Tensor
    source_dropped: Tensor

    def model_kwargs(self) -> dict[str, Tensor | None]:
        return {
            "hidden_states": self.noisy,
            "timestep": to_timestep(self.t),
            "encoder_hidden_states": self.text.tokens,
            "encoder_attention_mask": self.text.mask,
            "pooled_projections": self.text.pooled,
            "guidance": self.guidance,
            "source": self.source,
        }


@dataclass(frozen=True)
class _Drawn:
    source: Tensor  # as the network sees it (noised or dropped by the tricks)
    clean: Tensor  # the source as stored: the source prior's anchor
    target: Tensor
    t: Tensor
    noise: Tensor
    identity: bool
    text_dropped: bool
    source_dropped: bool


def _draw(source: Tensor, target: Tensor, tricks: TricksConfig, generator: torch.Generator) -> _Drawn:
    """One sample's tricks and noise; source/target (C, F, H, W) on the generator's device."""
    clean = source
    u = torch.rand(3, generator=generator, device=generator.device).tolist()
    identity = u[0] < tricks.identity
    if identity:
        target = source  # the clean source: "change nothing" must reproduce it exactly
    text_dropped = identity or u[1] < tricks.text_dropout
    if tricks.source_noise:
        source = noise_source(
            source[None],
            generator=generator,
            log_sigma_mean=tricks.source_noise_mean,
            log_sigma_std=tricks.source_noise_std,
        )[0]
    source_dropped = u[2] < tricks.source_dropout
    if source_dropped:
        source = torch.zeros_like(source)
    t = sample_t(
        1,
        generator=generator,
        device=source.device,
        mean=tricks.t_mean,
        std=tricks.t_std,
        shift=tricks.t_shift,
    )
    noise = torch.randn(target.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return _Drawn(source, clean, target, t, noise.to(target), identity, text_dropped, source_dropped)


def _swap_text(text: TextEmbedding, empty: TextEmbedding, dropped: Tensor) -> TextEmbedding:
    """Rows where `dropped` get the empty prompt's embedding."""
    if not bool(dropped.any()):
        return text
    if empty.tokens.shape[1:] != text.tokens.shape[1:]:
        raise ValueError(
            f"empty prompt tokens {tuple(empty.tokens.shape[1:])} differ from the batch's {tuple(text.tokens.shape[1:])}"
        )
    keep = ~dropped
    empty = empty.to(text.tokens.device)
    return TextEmbedding(
        torch.where(keep[:, None, None], text.tokens, empty.tokens.to(text.tokens.dtype)),
        torch.where(keep[:, None], text.mask.bool(), empty.mask.bool()),
        torch.where(keep[:, None], text.pooled, empty.pooled.to(text.pooled.dtype)),
    )


def make_inputs(
    batch: Batch,
    tricks: TricksConfig,
    empty_text: TextEmbedding,
    generators: Sequence[torch.Generator],
    *,
    conditioning: Conditioning = Conditioning.SEQUENCE,
    prior: Prior = Prior.NOISE,
    guidance: float | None = None,
) -> StepInputs:
    """Apply the tricks and draw t and noise per sample (one generator each, on the batch's device); the path
    starts at the noise or, with `prior` "source", at the clean source + the noise."""
    if len(generators) != len(batch.ids):
        raise ValueError(f"need one generator per sample: {len(generators)} for {len(batch.ids)} samples")
    drawn = [_draw(s, x, tricks, g) for s, x, g in zip(batch.source, batch.target, generators, strict=True)]
    device = batch.source.device
    flags = {
        k: torch.tensor([getattr(d, k) for d in drawn], device=device)
        for k in ("identity", "text_dropped", "source_dropped")
    }
    x0 = torch.stack([d.target for d in drawn])
    anchor = torch.stack([d.clean for d in drawn]) if Prior(prior) is Prior.SOURCE else None
    start = flow_start(torch.stack([d.noise for d in drawn]), anchor)  # x1 (B, C, F, H, W)
    t = torch.cat([d.t for d in drawn])
    weights = frame_weights(
        x0.shape[2], kind=tricks.frame_weighting, power=tricks.frame_weight_power, mix=tricks.frame_weight_mix
    ).to(device)
    edit_weights = None
    if tricks.edit_weight > 0:  # from the clean pair, so an identity sample (x0 = source) weighs 1 everywhere
        change = (x0.float() - batch.source.float()).abs().mean(dim=1, keepdim=True)  # (B, 1, F, H, W)
        edit_weights = 1.0 + tricks.edit_weight * change.clamp(max=1.0)
    return StepInputs(
        noisy=interpolate(x0, start, t),
        t=t,
        text=_swap_text(batch.text, empty_text, flags["text_dropped"]),
        source=None if conditioning is Conditioning.NONE else torch.stack([d.source for d in drawn]),
        velocity=velocity_target(x0, start),
        frame_weights=weights,
        edit_weights=edit_weights,
        guidance=None
        if guidance is None
        else torch.full((len(drawn),), guidance * TIMESTEP_SCALE, device=device),
        **flags,
    )


def compute_loss(
    model: nn.Module, inputs: StepInputs, *, autocast_dtype: torch.dtype | None = None
) -> Tensor:
    """Forward under optional autocast; the weighted velocity MSE in float32, a scalar."""
    device_type = inputs.noisy.device.type
    with torch.autocast(
        device_type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
    ):
        pred = model(**inputs.model_kwargs())
    return flow_loss(
        pred, inputs.velocity, frame_weights=inputs.frame_weights, element_weights=inputs.edit_weights
    )
