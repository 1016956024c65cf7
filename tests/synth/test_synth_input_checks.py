"""Bad arguments to the factory's inpainters, mask helpers and factories: a ValueError naming the argument
(and its value), or the documented reading (integer masks: nonzero is the object), not an IndexError or a
cv2/numpy error about something else."""

from __future__ import annotations

import re

import numpy as np
import pytest

from retake.synth.image_editors import make_image_editor
from retake.synth.inpaint import InpaintRequest, OpenCVInpainter, blend, still_camera
from retake.synth.masks import grow, make_mask_source
from retake.synth.recipes import EditorConfig, InpaintConfig, MaskConfig


def still_clip(frames: int = 4, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A still gradient with a square that moves right 3 px a frame, and its (F, H, W) bool masks."""
    ys, xs = np.mgrid[:size, :size]
    background = np.stack([4 * xs, 4 * ys, 128 + 0 * xs], axis=-1).clip(0, 255).astype(np.uint8)
    clip = np.repeat(background[None], frames, axis=0)
    masks = np.zeros(clip.shape[:3], bool)
    for t in range(frames):
        masks[t, 10:18, 4 + 3 * t : 12 + 3 * t] = True
    clip[masks] = (230, 20, 20)
    return clip, masks


def test_uint8_masks_count_nonzero_as_masked() -> None:
    clip, masks = still_clip()
    inpainter = OpenCVInpainter(InpaintConfig())
    expected = inpainter.inpaint(clip, masks, InpaintRequest())
    for as_int in (masks.astype(np.uint8) * 255, masks.astype(np.uint8), masks.astype(np.int64)):
        np.testing.assert_array_equal(inpainter.inpaint(clip, as_int, InpaintRequest()), expected)
    assert still_camera(clip, masks.astype(np.uint8) * 255)
    np.testing.assert_array_equal(
        blend(clip, expected, masks.astype(np.uint8) * 255), blend(clip, expected, masks)
    )


@pytest.mark.parametrize(
    "cut",
    [lambda m: m[:2], lambda m: m[:, :20], lambda m: m[..., :20], lambda m: m[0], lambda m: m.astype(float)],
)
def test_masks_of_another_shape_or_kind_are_refused_naming_both_shapes(cut) -> None:
    clip, masks = still_clip()
    bad = cut(masks)
    match = r"masks must be \(F, H, W\).*\(4, 32, 32\).*got " + re.escape(f"{bad.shape} {bad.dtype}")
    with pytest.raises(ValueError, match=match):
        OpenCVInpainter(InpaintConfig()).inpaint(clip, bad, InpaintRequest())
    with pytest.raises(ValueError, match=r"masks must be .*\(4, 32, 32\)"):
        blend(clip, clip, bad)


def test_grow_refuses_a_fractional_or_negative_radius() -> None:
    _, masks = still_clip()
    for radius in (2.5, -1, True, "2"):
        with pytest.raises(ValueError, match="radius must be"):
            grow(masks, radius)
    assert grow(masks, np.int64(2)).sum() > masks.sum()  # numpy integers are fine
    assert grow(masks, 0) is masks


def test_grow_refuses_an_empty_mask_stack_naming_its_shape() -> None:
    _, masks = still_clip()
    with pytest.raises(
        ValueError, match=r"masks must be a non-empty \(F, H, W\) stack, got shape \(0, 32, 32\)"
    ):
        grow(masks[:0], 2)
    with pytest.raises(ValueError, match=r"got shape \(32, 32\)"):
        grow(masks[0], 2)


def test_an_unset_folder_is_named_by_its_setting_and_option() -> None:
    with pytest.raises(ValueError, match=r"masks\.path \(--masks-dir\).*unset"):
        make_mask_source(MaskConfig())
    with pytest.raises(ValueError, match=r"editor\.path \(--edits\).*unset"):
        make_image_editor(EditorConfig())
