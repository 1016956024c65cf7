"""PSNR over all frames, pixels and channels, capped for identical inputs, optionally over a mask."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from retake.eval.psnr import MAX_PSNR_DB, psnr


def test_constant_offset_matches_the_closed_form():
    a = np.random.default_rng(0).integers(0, 200, (3, 16, 20, 3), dtype=np.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255**2 / 100))


def test_error_is_pooled_over_frames_not_averaged_per_frame():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[1] = 20  # frame 0 perfect, frame 1 off by 20: pooled MSE = 200
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 200))


def test_identical_videos_get_the_cap():
    a = np.full((2, 8, 8, 3), 7, np.uint8)
    assert psnr(a, a) == MAX_PSNR_DB == 100.0
    assert psnr(a, a, max_db=60.0) == 60.0


def test_where_restricts_the_comparison_to_the_selected_pixels():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[:, :4] = 50
    bottom = np.zeros((2, 8, 8), bool)
    bottom[:, 4:] = True
    assert psnr(a, b, where=bottom) == MAX_PSNR_DB
    assert psnr(a, b, where=~bottom) == pytest.approx(10 * np.log10(255**2 / 2500))
    assert np.isnan(psnr(a, b, where=np.zeros((2, 8, 8), bool)))


def test_accepts_video_objects_and_rejects_mismatched_inputs():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    assert psnr(SimpleNamespace(frames=a), a) == MAX_PSNR_DB
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 3\) and \(2, 8, 9, 3\)"):
        psnr(a, np.zeros((2, 8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="where"):
        psnr(a, a, where=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="where holds NaN"):
        psnr(a, a, where=np.full((2, 8, 8), np.nan))
    with pytest.raises(ValueError, match="max_db must be finite"):
        psnr(a, a, max_db=float("nan"))
    with pytest.raises(ValueError, match="empty picture"):
        psnr(a[:, :0], a[:, :0])
