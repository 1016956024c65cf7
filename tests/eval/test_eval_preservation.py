"""Preservation: PSNR/SSIM against the source outside the edit mask."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval.preservation import preservation
from retake.eval.psnr import MAX_PSNR_DB, psnr
from retake.eval.ssim import ssim


@pytest.fixture
def box_mask(moving):
    mask = np.zeros(moving.shape[:3], bool)
    mask[:, 20:40, 24:44] = True
    return mask


def test_an_edit_confined_to_the_mask_is_perfectly_preserving(moving, box_mask):
    edited = moving.copy()
    edited[box_mask] = np.random.default_rng(0).integers(0, 256, (box_mask.sum(), 3), dtype=np.uint8)
    kept = preservation(moving, edited, box_mask)
    assert kept.psnr == MAX_PSNR_DB and kept.ssim == pytest.approx(1.0, abs=1e-6)
    assert psnr(moving, edited) < 30 and ssim(moving, edited) < 0.95  # the edit itself is visible


def test_a_change_outside_the_mask_is_measured_there_only(moving, box_mask):
    source = moving.clip(0, 200)
    edited = source + np.uint8(8)
    edited[box_mask] = 0  # anything inside the mask is ignored
    kept = preservation(source, edited, box_mask)
    assert kept.psnr == pytest.approx(10 * np.log10(255**2 / 64))
    assert 0.9 < kept.ssim < 1.0


def test_nothing_to_preserve_gives_nan(moving):
    kept = preservation(moving, moving, np.ones(moving.shape[:3], bool))
    assert np.isnan(kept.psnr) and np.isnan(kept.ssim)


def test_the_mask_must_match_the_video(moving):
    with pytest.raises(ValueError, match="edit_mask"):
        preservation(moving, moving, np.ones(moving.shape[1:3], bool))
