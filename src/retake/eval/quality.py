"""Reference-free frame quality: sharpness and exposure, per frame.

sharpness: variance of the Laplacian of luma (0-255, 3x3 kernel [[0,1,0],[1,-4,1],[0,1,0]]) per frame. Blur
    and flat frames score low; noise scores high too, so use it to reject blur, not to rank quality.
exposure: per-frame mean luma and the fractions of pixels at or below `dark_level` / at or above
    `bright_level` (crushed shadows / blown highlights; compressed video rarely hits exactly 0 or 255, hence
    the margins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from retake.eval._inputs import as_video


@dataclass(frozen=True)
class ExposureConfig:
    dark_level: int = 5  # luma <= this counts as clipped black
    bright_level: int = 250  # luma >= this counts as clipped white

    def __post_init__(self) -> None:
        if not 0 <= self.dark_level < self.bright_level <= 255:
            raise ValueError(
                f"need 0 <= dark_level < bright_level <= 255, got {self.dark_level} and {self.bright_level}"
            )


@dataclass(frozen=True)
class Exposure:
    """Per-frame arrays, each (F,)."""

    mean: np.ndarray  # mean luma, 0-255
    dark_fraction: np.ndarray
    bright_fraction: np.ndarray

    @property
    def clipped_fraction(self) -> np.ndarray:
        return self.dark_fraction + self.bright_fraction


def _grey(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB -> (F, H, W) uint8 luma (BT.601, rounded)."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def sharpness(video: Any) -> np.ndarray:
    """Variance of the Laplacian of luma for each frame of a uint8 (F, H, W, 3) video: (F,) float64."""
    grey = _grey(as_video(video, "video"))
    return np.array([cv2.Laplacian(g, cv2.CV_64F, ksize=1).var() for g in grey])


def exposure(video: Any, config: ExposureConfig = ExposureConfig()) -> Exposure:
    """Per-frame mean luma and clipped fractions of a uint8 (F, H, W, 3) video."""
    grey = _grey(as_video(video, "video"))
    return Exposure(
        mean=grey.mean(axis=(1, 2)),
        dark_fraction=(grey <= config.dark_level).mean(axis=(1, 2)),
        bright_fraction=(grey >= config.bright_level).mean(axis=(1, 2)),
    )
