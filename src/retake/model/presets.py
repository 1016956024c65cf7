"""Named transformer configurations and the one function that builds a model from a name or a config.

- `tiny`: tests (width 32, one block of each kind).
- `flatland-s`: the Flatland lab bench; trains on CPU in minutes (MiniLM 384-d text, 4 heads x 32).
- `bench-m`: a mid-size one-way model for the source-cache benchmark on CPU.
- `hunyuan-13b`: HunyuanVideo T/2 (diffusers' default `HunyuanVideoTransformer3DModel`), ICVE conditioning.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import torch

from retake.model.config import TransformerConfig

if TYPE_CHECKING:
    from retake.model.transformer import InContextTransformer

PRESETS: dict[str, TransformerConfig] = {
    "tiny": TransformerConfig(
        in_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(4, 6, 6),
    ),
    # Sized for the shipped editor's VAE (src/retake/assets/flatland/editor/vae: 16 latent channels, 4x space,
    # 4x time): a 2x2 patch of its latents is an 8x8-pixel token of 64 values, so a 64x64 clip is 8x8 tokens per
    # latent frame. The 30 dB VAE (assets/flatland/vae: 32 channels at 2x) needs in_channels=32 and keeps
    # patch_size=2: a 4x4 patch (512 values) does not fit through a 128-wide token (docs/training.md, 5).
    "flatland-s": TransformerConfig(
        in_channels=16,
        patch_size=2,
        num_attention_heads=4,
        attention_head_dim=32,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        guidance_embeds=False,  # trained from scratch with real CFG; no distilled guidance to embed
        text_embed_dim=384,  # all-MiniLM-L6-v2 token states
        pooled_projection_dim=384,  # its mean-pooled sentence vector
        rope_axes_dim=(8, 12, 12),
    ),
    "bench-m": TransformerConfig(
        in_channels=16,
        num_attention_heads=8,
        attention_head_dim=64,
        num_layers=2,
        num_single_layers=4,
        num_refiner_layers=1,
        text_embed_dim=384,
        pooled_projection_dim=384,
        rope_axes_dim=(16, 24, 24),
        attention="one-way",
    ),
    "hunyuan-13b": TransformerConfig(),
}


def get_preset(name: str, **overrides: Any) -> TransformerConfig:
    """The named config with `overrides` applied (e.g. `in_channels=8`, `attention="one-way"`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown transformer preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    known = {f.name for f in fields(TransformerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown TransformerConfig fields {unknown} for preset {name!r}")
    return replace(PRESETS[name], **overrides)


def build_transformer(
    name_or_config: str | TransformerConfig,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    seed: int | None = None,
    **overrides: Any,
) -> InContextTransformer:
    """Build a randomly initialised `InContextTransformer` from a preset name or a config.

    device "meta" builds without allocating (e.g. to count parameters); seed makes the initial weights
    reproducible without touching the global RNG.
    """
    from retake.model.transformer import InContextTransformer

    spec = name_or_config if isinstance(name_or_config, TransformerConfig) else get_preset(name_or_config)
    spec = replace(spec, **overrides) if overrides else spec
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.device(device or "cpu"):
            model = InContextTransformer.from_spec(spec)
    # nn.Module.to: diffusers' ModelMixin.to warns on every dtype cast, even with no fp32-only modules.
    return model if dtype is None else torch.nn.Module.to(model, dtype)
