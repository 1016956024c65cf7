"""Files of Flatland: videos through retake.video (H.264 mp4), JSON written byte-stably, masks as PNG strips.

Everything written here is a pure function of its input, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from retake import video
from retake.flatland.render import as_size


def derive_seed(seed: int, index: int) -> int:
    """An independent 32-bit seed for item `index` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def video_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """`as_size` of frames bound for a video file. H.264 with 4:2:0 chroma needs even sides and the writer
    pads an odd one, so the file would be a pixel larger than the masks and sidecars written beside it:
    refused up front, naming the size."""
    height, width = as_size(size)
    if height % 2 or width % 2:
        raise ValueError(
            f"video size must have even sides (H.264 stores 4:2:0 chroma), got {height}x{width} (HxW)"
        )
    return height, width


def check_positive(name: str, value: float) -> None:
    """ValueError naming `name` unless `value` is a finite number > 0 (inf and nan overflow frame counts)."""
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def write_video(frames: np.ndarray, fps: float, path: Path) -> Path:
    """(F, H, W, 3) uint8 frames -> H.264 mp4 at `path`."""
    return video.write(video.Video(frames, fps), path)


def read_video(path: Path) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of an mp4 written by write_video."""
    return video.read(path).frames


def write_json(data: dict, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def write_masks(masks: np.ndarray, path: Path) -> Path:
    """(F, H, W) bool masks -> one lossless PNG strip of the frames side by side, (H, F * W)."""
    frames, height, width = masks.shape
    strip = masks.transpose(1, 0, 2).reshape(height, frames * width)  # (H, F * W)
    ok, data = cv2.imencode(".png", strip.astype(np.uint8) * 255)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ValueError(f"could not encode masks of shape {masks.shape} as PNG")
    path.write_bytes(data.tobytes())
    return path


def read_masks(path: Path, frames: int) -> np.ndarray:
    """(F, H, W) bool masks from a PNG strip written by write_masks."""
    strip = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if strip is None:
        raise FileNotFoundError(f"mask strip not found or unreadable: {path}")
    height, total = strip.shape
    if total % frames:
        raise ValueError(f"{path}: strip width {total} is not a multiple of {frames} frames")
    return strip.reshape(height, frames, total // frames).transpose(1, 0, 2) > 127
