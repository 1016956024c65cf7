"""PSNR between two videos, optionally restricted to a pixel mask.

PSNR = 10 log10(255^2 / MSE), the MSE taken once over every frame, pixel and RGB channel (not averaged per
frame, so a single broken frame costs what its pixels cost). Identical inputs have infinite PSNR; it is capped
at `MAX_PSNR_DB` so averages over many videos stay finite.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from retake.checks import check_finite
from retake.eval._inputs import as_mask, as_video, same_shape

MAX_PSNR_DB = 100.0
DATA_RANGE = 255.0


def mse_to_psnr(mse: float, max_db: float = MAX_PSNR_DB) -> float:
    """10 log10(255^2 / mse), capped at max_db (mse 0 -> max_db)."""
    check_finite("max_db", max_db, above=0)
    if mse <= 0:
        return max_db
    return min(max_db, float(10.0 * np.log10(DATA_RANGE**2 / mse)))


def psnr(a: Any, b: Any, where: Any = None, max_db: float = MAX_PSNR_DB) -> float:
    """PSNR in dB of video b against video a, both uint8 (F, H, W, 3).

    where: optional (F, H, W) bool, the pixels to compare (all three channels of each); NaN if it selects
    none.
    """
    a, b = as_video(a, "a"), as_video(b, "b")
    same_shape(a, b, ("a", "b"))
    if where is None:
        where = np.ones(a.shape[:3], dtype=bool)
    keep = as_mask(where, a.shape, "where").astype(np.uint8)  # cv2 masks are uint8
    count = int(np.count_nonzero(keep)) * a.shape[-1]
    if count == 0:
        return float("nan")
    # cv2.norm sums the squared differences exactly (in double) without a float copy of the video.
    total = sum(cv2.norm(x, y, cv2.NORM_L2SQR, mask=m) for x, y, m in zip(a, b, keep, strict=True))
    return mse_to_psnr(total / count, max_db)
