"""The flow propagator on synthetic clips whose motion is known: a textured background sliding at a constant
speed, an edit painted on frame 0 must slide with it, unedited pixels must stay the source's own, and
pixels that come into view later get no edit."""

from __future__ import annotations

import numpy as np
import pytest
from synth_helpers import SIZE, SPEED, sliding_clip

from retake.opticalflow import FlowConfig
from retake.synth.propagate.flow import correspond, propagate_flow, repeat_first
from retake.synth.recipes import PropagationConfig


def paint_square(frame: np.ndarray, x: int, y: int, side: int = 16) -> np.ndarray:
    out = frame.copy()
    out[y : y + side, x : x + side] = (255, 0, 0)
    return out


def test_the_correspondence_follows_the_motion() -> None:
    clip = sliding_clip()
    maps = correspond(clip, FlowConfig())
    t = len(clip) - 1
    inner = (slice(16, -16), slice(40, -16))  # away from the borders and the wrap-around seam
    dx = maps.coords[t, ..., 0][inner] - np.arange(SIZE[1])[inner[1]]
    assert np.median(dx) == pytest.approx(-SPEED * t, abs=0.5)  # frame t pixel x was at x - 3t in frame 0
    assert maps.tracked[t][inner].mean() > 0.9
    assert maps.tracked[t][:, : SPEED * t - 2].mean() < 0.5  # what slid in from the left edge has no past


def test_an_edit_moves_with_the_content_and_the_rest_stays_the_source() -> None:
    clip = sliding_clip()
    edited = paint_square(clip[0], x=40, y=40)
    result = propagate_flow(clip, edited, PropagationConfig())
    assert np.array_equal(result.video[0], edited)
    for t in (4, 8):
        expected = paint_square(clip[t], x=40 + SPEED * t, y=40)
        square = (slice(44, 52), slice(44 + SPEED * t, 52 + SPEED * t))  # the square's core at frame t
        assert np.abs(result.video[t][square].astype(int) - (255, 0, 0)).max() < 40
        away = np.ones(SIZE, bool)
        away[30:70, 30 + SPEED * t : 70 + SPEED * t] = False
        diff = np.abs(result.video[t].astype(int) - expected)[away]
        assert diff.mean() < 1.5  # the unedited rest is the source's frame t
    naive = repeat_first(clip, edited)
    assert (
        np.abs(naive[8].astype(int) - paint_square(clip[8], 40 + 24, 40)).mean()
        > 10 * np.abs(result.video[8].astype(int) - paint_square(clip[8], 40 + 24, 40)).mean()
    )


def test_a_global_edit_is_carried_as_texture_and_colour() -> None:
    clip = sliding_clip()
    edited = 255 - clip[0]  # every pixel edited
    result = propagate_flow(clip, edited, PropagationConfig())
    inner = (slice(16, -16), slice(48, -16))
    assert np.abs(result.video[8][inner].astype(int) - (255 - clip[8])[inner]).mean() < 6


def test_pixels_without_a_past_get_no_edit() -> None:
    clip = sliding_clip()
    edited = clip[0].copy()
    edited[:, :24] = (0, 255, 0)  # an edit at the left edge: it slides right; new content enters behind it
    result = propagate_flow(clip, edited, PropagationConfig(fill_sigma=2.0))
    entered = (slice(8, -8), slice(0, SPEED * 8 - 8))  # slid into view after frame 0, far from the edit
    assert np.abs(result.video[8][entered].astype(int) - clip[8][entered]).mean() < 3


def test_bad_inputs_are_named() -> None:
    clip = sliding_clip(frames=3)
    with pytest.raises(ValueError, match="edited_first"):
        propagate_flow(clip, clip[0, :10])
