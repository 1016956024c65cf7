"""How well a propagated edit follows its source: the warp error of the edited clip along the source's motion,
and its PSNR against the source outside the edited region.

The edited region of frame t is the frame-0 edit (pixels the edited first frame changed by more than
`threshold` grey levels, after a 2 px blur and an opening that drops specks, grown by `grow` px) carried
along the source's flow, plus every pixel without a trusted correspondence to frame 0 (whether
it should be edited is unknown, so it is scored neither way). Every method is scored on the same region,
which depends on the source and the edited first frame only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retake.eval.psnr import psnr
from retake.eval.warp_error import mean_or_nan, warp_errors
from retake.opticalflow import FlowConfig, VideoFlow, video_flow
from retake.synth.propagate.flow import correspond


@dataclass(frozen=True)
class PropagationScore:
    warp_error: float  # mean |E_t - warp(E_{t+1})| along the source's flow, grey levels
    psnr_outside: float  # dB against the source outside the edited region; NaN for a global edit
    outside_share: float  # share of pixels (all frames) the PSNR is taken over


def edit_region(
    source: np.ndarray,
    edited_first: np.ndarray,
    *,
    flow: FlowConfig = FlowConfig(),
    threshold: float = 30.0,
    grow: int = 4,
) -> np.ndarray:
    """(F, H, W) bool: the frame-0 edit carried along the source's motion, plus untracked pixels.

    Image editors also shift colours a little everywhere; `threshold` keeps that drift out of the region, so
    it is scored (against the source) like any unedited pixel."""
    maps = correspond(source, flow)
    diff = np.abs(edited_first.astype(np.float32) - source[0].astype(np.float32)).max(axis=-1)
    first = (cv2.GaussianBlur(diff, (0, 0), 2.0) > threshold).astype(np.uint8)
    first = cv2.morphologyEx(first, cv2.MORPH_OPEN, _disc(1))
    if grow:
        first = cv2.dilate(first, _disc(grow))
    region = np.empty(source.shape[:3], bool)
    for t, (coords, tracked) in enumerate(zip(maps.coords, maps.tracked, strict=True)):
        carried = cv2.remap(
            first.astype(np.float32),
            coords[..., 0],
            coords[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        region[t] = (carried > 0.01) | ~tracked
    return region


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def score_propagation(
    source: np.ndarray, video: np.ndarray, region: np.ndarray, source_flow: VideoFlow | None = None
) -> PropagationScore:
    """Score an edited clip `video` against `source` (both (F, H, W, 3) uint8) given the edited `region`."""
    flow = source_flow if source_flow is not None else video_flow(source)
    outside = ~region
    share = float(outside.mean())
    return PropagationScore(
        warp_error=mean_or_nan(warp_errors(video, flow)),
        psnr_outside=psnr(source, video, where=outside) if outside.any() else float("nan"),
        outside_share=share,
    )
