"""Motion fidelity: the optical flow of the edit against the optical flow of the source.

Over the pixels where the source moves (|f_src| >= min_motion full-resolution pixels per frame), pooled over
all frame pairs:
    epe           mean |f_edit - f_src|                         (px per frame; 0 = identical motion)
    relative_epe  epe / mean |f_src|                            (0 = identical, ~1 = frozen edit)
    cosine        mean f_edit . f_src / (|f_edit| |f_src|)      (1 = same directions, 0 for a frozen edit,
                                                                 a vector of length ~0 counts as 0)
    moving_fraction  share of pixels where the source moves.
All but moving_fraction are NaN when the source does not move anywhere (fidelity to "no motion" is better read
from the edit's own flicker and warp error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from retake.checks import check_finite
from retake.eval._inputs import as_video, same_shape
from retake.opticalflow import FlowConfig, flow_between

MIN_MOTION_PX = 0.5
_TINY = 1e-6  # below this a flow vector has no direction


@dataclass(frozen=True)
class MotionFidelity:
    epe: float
    relative_epe: float
    cosine: float
    moving_fraction: float


def compare_flows(
    source_flow: np.ndarray, edited_flow: np.ndarray, min_motion: float = MIN_MOTION_PX
) -> MotionFidelity:
    """Compare two (N, H, W, 2) float flow stacks, the source's first (see the module docstring)."""
    source_flow, edited_flow = np.asarray(source_flow), np.asarray(edited_flow)  # lists have no .shape
    if source_flow.shape != edited_flow.shape or source_flow.ndim != 4 or source_flow.shape[-1] != 2:
        raise ValueError(
            f"flows must have the same (N, H, W, 2) shape, got {source_flow.shape} and {edited_flow.shape}"
        )
    check_finite("min_motion", min_motion, above=0)
    # Component-wise float32 arithmetic: flow stacks of long full-HD clips are hundreds of MB.
    sx, sy, ex, ey = source_flow[..., 0], source_flow[..., 1], edited_flow[..., 0], edited_flow[..., 1]
    speed = np.hypot(sx, sy)  # (N, H, W)
    moving = speed >= min_motion
    count = int(np.count_nonzero(moving))
    if count == 0:
        nan = float("nan")
        return MotionFidelity(epe=nan, relative_epe=nan, cosine=nan, moving_fraction=0.0)
    norms = speed * np.hypot(ex, ey)
    cosine = np.where(norms > _TINY, (sx * ex + sy * ey) / np.maximum(norms, _TINY), 0.0)
    cosine = np.clip(cosine, -1.0, 1.0)  # float32 rounding can step just past 1
    epe = _masked_mean(np.hypot(ex - sx, ey - sy), moving, count)
    return MotionFidelity(
        epe=epe,
        relative_epe=epe / _masked_mean(speed, moving, count),
        cosine=_masked_mean(cosine, moving, count),
        moving_fraction=count / moving.size,
    )


def _masked_mean(values: np.ndarray, mask: np.ndarray, count: int) -> float:
    return float(np.sum(values, where=mask, dtype=np.float64) / count)


def motion_fidelity(
    source: Any,
    edited: Any,
    config: FlowConfig = FlowConfig(),
    min_motion: float = MIN_MOTION_PX,
    source_flow: np.ndarray | None = None,
    edited_flow: np.ndarray | None = None,
) -> MotionFidelity:
    """Motion fidelity of `edited` to `source` (uint8 (F, H, W, 3), F >= 2). Precomputed forward flows
    ((F-1, H, W, 2), e.g. `VideoFlow.forward`) may be passed to avoid computing them again."""
    source, edited = as_video(source, "source", min_frames=2), as_video(edited, "edited", min_frames=2)
    same_shape(source, edited, ("source", "edited"))
    expected = (len(source) - 1, *source.shape[1:3], 2)
    for name, flow in (("source_flow", source_flow), ("edited_flow", edited_flow)):
        if flow is not None and tuple(np.shape(flow)) != expected:
            raise ValueError(f"{name} must have shape (F-1, H, W, 2) = {expected}, got {np.shape(flow)}")
    source_flow = source_flow if source_flow is not None else flow_between(source, config)
    edited_flow = edited_flow if edited_flow is not None else flow_between(edited, config)
    return compare_flows(source_flow, edited_flow, min_motion)
