"""Reading the factory's inputs: the first frames of a video (a 4k+1 clip at the output size) or a still image.

A clip is taken from the start of the video, because the image editor's edited first frame (and a
precomputed one) is of frame 0; it keeps the largest 4k+1 frame count available up to `clip_frames`, the
count the causal video VAEs downstream need.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from retake import video
from retake.data.sizing import fit_short_side
from retake.errors import RetakeError


class UnreadableImageError(RetakeError):
    """A still input that OpenCV cannot decode."""


def clip_length(available: int, cap: int) -> int:
    """The largest 4k+1 <= min(available, cap); 0 when not even one frame is available."""
    n = min(available, cap)
    return 0 if n < 1 else n - (n - 1) % 4


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    return fit_short_side(height, width, short_side, even=True)


def read_clip(
    path: Path, info: video.VideoInfo, *, frames: int, short_side: int, fps: float | None
) -> tuple[np.ndarray, float, tuple[int, ...]]:
    """(frames (N, H, W, 3) uint8, their fps, the native index of each): up to `frames` frames from the
    start, resampled to `fps` (None: native), cut to 4k+1."""
    size = output_size(info.height, info.width, short_side)
    clip = video.read(path, fps=fps, size=size, max_frames=frames)
    n = clip_length(len(clip.frames), frames)
    if fps is None:
        indices = tuple(range(n))
    else:  # frame k shows the instant k / fps: the native frame on screen then (exact on constant-rate video)
        step = info.fps / fps
        indices = tuple(int(np.floor(k * step + 1e-6)) for k in range(n))
    return clip.frames[:n], float(clip.fps), indices


def read_still(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (alpha dropped, grey expanded)."""
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # (H, W, 3) BGR; grey and alpha converted by OpenCV
    if image is None:
        raise UnreadableImageError(f"{path}: not an image OpenCV can read")
    return np.ascontiguousarray(image[..., ::-1])
