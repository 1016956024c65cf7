"""Tiny random models the tests of several packages share (importable: pyproject.toml puts tests/ on the
pytest path)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLHunyuanVideo


def tiny_vae_model(latent_channels: int = 4) -> AutoencoderKLHunyuanVideo:
    """HunyuanVideo's VAE architecture (4x time, 8x space), 8 channels wide, seeded (the global RNG is left
    as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoencoderKLHunyuanVideo(
            latent_channels=latent_channels,
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
            scaling_factor=0.5,
            mid_block_add_attention=False,
        )
