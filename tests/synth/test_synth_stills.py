"""Image triplets: a still and its edit animated along one camera path stay consistent frame by frame, and
the camera moves as drawn (pan: a constant shift; zoom: a changing scale)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synth_helpers import read_triplets

from retake.opticalflow import FlowConfig, flow_between
from retake.synth import stills
from retake.synth.recipes import StillsConfig, get_recipe, with_overrides
from retake.synth.runner import synthesize


def textured_image(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 3.0)
    return (255 * (noise - noise.min()) / np.ptp(noise)).astype(np.uint8)


def path_of(motion: str, seed: int = 0) -> stills.CameraPath:
    config = StillsConfig(frames=9, motions=(motion,))
    return stills.camera_path(120, 160, config, np.random.default_rng(seed))


@pytest.mark.parametrize("motion", ["pan", "zoom"])
def test_the_window_stays_inside_the_image(motion: str) -> None:
    for seed in range(20):
        boxes = path_of(motion, seed).boxes
        assert (boxes[:, 0] >= -1e-9).all() and (boxes[:, 1] >= -1e-9).all()
        assert (boxes[:, 0] + boxes[:, 2] <= 160 + 1e-9).all() and (
            boxes[:, 1] + boxes[:, 3] <= 120 + 1e-9
        ).all()


def test_a_pan_shifts_the_picture_uniformly() -> None:
    path = path_of("pan", seed=3)
    clip = stills.animate(textured_image(), path, (90, 120))  # window 90x120 at scale 1: no resampling blur
    flow = flow_between(clip, FlowConfig(max_side=None))  # (F-1, H, W, 2)
    step = np.diff(path.boxes[:, :2], axis=0)  # window moves by +d: content moves by -d
    inner = flow[:, 10:-10, 10:-10]
    np.testing.assert_allclose(np.median(inner, axis=(1, 2)), -step, atol=0.3)


def test_a_zoom_changes_the_scale_and_keeps_the_centre() -> None:
    path = path_of("zoom", seed=1)
    widths = path.boxes[:, 2]
    assert abs(widths.max() / widths.min() - 1.25) < 1e-6  # the configured zoom factor
    centres = path.boxes[:, :2] + path.boxes[:, 2:] / 2
    assert np.ptp(centres, axis=0).max() < 1e-6


def test_the_image_and_its_edit_move_identically() -> None:
    image = textured_image()
    edited = image.copy()
    edited[40:80, 60:100] = (255, 0, 0)  # an edit of part of the picture
    path = path_of("pan", seed=2)
    source, target = stills.animate_pair(image, edited, path, (90, 120))
    changed = np.abs(target.astype(int) - source).max(axis=-1) > 0  # (F, H, W)
    for t in range(len(source)):
        x0, y0 = path.boxes[t, :2]
        expected = np.zeros((90, 120), bool)
        expected[round(40 - y0) : round(80 - y0), round(60 - x0) : round(100 - x0)] = True
        assert (changed[t] ^ expected).mean() < 0.03  # the edit sits where the camera puts it, nowhere else


def test_still_inputs_become_triplets(tmp_path: Path) -> None:
    folder = tmp_path / "stills"
    (folder / "edits" / "cat").mkdir(parents=True)
    image = textured_image(96, 128)
    cv2.imwrite(str(folder / "cat.png"), image[..., ::-1])
    edited = image.copy()
    edited[30:60, 40:80] = (0, 0, 255)
    cv2.imwrite(str(folder / "edits" / "cat" / "make_a_blue_box.png"), edited[..., ::-1])
    config = with_overrides(
        get_recipe("insvie"),
        {
            "editor.path": str(folder / "edits"),
            "selection.name": "none",
            "stills.frames": 9,
            "source.short_side": 64,
        },
    )
    synthesize(folder / "cat.png", tmp_path / "out", config, workers=1, progress=False)
    (row, source, target), *_ = read_triplets(tmp_path / "out").values()
    assert row["kind"] == "image" and row["instruction"] == "Make a blue box." and row["status"] == "ok"
    assert source.shape == target.shape == (9, 64, 84, 3)  # the window's 0.75 crop, short side 64
    blue = (target[..., 2].astype(int) - target[..., 0]) > 100
    assert (blue.mean(axis=(1, 2)) > 0.05).all() and (
        (source[..., 2].astype(int) - source[..., 0]) > 100
    ).mean() < 0.01
