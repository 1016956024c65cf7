"""ICVE SFT parts: mask sources and the mask filter, inpainting engines (OpenCV, WanVACE, the Flatland
oracle), instructions, the pair filters and the re-balancing of edit types."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_diffusers import save_wan_vace

from retake import video
from retake.flatland.palette import OBJECT_COLOURS
from retake.synth import sft
from retake.synth.inpaint import InpaintRequest, OpenCVInpainter, WanVaceInpainter
from retake.synth.masks import FileMasks, FlatlandMasks, mask_reason, mask_stats
from retake.synth.recipes import InpaintConfig, MaskConfig, PairsConfig

MASKS = MaskConfig(name="files", path="unused")


def disc_masks(frames: int = 5, size: int = 48, radius: int = 8, step: int = 2) -> np.ndarray:
    """(F, H, W) bool: a disc moving right `step` px per frame."""
    ys, xs = np.mgrid[:size, :size]
    return np.stack([(xs - 16 - step * t) ** 2 + (ys - 24) ** 2 <= radius**2 for t in range(frames)])


def test_the_mask_filter_keeps_steady_objects_and_names_the_rest() -> None:
    steady = disc_masks()
    assert mask_reason(mask_stats(steady), MASKS) is None
    assert mask_reason(mask_stats(disc_masks(radius=2)), MASKS)[0] == "too_small"
    assert mask_reason(mask_stats(disc_masks(radius=30)), MASKS)[0] == "too_large"
    gone = steady.copy()
    gone[2:] = False
    assert mask_reason(mask_stats(gone), MASKS)[0] == "absent"
    flicker = steady.copy()
    flicker[1::2] = disc_masks(radius=14)[1::2]
    assert mask_reason(mask_stats(flicker), MASKS)[0] == "unstable"  # area jumps
    jumping = np.stack([np.roll(steady[0], 17 * t, axis=1) for t in range(5)])
    assert mask_reason(mask_stats(jumping), MASKS)[0] == "unstable"  # no overlap from frame to frame
    assert mask_reason({**mask_stats(steady), "visible": 0.5}, MASKS)[0] == "occluded"


def test_file_masks_read_static_pngs_and_mask_videos(tmp_path: Path) -> None:
    folder = tmp_path / "masks" / "clip"
    folder.mkdir(parents=True)
    moving = disc_masks(frames=9, size=64)
    cv2.imwrite(str(folder / "red_ball.png"), moving[0].astype(np.uint8) * 255)
    video.write(
        video.Video(np.repeat(moving[..., None], 3, axis=-1).astype(np.uint8) * 255, fps=8),
        folder / "dog.mp4",
    )
    objects = FileMasks(tmp_path / "masks").objects(Path("in/clip.mp4"), (0, 2, 4, 6, 8), (32, 32))
    assert [o.label for o in objects] == ["dog", "red ball"]
    dog, ball = objects
    assert dog.masks.shape == ball.masks.shape == (5, 32, 32)
    assert (ball.masks == ball.masks[0]).all()  # a png is the mask of every frame
    np.testing.assert_array_equal(dog.masks.mean(axis=(1, 2)) > 0, True)
    centres = [np.argwhere(m)[:, 1].mean() for m in dog.masks]
    assert np.allclose(np.diff(centres), 2.0, atol=0.5)  # frames 0, 2, 4 ...: 4 px at 64 -> 2 px at 32


def test_flatland_masks_are_the_objects_where_they_show(flatland_sources: Path) -> None:
    path = sorted(flatland_sources.glob("*.mp4"))[1]
    objects = FlatlandMasks().objects(path, tuple(range(9)), (64, 64))
    assert objects and all(o.masks.shape == (9, 64, 64) and o.masks.any() for o in objects)
    assert all(0 < o.info["visible"] <= 1.0001 for o in objects)
    assert len({o.label for o in objects}) == len(objects)
    source = video.read(path).frames
    for o in objects:
        assert o.label == f"{o.info['colour']} {o.info['shape']}"
        # the mask is where the object shows: its inside has the object's colour (up to H.264)
        inside = np.stack([cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)) for m in o.masks]) > 0
        colour = np.median(source[inside], axis=0)
        np.testing.assert_allclose(colour, OBJECT_COLOURS[o.info["colour"]], atol=5, err_msg=o.label)


def textured_clip(frames: int = 5, size: int = 48) -> np.ndarray:
    """A still camera over a smooth gradient, with a red disc moving right (the object to remove)."""
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    background = np.stack([60 + 2 * xs, 80 + ys, 120 + xs - ys], axis=-1).clip(0, 255).astype(np.uint8)
    clip = np.repeat(background[None], frames, axis=0)
    clip[disc_masks(frames, size)] = (220, 20, 20)
    return clip, background


def test_opencv_inpainting_removes_the_object_and_keeps_the_rest() -> None:
    clip, background = textured_clip()
    masks = disc_masks()
    grown = disc_masks(radius=10)
    out = OpenCVInpainter(InpaintConfig()).inpaint(clip, grown, InpaintRequest())
    assert np.array_equal(out[~grown], clip[~grown])  # outside the mask: untouched
    error = np.abs(out.astype(int) - background)[masks].mean()
    assert error < 4 and np.abs(clip.astype(int) - background)[masks].mean() > 60
    with pytest.raises(ValueError, match="only remove"):
        OpenCVInpainter(InpaintConfig()).inpaint(clip, grown, InpaintRequest(caption="a dog"))


def test_wan_vace_inpaints_inside_the_mask_only(tmp_path: Path) -> None:
    path = save_wan_vace(tmp_path / "vace")
    clip, _ = textured_clip(frames=5, size=40)
    masks = disc_masks(frames=5, size=40)
    engine = WanVaceInpainter(InpaintConfig(name="wan-vace", path=str(path), steps=2, guidance=3.0))
    out = engine.inpaint(clip, masks, InpaintRequest(caption="a red ball", seed=1))
    assert out.shape == clip.shape and np.array_equal(out[~masks], clip[~masks])
    assert np.abs(out.astype(int) - clip)[masks].mean() > 5  # something new was painted in
    assert np.array_equal(out, engine.inpaint(clip, masks, InpaintRequest(caption="a red ball", seed=1)))


def test_instructions_are_phrased_and_filtered() -> None:
    config = PairsConfig()
    texts = {sft.instruction("remove", "red car", seed=s) for s in range(40)}
    assert len(texts) > 2 and all(t.endswith("the red car.") for t in texts)
    assert "an orange ring" in sft.instruction("add", "orange ring", seed=0)
    replace = sft.instruction("replace", "dog", "a cat", seed=3)
    assert "dog" in replace and replace.endswith("a cat.")
    assert all(sft.instruction_reason(t, config) is None for t in texts)
    assert sft.instruction_reason("Make it brighter.", config)[0] == "photometric"
    assert sft.instruction_reason("The dog is gone.", config)[0] == "not_imperative"
    assert sft.instruction_reason("Remove.", config)[0] == "too_short"


def test_the_pair_filter_wants_a_visible_edit_and_nothing_else_changed() -> None:
    clip, background = textured_clip()
    region = disc_masks(radius=11)
    removed = clip.copy()
    removed[region] = np.broadcast_to(background, clip.shape)[region]
    config = PairsConfig()
    good = sft.pair_metrics(clip, removed, region, removed)
    assert sft.pair_reason(good, config) is None and good["outside_psnr"] == 100.0
    assert sft.pair_reason(sft.pair_metrics(clip, clip, region, clip), config)[0] == "no_visible_edit"
    spoiled = removed.copy()
    spoiled[:, :, :10] = 0
    assert sft.pair_reason(sft.pair_metrics(clip, spoiled, region, spoiled), config)[0] == "changed_outside"
    textured = clip.copy()
    textured[..., 1] = np.random.default_rng(0).integers(0, 255, clip.shape[:3])  # a detailed background
    smeared = textured.copy()
    smeared[region] = 128  # a flat smear where the object was
    blurry = sft.pair_metrics(textured, smeared, region, smeared)
    assert sft.pair_reason(blurry, config)[0] == "blurry_fill" and blurry["fill_sharpness"] < 0.1


def _rows(counts: dict[str, int]) -> list[dict]:
    rows = [
        {"pair_id": f"{t}-{i}", "status": "ok", "edit_type": t, "stage": "", "reason": "", "detail": ""}
        for t, n in counts.items()
        for i in range(n)
    ]
    rows.append(
        {
            "pair_id": "x",
            "status": "dropped",
            "edit_type": "add",
            "stage": "pair_filter",
            "reason": "r",
            "detail": "",
        }
    )
    return rows


def test_rebalancing_meets_the_target_mix_and_ignores_order() -> None:
    config = PairsConfig(proportions=(2.0, 1.0, 1.0))
    rows = _rows({"remove": 30, "add": 30, "replace": 7})
    balanced = sft.rebalance(rows, config, seed=0)
    kept = Counter(r["edit_type"] for r in balanced if r["status"] == "ok")
    assert kept == {"remove": 14, "add": 7, "replace": 7}  # replace is the scarce type: 7 = 1/4 of 28
    assert {r["stage"] for r in balanced if r["status"] == "dropped"} == {"rebalance", "pair_filter"}
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = {r["pair_id"]: r["status"] for r in sft.rebalance(shuffled, config, seed=0)}
    assert again == {r["pair_id"]: r["status"] for r in balanced}
    missing = sft.rebalance(_rows({"remove": 5, "add": 9}), config, seed=0)  # no replace pair at all
    assert Counter(r["edit_type"] for r in missing if r["status"] == "ok") == {"remove": 5, "add": 2}
