"""Flatland sources for the factory, and the oracles that read them.

A Flatland source is a video `<name>.mp4` with a sidecar `<name>.json`: the scene it renders, its fps, and
the edits to make of it ({"edit": Edit JSON, "instruction": ...}). The oracles (editor, propagator, masks,
inpainter) re-render the scene: an edit is added to the decoded frames as the *difference* of the edited and
the source rendering, so pixels the edit does not touch keep the decoded video's own codec noise. A global
style is a pixel operator instead, applied to the decoded frames themselves (as the oracle judge predicts it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import track

from retake import files
from retake.checks import check_int, derive_seed
from retake.flatland import io as flatland_io
from retake.flatland import shapes
from retake.flatland.edits import EDIT_KINDS, Edit, apply_edit
from retake.flatland.motion import camera_state
from retake.flatland.pairs import make_pair
from retake.flatland.palette import SIZES, check_name
from retake.flatland.render import render
from retake.flatland.scene import Scene
from retake.flatland.style import apply_style

_WEIGHT_EPS = 1.0 / 1024  # a weight below this cannot change an 8-bit pixel


@dataclass(frozen=True)
class FlatlandSource:
    scene: Scene
    fps: float
    edits: tuple[tuple[Edit, str], ...]  # (edit, instruction)


def sidecar_path(video: Path) -> Path:
    return video.with_suffix(".json")


def read_source(video: Path) -> FlatlandSource:
    """The sidecar of a Flatland source video; FileNotFoundError when it has none."""
    path = sidecar_path(video)
    if not path.is_file():
        raise FileNotFoundError(f"{video} has no Flatland sidecar {path.name}")
    data = json.loads(path.read_text())
    if "scene" not in data or "fps" not in data:
        # e.g. the sidecar of `retake flatland footage`, which describes raw footage, not one scene to edit
        raise ValueError(
            f"{path.name} is not a Flatland source sidecar (no 'scene' and 'fps'); make sources with "
            "`retake flatland sources`"
        )
    edits = tuple((Edit.from_json(e["edit"]), str(e["instruction"])) for e in data.get("edits", ()))
    return FlatlandSource(Scene.from_json(data["scene"]), float(data["fps"]), edits)


SOURCES_FORMAT = "retake.synth.flatland.sources/1"
# What write_sources writes (a killed video write leaves .<name>.partial.mp4): all `overwrite` may delete.
_OWN_FILE = re.compile(r"\.?flat_\d{4,}(\.partial)?\.(mp4|json)|run\.json")


def write_sources(
    out: str | Path,
    *,
    n: int,
    kinds: tuple[str, ...] = EDIT_KINDS,
    size: int | tuple[int, int] = 64,
    frames: int = 17,
    fps: float = 8.0,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write `n` Flatland sources (kinds cycle through `kinds`), each with one judgeable edit; returns the
    video paths. Source i depends on (seed, i) alone.

    `out` must be empty or absent, or hold sources made with the same settings (a stopped run continues
    there); other settings are refused unless `overwrite` (see `retake.flatland.io.claim_folder`)."""
    check_int("n", n, minimum=1)
    check_int("frames", frames, minimum=1)
    flatland_io.check_positive("fps", fps)
    for kind in kinds:
        check_name(kind, EDIT_KINDS, "edit kind")
    height, width = flatland_io.video_size(size)
    folder = Path(out)
    settings = {"n": n, "kinds": list(kinds), "size": [height, width], "frames": frames, "fps": float(fps)}
    flatland_io.claim_folder(
        folder, SOURCES_FORMAT, settings | {"seed": seed}, _OWN_FILE, overwrite=overwrite
    )
    paths = []
    for i in track(range(n), description="flatland sources", disable=not progress):
        path = folder / f"flat_{i:04d}.mp4"
        if not (path.is_file() and sidecar_path(path).is_file()):  # written by a stopped run: kept
            _write_source(path, kinds[i % len(kinds)], (height, width), frames, fps, derive_seed(seed, i))
        paths.append(path)
    return paths


def _write_source(path: Path, kind: str, size: tuple[int, int], frames: int, fps: float, seed: int) -> None:
    pair = make_pair(kind, size=size, frames=frames, fps=fps, seed=seed)
    record = {
        "scene": pair.scene.to_json(),
        "fps": pair.fps,
        "edits": [{"edit": pair.edit.to_json(), "instruction": pair.instruction}],
    }
    # The video last: a sidecar without its video is never taken for a finished source.
    files.write_json(sidecar_path(path), record)
    flatland_io.write_video(pair.source, pair.fps, path)


def _rendered(scene: Scene, frame_indices: tuple[int, ...], size: tuple[int, int], weights: bool = False):
    rendering = render(scene, max(frame_indices) + 1, size, weights=weights)
    return rendering, np.asarray(frame_indices)


def edit_residual(
    scene: Scene, edit: Edit, frame_indices: tuple[int, ...], size: tuple[int, int]
) -> np.ndarray:
    """(F, H, W, 3) float32: rendering of the edited scene minus the source's, at the given native frames."""
    source, picks = _rendered(scene, frame_indices, size)
    target, _ = _rendered(apply_edit(scene, edit), frame_indices, size)
    return target.frames[picks].astype(np.float32) - source.frames[picks].astype(np.float32)


def edit_change(frames: np.ndarray, scene: Scene, edit: Edit, frame_indices: tuple[int, ...]) -> np.ndarray:
    """(F, H, W, 3) float32: what `edit` changes in decoded `frames` (F, H, W, 3) uint8 of `scene`."""
    if edit.kind == "style":
        return apply_style(frames, str(edit.style)) - frames.astype(np.float32)
    return edit_residual(scene, edit, frame_indices, frames.shape[1:3])


def apply_residual(frames: np.ndarray, residual: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """frames (F, H, W, 3) uint8 + opacity * residual, rounded and clipped back to uint8."""
    return np.clip(frames.astype(np.float32) + opacity * residual, 0, 255).round().astype(np.uint8)


def object_masks(
    scene: Scene, frame_indices: tuple[int, ...], size: tuple[int, int]
) -> list[tuple[int, str, np.ndarray, float]]:
    """(object id, look, masks (F, H, W) bool, visible share) of every object: masks where it shows after
    occlusion; visible share = the least, over frames, of its shown area over its whole area (occluded or
    out of view objects score low)."""
    rendering, picks = _rendered(scene, frame_indices, size, weights=True)
    zooms = np.array([camera_state(scene, int(f)).zoom for f in picks])
    out = []
    for obj in scene.objects:
        whole = shapes.area(obj.shape) * (SIZES[obj.size] * min(size) * zooms) ** 2  # (F,) px
        visible = float(np.min(rendering.areas[obj.id][picks] / whole))
        masks = rendering.weights[obj.id][picks] > _WEIGHT_EPS  # type: ignore[index]
        out.append((obj.id, obj.look, masks, visible))
    return out
