"""Paired edits: a source clip and the same clip with one edit applied (identical motion), with masks.

`make_pair` draws a random scene and edit from a seed, renders both versions and keeps the sample only when
the edited object stays mostly visible (unoccluded and in view) in every frame, so that the edit is visible
in every frame and an instruction about it is fair. Rejected draws move on along the same random stream, so
a seed always gives the same sample.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import track

from retake import files
from retake.checks import derive_seed
from retake.flatland import io, shapes
from retake.flatland.describe import describe_edit
from retake.flatland.edits import EDIT_KINDS, Edit, apply_edit, find_target, sample_edit
from retake.flatland.generate import OBJECT_SPEED, pick, random_scene
from retake.flatland.motion import camera_state
from retake.flatland.palette import SIZES, check_name
from retake.flatland.render import Rendering, as_size, render
from retake.flatland.scene import Scene

_MIN_VISIBLE = 0.75  # the edited object must show at least this share of its area in every frame
_MAX_DRAWS = 200
_WEIGHT_EPS = 1.0 / 1024  # weights below this cannot change a pixel's 8-bit value
PAIRS_FORMAT = "retake.flatland.pairs/1"
# What make_pairs writes (a killed video write leaves .<name>.partial.mp4): all `overwrite` may delete.
_OWN_FILE = re.compile(
    r"\.?pair_\d{5,}(_source|_target|_mask)?(\.partial)?\.(mp4|png|json)|manifest\.jsonl|run\.json"
)


@dataclass
class PairSample:
    source: np.ndarray  # (F, H, W, 3) uint8
    target: np.ndarray  # (F, H, W, 3) uint8, the source with `edit` applied
    masks: np.ndarray  # (F, H, W) bool, True where the edit may change pixels
    edit: Edit
    instruction: str
    fps: float
    scene: Scene  # the source scene; apply_edit(scene, edit) is the target scene

    @property
    def target_scene(self) -> Scene:
        return apply_edit(self.scene, self.edit)


def make_pair(
    kind: str | None, *, size: int | tuple[int, int] = 64, frames: int = 17, fps: float = 8, seed: int
) -> PairSample:
    """One paired sample of edit `kind` (None: a random kind), fully determined by `seed`."""
    if kind is not None:
        check_name(kind, EDIT_KINDS, "edit kind")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    io.check_positive("fps", fps)
    hw = as_size(size)
    rng = np.random.default_rng(seed)
    kind = kind or pick(rng, EDIT_KINDS)
    for _ in range(_MAX_DRAWS):
        scene = random_scene(rng, fps=fps, objects=(0 if kind == "add" else 1, 3))
        edit = sample_edit(rng, scene, kind, fps=fps)
        target_scene = apply_edit(scene, edit)
        source = render(scene, frames, hw, weights=True)
        target = render(target_scene, frames, hw, weights=True)
        if _edit_visible(scene, target_scene, edit, source, target, hw):
            masks = edit_masks(scene, edit, source, target)
            instruction = describe_edit(edit, rng)
            return PairSample(source.frames, target.frames, masks, edit, instruction, float(fps), scene)
    # Settings, not bad luck: e.g. at 0.01 fps objects cross the view many times a frame.
    raise ValueError(
        f"no {kind!r} pair whose edit stays in view in all {frames} frames in {_MAX_DRAWS} draws (seed {seed}) "
        f"at size {hw[0]}x{hw[1]} and fps {fps:g}: objects drift {OBJECT_SPEED[0] / fps:.2g} to {OBJECT_SPEED[1] / fps:.2g} of the "
        "view per frame; use a higher --fps or fewer --frames"
    )


def make_pairs(
    out_dir: str | Path,
    *,
    n: int,
    size: int | tuple[int, int] = 64,
    frames: int = 17,
    fps: float = 8,
    kinds: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write `n` pairs to `out_dir` and return the path of its manifest.jsonl.

    Per sample: pair_00000_source.mp4, pair_00000_target.mp4, pair_00000_mask.png (the masks of all frames
    side by side) and pair_00000.json (id, edit, instruction, scene, file names relative to `out_dir`); the
    manifest holds the same records, one JSON object per line, and run.json the settings. Kinds cycle
    through `kinds` (default: all) so they stay balanced; sample i is determined by (seed, i) alone.

    `out_dir` must be empty or absent, or hold pairs made with the same settings: a stopped run continues
    there, keeping the pairs it wrote. Pairs made with other settings are refused unless `overwrite`, which
    deletes them first (see `io.claim_folder`).
    """
    if n < 1 or frames < 1:
        raise ValueError(f"n and frames must be >= 1, got n={n} frames={frames}")
    io.check_positive("fps", fps)
    if isinstance(kinds, str):  # one kind as text would be read letter by letter ("unknown edit kind 'r'")
        raise ValueError(f"kinds must be a list of edit kinds, got the string {kinds!r}; e.g. [{kinds!r}]")
    if kinds is not None and not kinds:
        raise ValueError("kinds must name at least one edit kind (None: all of them), got an empty list")
    kinds = tuple(kinds or EDIT_KINDS)
    for kind in kinds:
        check_name(kind, EDIT_KINDS, "edit kind")
    height, width = io.video_size(size)
    settings = {"n": n, "size": [height, width], "frames": frames, "fps": float(fps), "kinds": list(kinds)}
    out = Path(out_dir).expanduser()  # else '~/pairs' makes a folder named '~' here
    io.claim_folder(out, PAIRS_FORMAT, settings | {"seed": seed}, _OWN_FILE, overwrite=overwrite)
    records = []
    for i in track(range(n), description="pairs", disable=not progress):
        name, sample_seed = f"pair_{i:05d}", derive_seed(seed, i)
        record = _written(out, name)
        if record is None:
            sample = make_pair(kinds[i % len(kinds)], size=size, frames=frames, fps=fps, seed=sample_seed)
            record = write_pair(sample, out, name, seed=sample_seed)
        records.append(record)
    manifest = out / "manifest.jsonl"
    files.write_json_lines(manifest, records)
    return manifest


def _written(out: Path, name: str) -> dict | None:
    """The record of pair `name` if a resumed run wrote it completely (its JSON is written last), else None."""
    record = io.read_json(out / f"{name}.json")
    if record is None or not all((out / str(record.get(k))).is_file() for k in ("source", "target", "mask")):
        return None
    return record


def write_pair(sample: PairSample, out_dir: Path, name: str, *, seed: int | None = None) -> dict:
    """Write one sample's videos, masks and JSON record (see make_pairs); returns the record."""
    frames, height, width = sample.source.shape[:3]
    record = {
        "id": name,
        "kind": sample.edit.kind,
        "instruction": sample.instruction,
        "edit": sample.edit.to_json(),
        "source": f"{name}_source.mp4",
        "target": f"{name}_target.mp4",
        "mask": f"{name}_mask.png",
        "frames": frames,
        "size": [height, width],
        "fps": sample.fps,
        "seed": seed,
        "scene": sample.scene.to_json(),
    }
    io.write_video(sample.source, sample.fps, out_dir / record["source"])
    io.write_video(sample.target, sample.fps, out_dir / record["target"])
    io.write_masks(sample.masks, out_dir / record["mask"])
    io.write_json(record, out_dir / f"{name}.json")
    return record


def load_pair(json_path: str | Path) -> PairSample:
    """A sample written by make_pairs, with its videos decoded from the mp4 files (so H.264-lossy)."""
    path = Path(json_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pair record not found: {path}")
    record = json.loads(path.read_text())
    folder = path.parent
    return PairSample(
        source=io.read_video(folder / record["source"]),
        target=io.read_video(folder / record["target"]),
        masks=io.read_masks(folder / record["mask"], record["frames"]),
        edit=Edit.from_json(record["edit"]),
        instruction=record["instruction"],
        fps=float(record["fps"]),
        scene=Scene.from_json(record["scene"]),
    )


def edited_ids(scene: Scene, edit: Edit) -> tuple[int, ...]:
    """Ids of the objects an object edit touches (the new id for `add`); () for background and style."""
    if edit.kind == "add":
        return (max((o.id for o in scene.objects), default=-1) + 1,)
    if edit.kind in ("background", "style"):
        return ()
    return (find_target(scene, edit).id,)


def edit_masks(scene: Scene, edit: Edit, source: Rendering, target: Rendering) -> np.ndarray:
    """(F, H, W) bool: pixels the edit may change. Object edits: where the edited object shows in the
    source or the target; background: where the background shows; style: everything.

    Both renderings must come from `render(..., weights=True)`.
    """
    if source.weights is None or target.weights is None or source.background_weight is None:
        raise ValueError("edit_masks needs renderings made with weights=True")
    if edit.kind == "style":
        return np.ones(source.frames.shape[:3], bool)
    if edit.kind == "background":
        return source.background_weight > _WEIGHT_EPS
    mask = np.zeros(source.frames.shape[:3], bool)
    for weights in (source.weights, target.weights):
        for i in edited_ids(scene, edit):
            if i in weights:
                mask |= weights[i] > _WEIGHT_EPS
    return mask


def _edit_visible(
    scene: Scene, target_scene: Scene, edit: Edit, source: Rendering, target: Rendering, hw: tuple[int, int]
) -> bool:
    """True when every edited object shows >= _MIN_VISIBLE of its full area in every frame it is in."""
    checks = []
    if edit.kind in ("remove", "replace", "recolour"):
        checks.append((scene, source))
    if edit.kind in ("add", "replace", "recolour"):
        checks.append((target_scene, target))
    for i in edited_ids(scene, edit):
        for sc, rendering in checks:
            obj = next(o for o in sc.objects if o.id == i)
            zooms = np.array([camera_state(sc, f).zoom for f in range(len(rendering.frames))])
            full = shapes.area(obj.shape) * (SIZES[obj.size] * min(hw) * zooms) ** 2
            if np.any(rendering.areas[i] < _MIN_VISIBLE * full):
                return False
    return True
