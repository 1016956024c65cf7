"""The video metrics of `retake.eval` given flows of the wrong kind, as a notebook user passes them: each is a
ValueError naming the argument, not an AttributeError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

from retake.eval import compare_flows, flicker, warp_error, warp_errors
from retake.opticalflow import video_flow
from retake.video import read


@pytest.fixture(scope="module")
def frames(shared_videos) -> np.ndarray:
    """4 frames of a real clip at 48x64."""
    return read(shared_videos / "tokenflow_wolf.mp4", size=(48, 64), max_frames=4).frames


def test_warp_error_takes_a_video_flow_and_names_anything_else(frames):
    flow = video_flow(frames)
    assert warp_error(frames, frames, source_flow=flow) == pytest.approx(warp_errors(frames, flow).mean())
    # Its forward array alone is what motion_fidelity takes; here it lacks the valid pixels.
    with pytest.raises(
        ValueError, match=r"source_flow must be a VideoFlow .* got an array of shape \(3, 48, 64, 2\)"
    ):
        warp_error(frames, frames, source_flow=flow.forward)
    with pytest.raises(ValueError, match=r"source_flow must be a VideoFlow .* got NoneType"):
        warp_errors(frames, None)
    with pytest.raises(ValueError, match=r"flow must be a VideoFlow .* got an array"):
        flicker(frames, flow=flow.forward)


def test_compare_flows_takes_array_likes_and_names_other_shapes():
    ones = np.ones((1, 2, 2, 2))
    assert compare_flows(ones.tolist(), ones.tolist()).epe == 0.0  # lists used to be an AttributeError
    with pytest.raises(ValueError, match=r"\(N, H, W, 2\) shape, got \(2, 2, 2\) and \(2, 2, 2\)"):
        compare_flows(ones[0], ones[0])
