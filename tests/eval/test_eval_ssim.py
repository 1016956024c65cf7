"""Gaussian-window SSIM on luma (Wang et al. 2004), checked against closed forms and a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval.ssim import C1, C2, ssim, ssim_map, window_inside


def direct_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of one RGB frame pair by the textbook formula, window by window, in float64."""
    x, y = (f.astype(np.float64) @ [0.299, 0.587, 0.114] for f in (a, b))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    out = np.empty((x.shape[0] - 10, x.shape[1] - 10))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            out[i, j] = (2 * mx * my + C1) * (2 * cov + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return out


def test_map_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1, 15, 18, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    values = ssim_map(a, b)
    assert values.shape == (1, 5, 8)
    np.testing.assert_allclose(values[0], direct_ssim_map(a[0], b[0]), atol=1e-5)
    assert ssim(a, b) == pytest.approx(direct_ssim_map(a[0], b[0]).mean(), abs=1e-5)


def test_identical_videos_score_one(moving):
    assert ssim(moving, moving) == pytest.approx(1.0, abs=1e-6)


def test_constant_shift_of_flat_frames_matches_the_closed_form():
    v, c = 100.0, 30.0
    a = np.full((2, 16, 16, 3), v, np.uint8)
    expected = (2 * v * (v + c) + C1) / (v**2 + (v + c) ** 2 + C1)  # contrast-structure term is C2 / C2
    assert ssim(a, a + np.uint8(c)) == pytest.approx(expected, abs=1e-5)


def test_shifted_texture_keeps_structure_but_loses_luminance(texture):
    a = texture(32, 32)[None].clip(0, 200)
    shifted = ssim(a, a + np.uint8(40))
    noisy = ssim(a, np.random.default_rng(1).permuted(a, axis=2))
    assert 0.8 < shifted < 1.0 and noisy < 0.5 < shifted


def test_where_drops_every_window_touching_the_excluded_region():
    a = np.full((1, 32, 32, 3), 120, np.uint8)
    b = a.copy()
    b[0, 16, 16] = 0  # one broken pixel
    where = np.ones((1, 32, 32), bool)
    where[0, 16, 16] = False
    assert ssim(a, b) < 1.0
    assert ssim(a, b, where=where) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(ssim(a, b, where=np.zeros((1, 32, 32), bool)))


def test_window_inside_is_the_excluded_region_dilated_by_the_window_radius():
    where = np.ones((1, 32, 32), bool)
    where[0, 16, 16] = False
    inside = window_inside(where)  # map index i is the window centred on pixel i + 5
    expected = np.ones((1, 22, 22), bool)
    expected[0, 6:17, 6:17] = False  # centres 11..21: within 5 px of pixel 16
    assert np.array_equal(inside, expected)


def test_frames_smaller_than_the_window_are_rejected():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((1, 10, 20, 3), np.uint8), np.zeros((1, 10, 20, 3), np.uint8))
