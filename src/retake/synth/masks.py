"""Object masks for the SFT pairs, from a pluggable source, and the mask filter.

- `files`: `<root>/<input stem>/<label>.png` (one mask for every frame: a static object) or `<label>.mp4`
  (a mask video, one mask per frame); white (> 127) is the object; the file name, underscores for spaces, is
  its label ("red_car.png" -> "red car");
- `flatland`: the oracle, every object of a Flatland source's scene where it shows (after occlusion), with
  the share of it that shows (a half-hidden object makes an edit no judge can verify).

The filter keeps objects that are big enough to matter, small enough to inpaint, present in (nearly) every
frame and stable over time (area steady, consecutive masks overlapping): a flickering or jumping mask is no
object and would teach an edit nobody asked for.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from retake import video
from retake.checks import check_int
from retake.synth.filters import Verdict
from retake.synth.flatland import object_masks, read_source
from retake.synth.recipes import MaskConfig
from retake.synth.records import MaskedObject
from retake.synth.sources import read_still

MASK_EXTENSIONS = (".png", ".mp4")


class MaskSource(Protocol):
    name: str

    def objects(
        self, path: Path, frame_indices: tuple[int, ...], size: tuple[int, int]
    ) -> list[MaskedObject]:
        """Objects of the input at `path`, masks (F, H, W) bool at the clip's frames and size."""
        ...


def label_from_name(stem: str) -> str:
    return " ".join(stem.replace("_", " ").split())


class FileMasks:
    name = "files"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"mask folder not found: {self.root}")

    def objects(
        self, path: Path, frame_indices: tuple[int, ...], size: tuple[int, int]
    ) -> list[MaskedObject]:
        folder = self.root / path.stem
        files = sorted(f for f in folder.glob("*") if f.suffix.lower() in MASK_EXTENSIONS)
        return [
            MaskedObject(label_from_name(f.stem), self.read(f, frame_indices, size), {"file": f.name})
            for f in files
        ]

    def read(self, file: Path, frame_indices: tuple[int, ...], size: tuple[int, int]) -> np.ndarray:
        if file.suffix.lower() == ".png":
            grey = read_still(file).max(axis=-1)  # (H, W): any bright channel counts
            mask = video.resize_cover_crop(grey[None, ..., None], size)[0, ..., 0] > 127
            return np.repeat(mask[None], len(frame_indices), axis=0)
        clip = video.read(file, size=size, max_frames=max(frame_indices) + 1).frames  # (F, H, W, 3)
        if len(clip) <= max(frame_indices):
            raise ValueError(
                f"{file}: {len(clip)} mask frames for a clip reaching frame {max(frame_indices)}"
            )
        return clip[np.asarray(frame_indices)].max(axis=-1) > 127


class FlatlandMasks:
    name = "flatland"

    def objects(
        self, path: Path, frame_indices: tuple[int, ...], size: tuple[int, int]
    ) -> list[MaskedObject]:
        scene = read_source(path).scene
        looks = {o.id: o for o in scene.objects}
        return [
            MaskedObject(
                look, masks, {"id": i, "colour": looks[i].colour, "shape": looks[i].shape, "visible": seen}
            )
            for i, look, masks, seen in object_masks(scene, frame_indices, size)
        ]


def make_mask_source(config: MaskConfig) -> MaskSource:
    if config.name == "files":
        if config.path is None:  # else Path("None") would be looked for and reported as not found
            raise ValueError("mask source 'files' needs masks.path (--masks-dir): it is unset")
        return FileMasks(config.path)
    if config.name == "flatland":
        return FlatlandMasks()
    raise ValueError(f"unknown mask source {config.name!r}; known: files, flatland")


def mask_stats(masks: np.ndarray) -> dict[str, float]:
    """area (mean share of the frame where present), presence (share of frames present), area_cv (std/mean
    of the area over present frames) and iou (median IoU of consecutive present masks; 1 for one frame)."""
    if masks.ndim != 3 or masks.dtype != bool:
        raise ValueError(f"masks must be (F, H, W) bool, got {masks.dtype} {masks.shape}")
    areas = masks.mean(axis=(1, 2))  # (F,)
    present = areas > 0
    if not present.any():
        return {"area": 0.0, "presence": 0.0, "area_cv": 0.0, "iou": 0.0}
    shown = areas[present]
    kept = masks[present]
    overlaps = [
        np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()) for a, b in itertools.pairwise(kept)
    ]
    return {
        "area": float(shown.mean()),
        "presence": float(present.mean()),
        "area_cv": float(shown.std() / shown.mean()),
        "iou": float(np.median(overlaps)) if overlaps else 1.0,
    }


def mask_reason(stats: dict[str, float], config: MaskConfig) -> Verdict:
    """Why an object fails the mask filter, or None. `stats` may hold "visible" (the least share of the
    object shown, from a source that knows whole objects, e.g. the Flatland oracle)."""
    if stats.get("visible", 1.0) < config.min_visible:
        return (
            "occluded",
            f"at most {stats['visible']:.0%} of it shows in some frame < {config.min_visible:.0%}",
        )
    if stats["presence"] < config.min_presence:
        return "absent", f"present in {stats['presence']:.0%} of frames < {config.min_presence:.0%}"
    if stats["area"] < config.min_area:
        return "too_small", f"area {stats['area']:.3f} < {config.min_area}"
    if stats["area"] > config.max_area:
        return "too_large", f"area {stats['area']:.3f} > {config.max_area}"
    if stats["area_cv"] > config.max_area_cv:
        return "unstable", f"area varies by {stats['area_cv']:.2f} (std/mean) > {config.max_area_cv}"
    if stats["iou"] < config.min_iou:
        return "unstable", f"consecutive-mask IoU {stats['iou']:.2f} < {config.min_iou}"
    return None


def grow(masks: np.ndarray, radius: int) -> np.ndarray:
    """(F, H, W) bool masks dilated by a disc of `radius` px (an integer >= 0; 0 returns them as they are)."""
    radius = check_int("radius", radius, minimum=0)
    masks = np.asarray(masks)
    if masks.ndim != 3 or len(masks) == 0:  # np.stack of no frames fails with a message about arrays
        raise ValueError(f"masks must be a non-empty (F, H, W) stack, got shape {masks.shape}")
    if radius == 0:
        return masks
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), disc) > 0 for m in masks])
