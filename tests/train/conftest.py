"""Fixtures of the training tests, and the import path of their helper module `train_fixtures`.

Helpers are imported by name (`from train_fixtures import ...`); the folder is put on sys.path here so that this
works under pytest's `importlib` import mode too, which does not add test folders to the path itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def vae_dir(tmp_path_factory) -> Path:
    """A tiny random HunyuanVideo VAE saved in diffusers' layout (4x time, 8x space, 4 latent channels)."""
    from tiny_models import tiny_vae_model

    root = tmp_path_factory.mktemp("tiny_vae")
    vae = tiny_vae_model()
    vae.save_pretrained(root, safe_serialization=True)
    return root
