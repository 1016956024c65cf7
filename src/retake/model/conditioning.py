"""The one place that decides how the source video enters the network and how source tokens are modulated.

Two small strategy objects, picked from the config by `conditioning_for`:

- a `SourceEntry` says how the source latent becomes tokens: not at all (text-to-video), as extra tokens in the
  sequence with shared or offset RoPE positions (ICVE), or concatenated on channels before the patch embedding
  (InsViE);
- a `SourceModulation` gives the vector that modulates source tokens: ICVE's t=0 embedding with the same pooled
  text and guidance as the target (full attention), or, for one-way attention, the t=0 embedding plus guidance
  *without* the pooled text. Dropping the text is what makes one-way source K/V independent of the prompt, so
  one cache serves the conditional and the unconditional branch alike (and every step, as t is fixed at 0).

The transformer only calls these; nothing else in the model branches on the conditioning mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoConditionEmbedding
from torch import Tensor, nn

from retake.model.config import AttentionMode, Conditioning, TransformerConfig
from retake.model.layers import Grid


@dataclass(frozen=True)
class NoSource:
    """Text-to-video: the network sees the noisy latent only."""

    def patch_in_channels(self, latent_channels: int) -> int:
        return latent_channels

    def embed(self, patch_embed: nn.Module, target: Tensor, source: Tensor | None) -> tuple[Tensor, None]:
        if source is not None:
            raise ValueError(
                "conditioning 'none' takes no source; build the model with 'sequence' or 'channel'"
            )
        return patch_embed(target), None


@dataclass(frozen=True)
class SequenceSource:
    """ICVE: source tokens (same patch embedding) are prepended to the sequence.

    time_offset None: source and target share RoPE positions, which requires equal token grids.
    time_offset k: source frame i sits at temporal position k + i, so the lengths may differ.
    """

    time_offset: int | None = None

    def patch_in_channels(self, latent_channels: int) -> int:
        return latent_channels

    def embed(
        self, patch_embed: nn.Module, target: Tensor, source: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        if source is not None and source.shape[:2] != target.shape[:2]:
            raise ValueError(
                f"source (B, C) {tuple(source.shape[:2])} must match target (B, C) {tuple(target.shape[:2])}"
            )
        return patch_embed(target), None if source is None else self.embed_source(patch_embed, source)

    def embed_source(self, patch_embed: nn.Module, source: Tensor) -> Tensor:
        """Source tokens alone (B, N_src, D): the same patch embedding as the target."""
        return patch_embed(source)

    def source_time_offset(self, target_grid: Grid | None, source_grid: Grid) -> int:
        """Temporal RoPE offset of the source; checks the grids when positions are shared."""
        if self.time_offset is not None:
            return self.time_offset
        if target_grid is not None and target_grid != source_grid:
            raise ValueError(
                f"source token grid {source_grid} differs from target grid {target_grid}; shared RoPE positions "
                "need equal shapes (set source_time_offset to allow different lengths)"
            )
        return 0


@dataclass(frozen=True)
class ChannelSource:
    """InsViE: [noisy target, source] concatenated on channels; a missing source is all zeros (the same input
    InsViE trains with when it drops the source)."""

    def patch_in_channels(self, latent_channels: int) -> int:
        return 2 * latent_channels

    def embed(self, patch_embed: nn.Module, target: Tensor, source: Tensor | None) -> tuple[Tensor, None]:
        if source is None:
            source = torch.zeros_like(target)
        if source.shape != target.shape:
            raise ValueError(
                f"channel conditioning needs source shape == target shape, got {tuple(source.shape)} "
                f"vs {tuple(target.shape)}"
            )
        return patch_embed(torch.cat([target, source], dim=1)), None  # (B, 2C, F, H, W) -> tokens


SourceEntry = NoSource | SequenceSource | ChannelSource


def _embed_timestep(embed: HunyuanVideoConditionEmbedding, value: Tensor, module: nn.Module) -> Tensor:
    dtype = embed.timestep_embedder.linear_1.weight.dtype
    return module(embed.time_proj(value).to(dtype))


@dataclass(frozen=True)
class IcveModulation:
    """Full attention (ICVE): source tokens get t=0 + pooled text + guidance, exactly as ICVE's `vec_clean`."""

    mode: AttentionMode = AttentionMode.FULL

    def source_vector(
        self,
        embed: HunyuanVideoConditionEmbedding,
        timestep: Tensor,
        pooled: Tensor | None,
        guidance: Tensor | None,
    ) -> Tensor:
        if pooled is None:
            raise ValueError("full-attention source modulation needs the pooled text projection")
        vector, _ = embed(torch.zeros_like(timestep), pooled, guidance)
        return vector


@dataclass(frozen=True)
class OneWayModulation:
    """One-way attention: source tokens get t=0 + guidance, no pooled text (see the module docstring)."""

    mode: AttentionMode = AttentionMode.ONE_WAY

    def source_vector(
        self,
        embed: HunyuanVideoConditionEmbedding,
        timestep: Tensor,
        pooled: Tensor | None,
        guidance: Tensor | None,
    ) -> Tensor:
        vector = _embed_timestep(embed, torch.zeros_like(timestep), embed.timestep_embedder)
        if embed.guidance_embedder is not None:
            vector = vector + _embed_timestep(embed, guidance, embed.guidance_embedder)
        return vector


SourceModulation = IcveModulation | OneWayModulation


def conditioning_for(config: TransformerConfig) -> tuple[SourceEntry, SourceModulation]:
    """The strategies a config asks for."""
    entries = {
        Conditioning.NONE: NoSource(),
        Conditioning.SEQUENCE: SequenceSource(config.source_time_offset),
        Conditioning.CHANNEL: ChannelSource(),
    }
    modulation = OneWayModulation() if config.attention is AttentionMode.ONE_WAY else IcveModulation()
    return entries[config.conditioning], modulation
