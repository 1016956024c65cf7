"""Warp error: does the edited video move the way the source moves?

The source's optical flow is the motion ground truth. For each pair (t, t+1), edited frame t+1 is warped back
to t along the source's forward flow t -> t+1 and compared with edited frame t:

    e_t = mean over valid pixels x of  mean_c |E_t(x, c) - E_{t+1}(x + f_t(x), c)|
    warp_error = mean over pairs t of e_t

in RGB intensity units (0-255), where valid = the source flow passes the forward-backward check and stays in
the frame (occluded and disoccluded pixels have no correspondence). Pairs with no valid pixel are skipped; the
result is NaN when every pair is. An edit that follows the source's motion scores near the source's own warp
error; shuffled or frozen frames score high. (Lai et al. 2018 use the same masked warp, with squared error.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retake.eval._inputs import as_video, same_shape
from retake.opticalflow import FlowConfig, VideoFlow, video_flow, warp


def compensated_errors(values: np.ndarray, flow: VideoFlow) -> np.ndarray:
    """Per-pair masked warp error of an (F, H, W) or (F, H, W, C) stack under `flow`: (F-1,) float64.

    Frames are converted to float32 one at a time (warping uint8 would round the interpolated values).
    """
    check_flow(flow, "flow")
    if values.shape[0] - 1 != flow.forward.shape[0] or values.shape[1:3] != flow.forward.shape[1:3]:
        raise ValueError(
            f"flow of shape {flow.forward.shape} does not fit frames of shape {values.shape} "
            "(need F-1 flows of the same height and width)"
        )
    errors = np.full(values.shape[0] - 1, np.nan)
    for t, (forward, valid) in enumerate(zip(flow.forward, flow.valid, strict=True)):
        if not valid.any():
            continue
        target, moved = values[t].astype(np.float32), values[t + 1].astype(np.float32)
        diff = np.abs(target - warp(moved, forward))  # (H, W) or (H, W, C)
        errors[t] = diff[valid].mean()  # every valid pixel brings all its channels: the per-pixel mean's mean
    return errors


def check_flow(flow: object, name: str) -> None:
    """ValueError naming `name` unless `flow` is a `VideoFlow`: its (F-1, H, W, 2) forward array alone (what
    `motion_fidelity` takes) lacks the valid pixels, and would fail as an AttributeError."""
    if not isinstance(flow, VideoFlow):
        got = f"an array of shape {flow.shape}" if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(
            f"{name} must be a VideoFlow (retake.opticalflow.video_flow(source): forward and backward flows "
            f"and where they are valid), got {got}"
        )


def mean_or_nan(values: np.ndarray) -> float:
    """Mean of the finite entries, NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def warp_errors(edited: Any, source_flow: VideoFlow) -> np.ndarray:
    """Per-pair warp errors (F-1,) float64 of an edited uint8 (F, H, W, 3) video under the source's flow (a
    `VideoFlow` of the same F, H and W); NaN for a pair without valid pixels."""
    edited = as_video(edited, "edited", min_frames=2)
    check_flow(source_flow, "source_flow")
    return compensated_errors(edited, source_flow)


def warp_error(
    source: Any, edited: Any, config: FlowConfig = FlowConfig(), source_flow: VideoFlow | None = None
) -> float:
    """Warp error of `edited` along the motion of `source` (both uint8 (F, H, W, 3)); see the module
    docstring.

    Pass `source_flow` (a `VideoFlow` from `retake.opticalflow.video_flow(source)`) to reuse flow computed
    elsewhere. Returns the mean error in RGB levels (0-255), NaN when no pixel pair is valid.
    """
    source, edited = as_video(source, "source", min_frames=2), as_video(edited, "edited", min_frames=2)
    same_shape(source, edited, ("source", "edited"))
    flow = source_flow if source_flow is not None else video_flow(source, config)
    return mean_or_nan(warp_errors(edited, flow))
