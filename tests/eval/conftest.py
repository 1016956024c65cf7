"""Synthetic videos for the metric tests: a smooth random texture, moved by a known number of pixels per
frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture stretched to 0-255: gradients everywhere, so optical flow is well posed."""
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).astype(np.uint8)


def _translating(
    frames: int = 17, height: int = 64, width: int = 64, dx: int = 2, dy: int = 1, seed: int = 0
):
    """(F, H, W, 3) uint8 crops of one texture whose content moves (dx, dy) px per frame (dx, dy >= 0)."""
    canvas = _texture(height + dy * frames, width + dx * frames, seed)
    crops = [canvas[(frames - t) * dy :, (frames - t) * dx :][:height, :width] for t in range(frames)]
    return np.stack(crops)


@pytest.fixture
def texture() -> Callable[..., np.ndarray]:
    return _texture


@pytest.fixture
def translating() -> Callable[..., np.ndarray]:
    return _translating


@pytest.fixture
def moving() -> np.ndarray:
    """The default Flatland-size clip: 17 frames of 64x64 moving (2, 1) px per frame."""
    return _translating()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIP checkpoint in a folder (tiny_models.save_tiny_clip)."""
    from tiny_models import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
