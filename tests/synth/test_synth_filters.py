"""The first filter (sources: sharpness, exposure, motion) and the second filter (edited clips: blur,
exposure, artefact frames, motion that does not follow the source's), each threshold probed."""

from __future__ import annotations

import cv2
import numpy as np
from synth_helpers import sliding_clip

from retake.eval.warp_error import mean_or_nan, warp_errors
from retake.opticalflow import FlowConfig, video_flow
from retake.synth.filters import edit_metrics, edit_reason, frame_metrics, motion_metric, source_reason
from retake.synth.recipes import QualityConfig, SourceConfig

SOURCE = SourceConfig()
QUALITY = QualityConfig()
FLOW = FlowConfig(preset="fast", max_side=128)


def _source_verdict(clip: np.ndarray) -> str | None:
    metrics = frame_metrics(clip) | {"motion": motion_metric(clip, SOURCE.flow_max_side)}
    verdict = source_reason(metrics, SOURCE, still=False)
    return None if verdict is None else verdict[0]


def test_the_first_filter_keeps_a_good_source_and_names_bad_ones() -> None:
    clip = sliding_clip()
    assert _source_verdict(clip) is None
    assert _source_verdict(np.stack([cv2.GaussianBlur(f, (0, 0), 6) for f in clip])) == "blurry"
    assert _source_verdict((clip * 0.05).astype(np.uint8)) == "exposure"
    assert _source_verdict(np.repeat(clip[:1], len(clip), axis=0)) is None  # min_motion 0 keeps still shots
    strict = SourceConfig(min_motion=0.005)
    still = np.repeat(clip[:1], len(clip), axis=0)
    metrics = frame_metrics(still) | {"motion": motion_metric(still, 128)}
    assert source_reason(metrics, strict, still=False)[0] == "low_motion"
    fast = np.stack([np.roll(clip[0], 8 * t, axis=1) for t in range(len(clip))])  # 8 px of a 160 px diagonal
    metrics = frame_metrics(fast) | {"motion": motion_metric(fast, 128)}
    assert metrics["motion"] > 0.03
    assert source_reason(metrics, SourceConfig(max_motion=0.03), still=False)[0] == "high_motion"


def _edit_verdict(source: np.ndarray, edited: np.ndarray) -> str | None:
    flow = video_flow(source, FLOW)
    own = mean_or_nan(warp_errors(source, flow))
    metrics = edit_metrics(source, edited, flow, frame_metrics(source), own, FLOW)
    verdict = edit_reason(metrics, QUALITY)
    return None if verdict is None else verdict[0]


def test_the_second_filter_keeps_an_edit_that_moves_with_the_source() -> None:
    source = sliding_clip()
    tinted = np.clip(source.astype(int) + np.array([30, -20, 0]), 0, 255).astype(np.uint8)
    assert _edit_verdict(source, tinted) is None


def test_the_second_filter_names_what_is_wrong() -> None:
    source = sliding_clip()
    assert _edit_verdict(source, np.repeat(source[:1], len(source), axis=0)) in {
        "warp_error",
        "motion_mismatch",
    }
    assert _edit_verdict(source, np.stack([cv2.GaussianBlur(f, (0, 0), 5) for f in source])) == "blurry"
    assert _edit_verdict(source, np.full_like(source, 252)) == "exposure"
    glitch = source.copy()
    glitch[5] = np.random.default_rng(0).integers(0, 255, glitch[5].shape)
    assert _edit_verdict(source, glitch) in {"artefact_frame", "warp_error"}
    backwards = source[::-1].copy()
    backwards[0] = source[0]
    assert _edit_verdict(source, backwards) in {"motion_mismatch", "warp_error"}
