"""Dense optical flow on numpy videos (OpenCV DIS), backward warping and a forward-backward validity mask.

Conventions (shared by the metrics in `retake.eval` and the curation filters in `retake.data`):
- A video is uint8 (F, H, W, 3) RGB. A flow field is float32 (..., H, W, 2) holding (dx, dy) in pixels of the
  *full-resolution* frame: `flow[t, y, x] = (dx, dy)` says that the content at (x, y) in frame t is found at
  (x + dx, y + dy) in frame t + 1.
- Flow is computed on a grey copy whose longer side is at most `FlowConfig.max_side` (DIS cost grows with
  the area, and downscaled flow is plenty for metrics and filters), then resized back and rescaled to
  full-resolution pixels.
- `warp(image, flow)` is backward warping: `out[y, x] = image[y + dy, x + dx]` (bilinear), so
  `warp(frame[t + 1], flow[t])` reconstructs frame t wherever the pixel is visible in both frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from rich.progress import track

PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# DIS needs a few patch widths (8 px) of image to build its pyramid; smaller grey copies give garbage.
MIN_FLOW_SIDE = 16


@dataclass(frozen=True)
class FlowConfig:
    """How flow is computed. `max_side=None` keeps full resolution. The forward-backward check (Sundaram et
    al. 2010) marks a pixel valid when |f(x) + b(x + f(x))|^2 <= fb_alpha * (|f|^2 + |b(x + f(x))|^2) +
    fb_beta, in full-resolution pixels squared: the relative term tolerates error that grows with speed."""

    preset: str = "medium"
    max_side: int | None = 256
    fb_alpha: float = 0.01
    fb_beta: float = 0.5

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.max_side is not None and self.max_side < MIN_FLOW_SIDE:
            raise ValueError(f"max_side must be None or >= {MIN_FLOW_SIDE}, got {self.max_side}")
        if self.fb_alpha < 0 or self.fb_beta < 0:
            raise ValueError(f"fb_alpha and fb_beta must be >= 0, got {self.fb_alpha} and {self.fb_beta}")


@dataclass(frozen=True)
class VideoFlow:
    """Flows between consecutive frames of one video, with the pixels where they can be trusted.

    forward: (F-1, H, W, 2) flow t -> t+1.  backward: (F-1, H, W, 2) flow t+1 -> t.
    valid: (F-1, H, W) bool, True where the forward flow of frame t passes the forward-backward check and
    lands inside frame t+1 (i.e. not occluded, not leaving the picture).
    """

    forward: np.ndarray
    backward: np.ndarray
    valid: np.ndarray


def check_video(frames: np.ndarray, name: str = "frames", min_frames: int = 1) -> np.ndarray:
    """Return `frames` as a uint8 (F, H, W, 3) array or raise a ValueError naming what is wrong."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB, got dtype {frames.dtype}")
    if frames.shape[0] < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames, got {frames.shape[0]}")
    if 0 in frames.shape[1:3]:
        raise ValueError(f"{name} has an empty picture: shape {frames.shape}")
    return frames


def flow_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) the flow is computed at: the frame scaled so that its longer side is at most `max_side`, or up
    so that its shorter side is MIN_FLOW_SIDE (DIS refuses pictures under 12 px)."""
    if min(height, width) < MIN_FLOW_SIDE:
        scale = MIN_FLOW_SIDE / min(height, width)
        return round(height * scale), round(width * scale)
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(MIN_FLOW_SIDE, round(height * scale)), max(MIN_FLOW_SIDE, round(width * scale))


def grey_frames(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB -> (F, h, w) uint8 luma at `flow_size`: downscaled with area averaging (no
    aliasing), a tiny picture upscaled linearly."""
    frames = check_video(frames)
    h, w = flow_size(frames.shape[1], frames.shape[2], max_side)
    out = np.empty((frames.shape[0], h, w), dtype=np.uint8)
    for i, frame in enumerate(frames):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if grey.shape != (h, w):
            smaller = h < frames.shape[1]
            grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)
        out[i] = grey
    return out


def _to_full_resolution(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 2) flow in grey-copy pixels -> (H, W, 2) flow in full-resolution pixels."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    big = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    big[..., 0] *= width / w
    big[..., 1] *= height / h
    return big


def flow_pairs(
    first: np.ndarray, second: np.ndarray, config: FlowConfig = FlowConfig(), progress: bool = False
) -> np.ndarray:
    """Flow from first[i] to second[i] for every i: (N, H, W, 3) x2 uint8 -> (N, H, W, 2) float32.

    Progress is off by default: these run inside per-clip loops that show their own bar.
    """
    first = check_video(first, "first")
    second = check_video(second, "second")
    if first.shape != second.shape:
        raise ValueError(f"first and second must have the same shape, got {first.shape} and {second.shape}")
    grey_a, grey_b = grey_frames(first, config.max_side), grey_frames(second, config.max_side)
    _, height, width, _ = first.shape
    # One DIS object per call: it is stateful and not safe to share across threads.
    dis = cv2.DISOpticalFlow_create(PRESETS[config.preset])
    out = np.empty((first.shape[0], height, width, 2), dtype=np.float32)
    pairs = range(first.shape[0])
    for i in track(pairs, description="optical flow", transient=True) if progress else pairs:
        out[i] = _to_full_resolution(dis.calc(grey_a[i], grey_b[i], None), height, width)
    return out


def flow_between(frames: np.ndarray, config: FlowConfig = FlowConfig(), progress: bool = False) -> np.ndarray:
    """Forward flows between consecutive frames: (F, H, W, 3) uint8 -> (F-1, H, W, 2) float32, t -> t+1."""
    frames = check_video(frames, min_frames=2)
    return flow_pairs(frames[:-1], frames[1:], config, progress)


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys), each (H, W) float32 pixel coordinates; cached: every pair of a video needs the same."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y), each (H, W) float32, to warp backward along `flow`."""
    xs, ys = _pixel_grid(*flow.shape[:2])
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out[y, x] = image[y + dy, x + dx], bilinear, border pixels replicated.

    image: (H, W) or (H, W, C) uint8/float32; flow: (H, W, 2). Returns the same shape and dtype as `image`.
    Samples that fall outside the image are meaningless; `in_bounds` says which they are.
    """
    image = np.asarray(image)
    if flow.ndim != 3 or flow.shape[-1] != 2 or flow.shape[:2] != image.shape[:2]:
        raise ValueError(f"flow must have shape (H, W, 2) matching image {image.shape[:2]}, got {flow.shape}")
    map_x, map_y = _sample_grid(flow.astype(np.float32, copy=False))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def in_bounds(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow -> (H, W) bool: True where x + flow(x) lies inside the frame."""
    height, width = flow.shape[:2]
    map_x, map_y = _sample_grid(flow.astype(np.float32, copy=False))
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)


def consistency_mask(
    forward: np.ndarray, backward: np.ndarray, alpha: float = 0.01, beta: float = 0.5
) -> np.ndarray:
    """Forward-backward check for one pair of frames: (H, W, 2) x2 -> (H, W) bool, True = valid.

    `forward` maps frame a -> b, `backward` b -> a. Following the forward flow and then the backward flow must
    come back to the start (up to alpha * speed^2 + beta); where it does not, the pixel is occluded in b or
    the flow is wrong. Pixels whose forward flow leaves the frame are invalid too.
    """
    if forward.shape != backward.shape or forward.ndim != 3 or forward.shape[-1] != 2:
        raise ValueError(
            f"forward and backward must both be (H, W, 2), got {forward.shape} and {backward.shape}"
        )
    back_at_target = warp(backward.astype(np.float32, copy=False), forward)  # b(x + f(x)), (H, W, 2)
    # Component-wise: numpy reductions over a length-2 last axis are several times slower.
    fx, fy, bx, by = forward[..., 0], forward[..., 1], back_at_target[..., 0], back_at_target[..., 1]
    round_trip = (fx + bx) ** 2 + (fy + by) ** 2
    speed = fx**2 + fy**2 + bx**2 + by**2
    return (round_trip <= alpha * speed + beta) & in_bounds(forward)


def video_flow(frames: np.ndarray, config: FlowConfig = FlowConfig(), progress: bool = False) -> VideoFlow:
    """Forward and backward flows between consecutive frames and their validity mask (see `VideoFlow`)."""
    frames = check_video(frames, min_frames=2)
    forward = flow_pairs(frames[:-1], frames[1:], config, progress)
    backward = flow_pairs(frames[1:], frames[:-1], config, progress)
    valid = np.stack(
        [
            consistency_mask(f, b, config.fb_alpha, config.fb_beta)
            for f, b in zip(forward, backward, strict=True)
        ]
    )
    return VideoFlow(forward=forward, backward=backward, valid=valid)
