"""SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) between two videos, on luma, optionally restricted to a mask.

Per frame, on BT.601 luma in [0, 255] (float32, not rounded):
    mu, sigma^2, sigma_xy = Gaussian-weighted local statistics (11x11 window, sigma 1.5, weights sum to 1)
    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    with C1 = (0.01 * 255)^2 and C2 = (0.03 * 255)^2.
Only window centres whose whole window lies inside the frame are kept (the 'valid' filtering of the reference
MATLAB code), so the map of an (H, W) frame is (H - 10, W - 10). The video score averages the map over every
kept centre of every frame, which equals the mean of per-frame SSIMs when no mask is given.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from retake.eval._inputs import as_mask, as_video, luma, same_shape

WINDOW = 11
RADIUS = WINDOW // 2
SIGMA = 1.5
K1, K2 = 0.01, 0.03
C1, C2 = (K1 * 255.0) ** 2, (K2 * 255.0) ** 2
_KERNEL = cv2.getGaussianKernel(WINDOW, SIGMA, cv2.CV_32F)  # (11, 1), normalised


def _crop(image: np.ndarray) -> np.ndarray:
    """Keep the centres whose 11x11 window lies inside the frame."""
    return image[RADIUS:-RADIUS, RADIUS:-RADIUS]


def _frame_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma x2 -> (H - 10, W - 10) float32 SSIM map."""
    # Centre on mid-grey before taking moments: variances are E[x^2] - E[x]^2, and in float32 that difference
    # loses precision when the squares are large. Variances and covariance do not change with the shift.
    x, y = x - 128.0, y - 128.0
    # One filter pass over the five moment images stacked as channels: (H, W, 5).
    moments = np.stack([x, y, x * x, y * y, x * y], axis=-1)
    mu_x, mu_y, xx, yy, xy = np.moveaxis(_crop(cv2.sepFilter2D(moments, -1, _KERNEL, _KERNEL)), -1, 0)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    mu_x, mu_y = mu_x + 128.0, mu_y + 128.0
    numerator = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    return numerator / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))


def ssim_map(a: Any, b: Any) -> np.ndarray:
    """SSIM map of two uint8 (F, H, W, 3) videos on luma: (F, H - 10, W - 10) float32, map[t, i, j] belongs to
    the window centred on pixel (i + 5, j + 5)."""
    a, b = as_video(a, "a"), as_video(b, "b")
    same_shape(a, b, ("a", "b"))
    if min(a.shape[1:3]) < WINDOW:
        raise ValueError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {a.shape[1:3]}")
    return np.stack([_frame_ssim_map(x, y) for x, y in zip(luma(a), luma(b), strict=True)])


def window_inside(where: np.ndarray) -> np.ndarray:
    """(F, H, W) bool -> (F, H - 10, W - 10) bool: True where the whole 11x11 window lies inside `where`
    (erosion by the window, i.e. the complement of the excluded region dilated by the window radius)."""
    kernel = np.ones((WINDOW, WINDOW), np.uint8)
    return np.stack([_crop(cv2.erode(m.astype(np.uint8), kernel)) > 0 for m in where])


def ssim(a: Any, b: Any, where: Any = None) -> float:
    """Mean SSIM of video b against video a (uint8 (F, H, W, 3), luma, see the module docstring).

    where: optional (F, H, W) bool; only windows lying entirely inside it count. NaN if no window does.
    """
    a = as_video(a, "a")
    values = ssim_map(a, b)
    if where is not None:
        values = values[window_inside(as_mask(where, a.shape, "where"))]
        if values.size == 0:
            return float("nan")
    return float(values.mean(dtype=np.float64))
