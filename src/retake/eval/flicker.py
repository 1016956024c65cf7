"""Temporal flicker of one video.

`flicker` (the main measure) is motion-compensated: the warp error of the video along its *own* optical flow,
on luma (0-255),

    flicker = mean over pairs t of  mean over valid x of |Y_t(x) - Y_{t+1}(x + f_t(x))|

so motion does not count as flicker but brightness or texture that changes from frame to frame does. Valid
pixels pass the forward-backward check (see `retake.opticalflow`). Its floor is not zero: interpolation and
flow error leave about a grey level or two on real footage, so compare against the source's own flicker.

`brightness_flicker` is the cheap global variant: mean |m_{t+1} - m_t| of the per-frame mean luma. It needs no
flow and ignores local flicker, but catches exposure pumping.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retake.eval._inputs import as_video, luma
from retake.eval.warp_error import compensated_errors, mean_or_nan
from retake.opticalflow import FlowConfig, VideoFlow, video_flow


def flicker(video: Any, config: FlowConfig = FlowConfig(), flow: VideoFlow | None = None) -> float:
    """Motion-compensated luma flicker of a uint8 (F, H, W, 3) video, F >= 2 (`flow`: its own, if
    computed)."""
    video = as_video(video, "video", min_frames=2)
    flow = flow if flow is not None else video_flow(video, config)
    return mean_or_nan(compensated_errors(luma(video), flow))


def brightness_flicker(video: Any) -> float:
    """Mean absolute change of the global mean luma between consecutive frames (0-255), F >= 2."""
    video = as_video(video, "video", min_frames=2)
    means = luma(video).mean(axis=(1, 2))  # (F,)
    return float(np.abs(np.diff(means)).mean())
