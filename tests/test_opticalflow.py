"""Optical flow on numpy videos: DIS flow in full-resolution pixels, backward warping, forward-backward
check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retake.opticalflow import (
    FlowConfig,
    consistency_mask,
    flow_between,
    flow_pairs,
    flow_size,
    in_bounds,
    video_flow,
    warp,
)


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (blurred noise stretched to 0-255): DIS needs gradients everywhere."""
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).astype(np.uint8)


def translating(frames: int, height: int, width: int, dx: int, dy: int) -> np.ndarray:
    """Crops of one big texture whose content moves by (dx, dy) pixels per frame: (F, H, W, 3)."""
    pad_x, pad_y = abs(dx) * frames, abs(dy) * frames
    canvas = texture(height + pad_y, width + pad_x)
    x0 = [pad_x - t * dx if dx > 0 else -t * dx for t in range(frames)]
    y0 = [pad_y - t * dy if dy > 0 else -t * dy for t in range(frames)]
    return np.stack([canvas[y : y + height, x : x + width] for x, y in zip(x0, y0, strict=True)])


def interior(a: np.ndarray, margin: int = 8) -> np.ndarray:
    return a[..., margin:-margin, margin:-margin, :]


def test_flow_between_recovers_a_translation_on_non_square_frames():
    video = translating(5, 48, 80, dx=3, dy=-2)
    flow = flow_between(video, FlowConfig(max_side=None))
    assert flow.shape == (4, 48, 80, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(interior(flow).reshape(-1, 2).mean(0), [3.0, -2.0], atol=0.05)
    assert np.median(np.abs(interior(flow) - [3.0, -2.0])) < 0.1


def test_flow_on_a_downscaled_copy_comes_back_in_full_resolution_pixels():
    assert flow_size(128, 192, 64) == (43, 64)
    assert flow_size(40, 30, 64) == (40, 30)
    video = translating(3, 128, 192, dx=4, dy=2)
    flow = flow_between(video, FlowConfig(max_side=64))
    assert flow.shape == (2, 128, 192, 2)
    np.testing.assert_allclose(interior(flow, 16).reshape(-1, 2).mean(0), [4.0, 2.0], atol=0.2)


def test_flow_on_tiny_frames_is_computed_on_an_upscaled_copy():
    assert flow_size(8, 12, 256) == (16, 24)
    video = translating(3, 8, 12, dx=1, dy=0)  # DIS itself refuses pictures under 12 px
    flow = flow_between(video, FlowConfig())
    assert flow.shape == (2, 8, 12, 2)
    assert np.median(flow[..., 0]) == pytest.approx(1.0, abs=0.3)  # in the tiny frames' own pixels


def test_flow_pairs_backward_is_the_negated_forward_flow():
    video = translating(3, 64, 64, dx=2, dy=1)
    backward = flow_pairs(video[1:], video[:-1], FlowConfig(max_side=None))
    np.testing.assert_allclose(interior(backward).reshape(-1, 2).mean(0), [-2.0, -1.0], atol=0.05)


def test_warp_with_a_constant_integer_flow_is_an_exact_shift():
    image = texture(20, 30)
    assert np.array_equal(warp(image, np.zeros((20, 30, 2), np.float32)), image)
    flow = np.broadcast_to(np.array([2.0, -1.0], np.float32), (20, 30, 2))
    out = warp(image, flow)  # out[y, x] = image[y - 1, x + 2]
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[1:, :-2], image[:-1, 2:])


def test_warping_the_next_frame_along_the_forward_flow_reconstructs_the_frame():
    video = translating(2, 64, 64, dx=3, dy=1)
    flow = flow_between(video)[0]
    rebuilt = warp(video[1].astype(np.float32), flow)
    before = np.abs(interior(video[1].astype(np.float32) - video[0])).mean()
    after = np.abs(interior(rebuilt - video[0])).mean()
    assert before > 10 and after < 1.0


def test_in_bounds_marks_samples_that_leave_the_frame():
    flow = np.zeros((6, 10, 2), np.float32)
    flow[..., 0] = 2.0
    inside = in_bounds(flow)
    assert inside[:, :8].all() and not inside[:, 8:].any()


def test_consistency_mask_accepts_opposite_flows_and_rejects_equal_ones():
    forward = np.broadcast_to(np.array([2.0, 1.0], np.float32), (12, 16, 2)).copy()
    valid = consistency_mask(forward, -forward)
    assert valid[:-1, :-2].all() and not valid[-1:].any() and not valid[:, -2:].any()  # rest leaves the frame
    assert not consistency_mask(forward, forward).any()
    # A round trip off by 0.5 px (0.25 px^2) passes under beta = 0.5 but not with no tolerance at all.
    near = -forward + np.array([0.5, 0.0], np.float32)
    assert consistency_mask(forward, near)[:-1, :-2].all()
    assert not consistency_mask(forward, near, alpha=0.0, beta=0.0).any()


def test_consistency_mask_flags_exactly_the_background_an_object_covers():
    # A 4-px-wide object moves 3 px right over a static background: columns 10..12 of the background are
    # covered in the next frame, so their (zero) forward flow meets the object's backward flow there.
    forward = np.zeros((8, 20, 2), np.float32)
    forward[:, 6:10, 0] = 3.0  # object at columns 6..9 in frame t
    backward = np.zeros_like(forward)
    backward[:, 9:13, 0] = -3.0  # object at columns 9..12 in frame t+1
    valid = consistency_mask(forward, backward)
    expected = np.ones((8, 20), bool)
    expected[:, 10:13] = False
    assert np.array_equal(valid, expected)


def test_video_flow_finds_occlusions_in_front_of_a_moving_object():
    background, thing = texture(64, 64, seed=0), texture(16, 16, seed=5)
    frames = []
    for t in range(4):
        frame = background.copy()
        frame[24:40, 10 + 4 * t : 26 + 4 * t] = thing
        frames.append(frame)
    flow = video_flow(np.stack(frames), FlowConfig(max_side=None))
    assert flow.forward.shape == flow.backward.shape == (3, 64, 64, 2) and flow.valid.shape == (3, 64, 64)
    # Background the object covers between frames t and t+1 (DIS blurs motion edges, so only part of it is
    # caught; the closed-form test above checks the rule itself).
    covered = np.mean([flow.valid[t, 26:38, 26 + 4 * t : 30 + 4 * t].mean() for t in range(3)])
    far = flow.valid[:, :20].mean()
    assert covered < 0.8 and far > 0.9


def test_config_and_inputs_are_validated():
    with pytest.raises(ValueError, match="slowest"):
        FlowConfig(preset="slowest")
    with pytest.raises(ValueError, match="max_side"):
        FlowConfig(max_side=4)
    with pytest.raises(ValueError, match="at least 2 frames"):
        flow_between(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        flow_between(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        warp(np.zeros((8, 8), np.uint8), np.zeros((8, 9, 2), np.float32))


def read_frames(path: Path, count: int) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frames = [
            f.to_ndarray(format="rgb24")
            for _, f in zip(range(count), container.decode(video=0), strict=False)
        ]
    return np.stack(frames)


def test_flow_on_a_real_clip_explains_the_frame_changes(shared_videos: Path):
    video = read_frames(shared_videos / "tokenflow_wolf.mp4", 6)  # (6, 512, 512, 3)
    flow = video_flow(video)
    assert np.isfinite(flow.forward).all() and flow.valid.mean() > 0.5
    raw, warped = [], []
    for t in range(5):
        valid = flow.valid[t]
        warped.append(np.abs(warp(video[t + 1].astype(np.float32), flow.forward[t]) - video[t])[valid].mean())
        raw.append(np.abs(video[t + 1].astype(np.float32) - video[t])[valid].mean())
    assert np.mean(warped) < 0.7 * np.mean(raw)
