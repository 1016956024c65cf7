"""Tiny random parts for the edit pipeline: a HunyuanVideo-shaped VAE, transformers of every conditioning, the
real MiniLM text encoder, a fake HunyuanVideo checkout (VAE + Llama/CLIP text stack) and two real clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from retake.model import build_transformer
from retake.model.text import MiniLMTextEncoder, load_text_encoder
from retake.model.transformer import InContextTransformer
from retake.model.vae import VideoVAE
from retake.sample.config import EditConfig
from retake.sample.pipeline import EditPipeline
from retake.video import Video, read
from tiny_models import tiny_vae_model

# Small enough to run in a fraction of a second per step: 5 frames -> 2 latent frames, 32x32 -> 4x4 latents.
TINY = EditConfig(steps=2, shift=3.0, text_scale=3.0, frames=5, height=32, width=32)
LATENT_CHANNELS = 4
HUNYUAN_TEXT_DIMS = (32, 24)  # (Llama hidden, CLIP hidden) of the fake checkout


def tiny_transformer(text_dims: tuple[int, int] = (384, 384), **overrides) -> InContextTransformer:
    """The `tiny` preset (width 32, one dual + one single block) for the given text widths."""
    return build_transformer(
        "tiny", seed=0, text_embed_dim=text_dims[0], pooled_projection_dim=text_dims[1], **overrides
    )


@pytest.fixture(scope="session")
def tiny_defaults() -> EditConfig:
    return TINY


@pytest.fixture(scope="session")
def hunyuan_text_dims() -> tuple[int, int]:
    return HUNYUAN_TEXT_DIMS


@pytest.fixture(scope="session")
def make_transformer() -> Callable[..., InContextTransformer]:
    """Factory: `tiny_transformer(text_dims, **overrides)`."""
    return tiny_transformer


@pytest.fixture(scope="session")
def clip(shared_videos: Path) -> Video:
    """A real clip: 16 frames, 512x512, 8 fps."""
    return read(shared_videos / "anyv2v_man-walking.mp4")


@pytest.fixture(scope="session")
def other_clip(shared_videos: Path) -> Video:
    return read(shared_videos / "anyv2v_ballet.mp4")


@pytest.fixture(scope="session")
def minilm() -> MiniLMTextEncoder:
    return load_text_encoder("minilm")


@pytest.fixture(scope="session")
def tiny_vae() -> VideoVAE:
    return VideoVAE(tiny_vae_model(), tiling=None)


@pytest.fixture(scope="session")
def make_pipeline(minilm, tiny_vae) -> Callable[..., EditPipeline]:
    """Factory: a tiny pipeline with the given transformer overrides (conditioning, attention, ...)."""

    def make(defaults: EditConfig = TINY, **overrides) -> EditPipeline:
        return EditPipeline(tiny_transformer(**overrides), tiny_vae, minilm, defaults)

    return make


@pytest.fixture(scope="session")
def bundle_dir(make_pipeline, tmp_path_factory) -> Path:
    """A saved tiny ICVE-style bundle: sequence conditioning, full attention, MiniLM text."""
    return make_pipeline().save_pretrained(tmp_path_factory.mktemp("bundles") / "tiny")


# ----------------------------------------------------------------------------------------------------------
# a fake HunyuanVideo checkout (diffusers layout) with tiny random parts
# ----------------------------------------------------------------------------------------------------------
WORDS = ["add", "a", "hat", "make", "it", "snow", "the", "man", "low", "quality", ",", "."]


def _word_tokenizer(specials: list[str], bos: str, eos: str | None, pad: str) -> PreTrainedTokenizerFast:
    """Whitespace word-level tokenizer built offline; adds BOS (and EOS) as the real tokenizers do."""
    vocab = {token: i for i, token in enumerate([*specials, "<unk>", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    single = f"{bos} $A" + (f" {eos}" if eos else "")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(s, vocab[s]) for s in {bos, eos} if s]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad, unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def hunyuan_checkout(tmp_path_factory) -> Path:
    """vae/, text_encoder/ + tokenizer/ (Llama), text_encoder_2/ + tokenizer_2/ (CLIP) and a decoy
    transformer/ that must never be copied as text."""
    root = tmp_path_factory.mktemp("HunyuanVideo")
    tiny_vae_model().save_pretrained(root / "vae")
    torch.manual_seed(0)
    llm_tokenizer = _word_tokenizer(["<bos>", "<pad>"], "<bos>", None, "<pad>")
    llm = LlamaConfig(
        vocab_size=len(llm_tokenizer),
        hidden_size=HUNYUAN_TEXT_DIMS[0],
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=300,
        pad_token_id=llm_tokenizer.pad_token_id,
    )
    LlamaModel(llm).save_pretrained(root / "text_encoder")
    llm_tokenizer.save_pretrained(root / "tokenizer")
    clip_tokenizer = _word_tokenizer(["<sot>", "<eot>"], "<sot>", "<eot>", "<eot>")
    clip = CLIPTextConfig(
        vocab_size=len(clip_tokenizer),
        hidden_size=HUNYUAN_TEXT_DIMS[1],
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=clip_tokenizer.bos_token_id,
        eos_token_id=clip_tokenizer.eos_token_id,
        pad_token_id=clip_tokenizer.pad_token_id,
    )
    CLIPTextModel(clip).save_pretrained(root / "text_encoder_2")
    clip_tokenizer.save_pretrained(root / "tokenizer_2")
    (root / "transformer").mkdir()
    (root / "transformer" / "decoy.txt").write_text("the 13B T2V transformer would be here")
    return root


@pytest.fixture(scope="session")
def icve_transformer_dir(tmp_path_factory) -> Path:
    """A saved tiny transformer with ICVE's conditioning and the fake checkout's text widths (what
    `retake convert icve` writes for the real model)."""
    path = tmp_path_factory.mktemp("converted") / "icve"
    tiny_transformer(HUNYUAN_TEXT_DIMS).save_pretrained(path)
    return path
