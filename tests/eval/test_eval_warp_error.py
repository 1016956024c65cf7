"""Warp error: the edit warped along the source's flow, over non-occluded pixels."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval.warp_error import warp_error, warp_errors
from retake.opticalflow import VideoFlow, video_flow


def test_a_translated_pattern_has_low_error_and_shuffled_frames_high(moving):
    shuffled = moving[np.random.default_rng(0).permutation(len(moving))]
    low, high = warp_error(moving, moving), warp_error(moving, shuffled)
    assert low < 1.0 and high > 10 and high > 20 * low


def test_an_appearance_change_that_follows_the_motion_stays_low(moving):
    recoloured = moving[..., ::-1].copy()  # swap red and blue: different look, same motion
    assert warp_error(moving, recoloured) < 1.0


def test_an_edit_frozen_on_the_first_frame_does_not_follow_the_source(moving):
    frozen = np.repeat(moving[:1], len(moving), axis=0)
    assert warp_error(moving, frozen) > 10 * warp_error(moving, moving)


def test_per_pair_errors_and_flow_reuse(moving):
    flow = video_flow(moving)
    per_pair = warp_errors(moving, flow)
    assert per_pair.shape == (len(moving) - 1,)
    assert warp_error(moving, moving, source_flow=flow) == pytest.approx(per_pair.mean())


def test_pairs_without_valid_pixels_are_skipped_and_all_invalid_is_nan(moving):
    flow = video_flow(moving)
    valid = flow.valid.copy()
    valid[0] = False
    per_pair = warp_errors(moving, VideoFlow(flow.forward, flow.backward, valid))
    assert np.isnan(per_pair[0]) and np.isfinite(per_pair[1:]).all()
    nothing = VideoFlow(flow.forward, flow.backward, np.zeros_like(valid))
    assert np.isnan(warp_error(moving, moving, source_flow=nothing))


def test_a_flow_of_the_wrong_size_is_rejected(moving):
    flow = video_flow(moving[:5])
    with pytest.raises(ValueError, match="does not fit"):
        warp_errors(moving, flow)
