"""Temporal flicker: motion-compensated luma warp error of a video along its own flow, and the global
variant."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval.flicker import brightness_flicker, flicker
from retake.opticalflow import video_flow


def alternate_brightness(video: np.ndarray, delta: int) -> np.ndarray:
    out = video.astype(np.int16)
    out[::2] += delta
    return out.clip(0, 255).astype(np.uint8)


def test_alternating_brightness_flickers_far_more_than_a_static_or_moving_clip(moving):
    static = np.repeat(moving[:1], len(moving), axis=0)
    pumped = alternate_brightness(moving.clip(0, 215), 40)
    assert flicker(static) < 0.05
    assert flicker(moving) < 1.0
    assert flicker(pumped) > 30 and flicker(pumped) > 30 * flicker(moving)


def test_motion_is_not_flicker(moving):
    raw = np.abs(np.diff(moving.astype(np.float32), axis=0)).mean()  # what ignoring motion would report
    assert raw > 10 and flicker(moving) < 0.1 * raw


def test_a_precomputed_flow_gives_the_same_value(moving):
    assert flicker(moving, flow=video_flow(moving)) == pytest.approx(flicker(moving))


def test_brightness_flicker_is_the_mean_change_of_mean_luma():
    frames = np.full((5, 8, 8, 3), 100, np.uint8)
    frames[1::2] = 140
    assert brightness_flicker(frames) == pytest.approx(40.0, abs=1e-4)
    assert brightness_flicker(frames[:1].repeat(5, axis=0)) == 0.0


def test_a_single_frame_is_rejected():
    with pytest.raises(ValueError, match="at least 2 frames"):
        flicker(np.zeros((1, 16, 16, 3), np.uint8))
