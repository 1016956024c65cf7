"""Fixtures of the factory tests: Flatland sources with sidecars, oracle configs, and the import path of the
helper modules (tiny_diffusers here; vlm_server of the data tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "data"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from synth_helpers import INSVIE_ORACLE, SFT_ORACLE  # noqa: E402

from retake.synth.flatland import write_sources  # noqa: E402
from retake.synth.recipes import get_recipe, with_overrides  # noqa: E402


@pytest.fixture(scope="session")
def flatland_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 Flatland sources (two of each edit kind), 64 px, 9 frames, each with its sidecar."""
    folder = tmp_path_factory.mktemp("flatland_sources")
    write_sources(folder, n=12, frames=9, seed=3, progress=False)
    return folder


@pytest.fixture(scope="session")
def insvie_oracle():
    return with_overrides(get_recipe("insvie"), INSVIE_ORACLE)


@pytest.fixture(scope="session")
def sft_oracle():
    return with_overrides(get_recipe("icve-sft"), SFT_ORACLE)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved retake bundle: the `tiny` transformer, a tiny causal HunyuanVideo VAE and MiniLM."""
    from retake.model import build_transformer
    from retake.model.text import load_text_encoder
    from retake.model.vae import VideoVAE
    from retake.sample.config import EditConfig
    from retake.sample.pipeline import EditPipeline
    from tiny_models import tiny_vae_model

    vae = tiny_vae_model()
    transformer = build_transformer("tiny", seed=0, text_embed_dim=384, pooled_projection_dim=384)
    defaults = EditConfig(steps=2, shift=3.0, text_scale=3.0, frames=5, height=32, width=32)
    pipeline = EditPipeline(transformer, VideoVAE(vae, tiling=None), load_text_encoder("minilm"), defaults)
    return pipeline.save_pretrained(tmp_path_factory.mktemp("bundle") / "tiny")
