"""Image triplets: a still image and its edit animated along the same synthetic camera path.

The camera is a window (the output's aspect ratio) moving over the image: a straight pan, or a zoom in or
out about a point. The whole image moves as one plane (parallax-free), and the image and its edit go through
the very same window positions, so the edited clip matches the source clip frame for frame by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retake.checks import as_generator
from retake.synth.recipes import StillsConfig
from retake.synth.sources import output_size
from retake.video import resize_cover_crop


@dataclass(frozen=True)
class CameraPath:
    """Window per frame in image pixels: boxes (F, 4) = (x0, y0, width, height), floats."""

    motion: str
    boxes: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.boxes)


def camera_path(height: int, width: int, config: StillsConfig, rng: np.random.Generator) -> CameraPath:
    """A random pan or zoom over an (height, width) image, fully inside it. `rng` may also be a seed."""
    rng = as_generator("rng", rng)
    motion = str(config.motions[int(rng.integers(len(config.motions)))])
    t = np.linspace(0.0, 1.0, config.frames)[:, None]  # (F, 1)
    if motion == "pan":
        box_w, box_h = width * config.crop, height * config.crop
        room = np.array([width - box_w, height - box_h])  # how far the window can travel, x and y
        angle = rng.uniform(0, 2 * np.pi)
        step = np.array([np.cos(angle), np.sin(angle)]) * config.pan * min(height, width)
        step = np.clip(step, -room, room)
        start = rng.uniform(np.maximum(0, -step), np.minimum(room, room - step))  # both ends inside
        corners = start[None] + t * step[None]  # (F, 2)
        sizes = np.tile([box_w, box_h], (config.frames, 1))
    else:  # zoom in (or out, half the time) about a random centre that keeps every window inside
        scale = np.exp(np.log(1.0 / config.zoom) * t[:, 0])  # window side relative to the widest one
        if rng.random() < 0.5:
            scale = scale[::-1]
        sizes = np.stack([width * config.crop * scale, height * config.crop * scale], axis=1)
        widest = sizes.max(axis=0)
        centre = rng.uniform(widest / 2, np.array([width, height]) - widest / 2)
        corners = centre[None] - sizes / 2
    return CameraPath(motion, np.concatenate([corners, sizes], axis=1).astype(np.float64))


def animate(image: np.ndarray, path: CameraPath, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 image -> (F, h, w, 3) uint8 clip of the window along `path`, at `size` = (h, w)."""
    out_h, out_w = size
    frames = np.empty((path.num_frames, out_h, out_w, 3), dtype=np.uint8)
    largest = float(path.boxes[:, 2].max()) / out_w
    # Shrinking by more than ~1.5x with bilinear sampling aliases: pre-blur once to the largest shrink.
    source = cv2.GaussianBlur(image, (0, 0), 0.5 * largest) if largest > 1.5 else image
    for i, (x0, y0, box_w, box_h) in enumerate(path.boxes):
        sx, sy = box_w / out_w, box_h / out_h
        # Output pixel centre (u + 0.5) maps to image point x0 + (u + 0.5) * sx (pixel centres at +0.5).
        affine = np.array([[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5]])
        frames[i] = cv2.warpAffine(
            source,
            affine,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
    return frames


def still_clip_size(height: int, width: int, config: StillsConfig, short_side: int) -> tuple[int, int]:
    """Output (h, w) of a still's clip: the window's aspect ratio, short side at most `short_side`."""
    return output_size(max(2, round(height * config.crop)), max(2, round(width * config.crop)), short_side)


def animate_pair(
    still: np.ndarray, edited: np.ndarray, path: CameraPath, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(source clip, edited clip) along the same path; the edit is brought to the still's size first."""
    if edited.shape[:2] != still.shape[:2]:
        edited = resize_cover_crop(edited[None], still.shape[:2])[0]
    return animate(still, path, size), animate(edited, path, size)
