"""The renderer: any size (non-square too), anti-aliased shapes, camera pan/zoom, backgrounds and styles."""

from __future__ import annotations

import numpy as np
import pytest

from retake.flatland import shapes
from retake.flatland.palette import BACKGROUND_COLOURS, OBJECT_COLOURS, PATTERNS, SHAPES, SIZES
from retake.flatland.render import as_size, render
from retake.flatland.scene import Background, Camera, Scene, SceneObject
from retake.flatland.style import apply_style


def one_object(shape: str = "circle", colour: str = "red", camera: Camera | None = None, **kw) -> Scene:
    obj = SceneObject(0, shape, colour, "large", **kw)
    return Scene(Background("solid", "gray"), (obj,), camera or Camera())


def colour_share(frame: np.ndarray, colour: str) -> np.ndarray:
    """(H, W) coverage of a colour over the gray background, estimated per pixel from the red channel."""
    gray, value = BACKGROUND_COLOURS["gray"][0], OBJECT_COLOURS[colour][0]
    return (frame[..., 0].astype(np.float32) - gray) / (value - gray)


@pytest.mark.parametrize("size", [(64, 64), (48, 96), (96, 40), (17, 33)])
def test_any_size_keeps_shapes_round_and_centred(size: tuple[int, int]) -> None:
    frames = render(one_object(), 2, size).frames
    assert frames.shape == (2, *size, 3) and frames.dtype == np.uint8
    share = colour_share(frames[0], "red")
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    cy, cx = (share * (ys + 0.5)).sum() / share.sum(), (share * (xs + 0.5)).sum() / share.sum()
    assert abs(cx - size[1] / 2) < 0.3 and abs(cy - size[0] / 2) < 0.3  # world (0.5, 0.5) is the centre
    radius = SIZES["large"] * min(size)
    assert share.sum() == pytest.approx(np.pi * radius**2, rel=0.03)  # round in pixels, whatever the aspect


def test_edges_are_anti_aliased() -> None:
    share = colour_share(render(one_object(), 1, 64).frames[0], "red")
    partial = (share > 0.1) & (share < 0.9)
    assert partial.sum() > 20  # the rim is a ring of intermediate values, not a staircase
    assert share.max() == pytest.approx(1.0, abs=0.02) and share.min() == pytest.approx(0.0, abs=0.02)


def test_every_shape_has_its_own_area_and_silhouette() -> None:
    masks = {}
    for shape in SHAPES:
        share = colour_share(render(one_object(shape), 1, 64).frames[0], "red")
        radius = SIZES["large"] * 64
        assert share.sum() == pytest.approx(shapes.area(shape) * radius**2, rel=0.05), shape
        masks[shape] = share > 0.5
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
                assert iou < 0.9, (a, b)
    assert not masks["ring"][32, 32] and masks["circle"][32, 32]  # the ring has a hole


def test_camera_zoom_and_pan() -> None:
    frames = render(one_object(camera=Camera(zoom_rate=0.1, vx=0.02)), 3, 64).frames
    areas = [colour_share(f, "red").sum() for f in frames]
    assert areas[2] / areas[0] == pytest.approx(1.1**4, rel=0.05)  # area grows with zoom squared
    xs = [np.nonzero(colour_share(f, "red").sum(0) > 0.5)[0].mean() for f in frames]
    assert xs[2] < xs[1] < xs[0]  # the camera pans right, so the content moves left


def test_objects_are_drawn_in_order_and_masks_are_visible_weights() -> None:
    below = SceneObject(0, "square", "blue", "large")
    above = SceneObject(1, "circle", "red", "small")
    rendering = render(Scene(Background(), (below, above)), 1, 64, weights=True)
    assert tuple(rendering.frames[0, 32, 32]) == OBJECT_COLOURS["red"]  # the later object is on top
    assert rendering.weights is not None and rendering.background_weight is not None
    total = rendering.weights[0] + rendering.weights[1] + rendering.background_weight
    np.testing.assert_allclose(total, 1.0, atol=1e-5)  # weights split every pixel exactly
    assert rendering.weights[0][0, 32, 32] == 0.0  # hidden under the circle
    assert rendering.areas[1][0] == pytest.approx(rendering.weights[1].sum())


@pytest.mark.parametrize("pattern", PATTERNS)
def test_background_patterns_stay_near_their_colour(pattern: str) -> None:
    scene = Scene(Background(pattern, "sand", angle=0.4, period=0.25, seed=3))
    frame = render(scene, 1, 64).frames[0].astype(np.float32)
    mean = frame.reshape(-1, 3).mean(0)
    assert np.abs(mean - BACKGROUND_COLOURS["sand"]).max() < 12
    spread = frame.std(axis=(0, 1)).max()
    assert (spread < 1) if pattern == "solid" else (spread > 5)


def test_styles() -> None:
    scene = one_object("star", "green")
    plain = render(scene, 1, 64).frames[0].astype(int)
    grey = render(Scene(scene.background, scene.objects, style="grayscale"), 1, 64).frames[0].astype(int)
    inverted = render(Scene(scene.background, scene.objects, style="invert"), 1, 64).frames[0].astype(int)
    outline = render(Scene(scene.background, scene.objects, style="outline"), 1, 64).frames[0].astype(int)
    assert (grey.max(-1) - grey.min(-1)).max() <= 1 and (plain.max(-1) - plain.min(-1)).max() > 100
    assert np.abs(inverted - (255 - plain)).max() <= 1
    assert outline[0, 0].min() == 255 and outline[32, 32].min() == 255  # paper outside and inside the star
    assert outline.min() < 60  # dark ink along the star's edge
    np.testing.assert_allclose(apply_style(plain.astype(np.float32), "invert"), 255 - plain)


def test_sizes_and_bad_sizes() -> None:
    assert as_size(64) == (64, 64) and as_size((48, 96)) == (48, 96)
    with pytest.raises(ValueError, match="at least 8x8"):
        render(one_object(), 1, (4, 64))
