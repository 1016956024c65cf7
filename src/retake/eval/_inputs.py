"""Checks and conversions shared by the metrics: videos, masks and luma."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from retake.opticalflow import check_video


def as_video(video: Any, name: str, min_frames: int = 1) -> np.ndarray:
    """A uint8 (F, H, W, 3) array from an array or from anything with a `.frames` array (`Video`)."""
    frames = getattr(video, "frames", video)
    return check_video(frames, name, min_frames)


def same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")


def as_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    """An (F, H, W) bool mask for a video of `shape` (F, H, W, 3); any non-zero value counts as True."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape[:3]):
        raise ValueError(f"{name} must have shape (F, H, W) = {tuple(shape[:3])}, got {mask.shape}")
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise ValueError(f"{name} holds NaN or infinite values; give a bool mask")
    return mask if mask.dtype == bool else mask != 0


def luma(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB -> (F, H, W) float32 luma in [0, 255], unrounded.

    BT.601 weights (0.299, 0.587, 0.114), the ones cv2.COLOR_RGB2GRAY uses, so metrics and optical flow see
    the same grey image. Frame by frame, to avoid a float copy of the whole RGB video.
    """
    out = np.empty(frames.shape[:3], dtype=np.float32)
    for i, frame in enumerate(frames):
        out[i] = cv2.cvtColor(frame.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return out
