"""Frame quality: sharpness (variance of the Laplacian) and exposure (mean luma, clipped fractions)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retake.eval.quality import ExposureConfig, exposure, sharpness


def test_sharpness_closed_forms():
    flat = np.full((1, 16, 16, 3), 90, np.uint8)
    checker = ((np.indices((16, 16)).sum(0) % 2) * 255).astype(np.uint8)
    checker = np.repeat(checker[None, ..., None], 3, axis=-1)
    # Every pixel of a 1-px checkerboard has Laplacian +-4 * 255: variance (4 * 255)^2.
    np.testing.assert_allclose(sharpness(np.concatenate([flat, checker])), [0.0, (4 * 255) ** 2])


def test_blur_lowers_sharpness(texture):
    sharp = texture(64, 64, seed=3)[None]
    blurred = cv2.GaussianBlur(sharp[0], (0, 0), 2.0)[None]
    assert sharpness(blurred)[0] < 0.3 * sharpness(sharp)[0]


def test_exposure_mean_and_clipped_fractions():
    frames = np.full((2, 4, 4, 3), 128, np.uint8)
    frames[1, :2] = 0
    frames[1, 2:] = 255
    result = exposure(frames)
    np.testing.assert_allclose(result.mean, [128, 127.5])
    np.testing.assert_allclose(result.dark_fraction, [0, 0.5])
    np.testing.assert_allclose(result.bright_fraction, [0, 0.5])
    np.testing.assert_allclose(result.clipped_fraction, [0, 1.0])
    nearly = exposure(np.full((1, 4, 4, 3), 4, np.uint8), ExposureConfig(dark_level=3))
    assert nearly.dark_fraction[0] == 0.0


def test_exposure_levels_are_validated():
    with pytest.raises(ValueError, match="dark_level"):
        ExposureConfig(dark_level=200, bright_level=100)
