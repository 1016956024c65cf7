"""Tiny random models the tests of several packages share (importable: pyproject.toml puts tests/ on the
pytest path)."""

from __future__ import annotations

from pathlib import Path

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


def save_tiny_clip(path: Path) -> Path:
    """A 1-layer, width-32 random CLIP with a byte-level tokenizer (every byte a token, no merges) and a 32 px
    image processor, saved in `path` like a real checkpoint (config, safetensors, tokenizer, preprocessor)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16).save_pretrained(path)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(path)
    layer = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    text = dict(
        layer,
        vocab_size=len(vocab),
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = dict(layer, image_size=32, patch_size=8)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(path)
    return path
