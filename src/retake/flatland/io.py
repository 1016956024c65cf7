"""Files of Flatland: videos through retake.video (H.264 mp4), JSON written byte-stably, masks as PNG strips.

Everything written here is a pure function of its input, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np

from retake import files, video
from retake.checks import describe_changes
from retake.flatland.render import as_size


def video_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """`as_size` of frames bound for a video file. H.264 with 4:2:0 chroma needs even sides and the writer
    pads an odd one, so the file would be a pixel larger than the masks and sidecars written beside it:
    refused up front, naming the size."""
    height, width = as_size(size)
    if height % 2 or width % 2:
        raise ValueError(
            f"video size must have even sides (H.264 stores 4:2:0 chroma), got {height}x{width} (HxW)"
        )
    return height, width


def check_positive(name: str, value: float) -> None:
    """ValueError naming `name` unless `value` is a finite number > 0 (inf and nan overflow frame counts)."""
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


RUN_FILE = "run.json"  # the settings a generated folder was made with


def claim_folder(out: Path, kind: str, settings: dict, own: re.Pattern[str], *, overwrite: bool) -> None:
    """Make `out` the folder of a `kind` run (e.g. "retake.flatland.pairs/1") with `settings`, recorded in
    run.json; `own` matches the names of every file such a run writes.

    A folder of the same kind and settings is kept: its files are the ones this run would write, so a stopped
    run continues there. One of other (or unrecorded) settings is refused, since new files would silently
    replace some and leave stale others beside them; with `overwrite` its files are deleted first. Overwrite
    deletes only files `own` matches, so a folder holding anything else is refused even then: a mistyped
    path never loses other work."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose a new folder")
    settings = files.as_read_back(settings)
    record = {"format": kind, "settings": settings}
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if entries and all(
        files.TEMPORARY_NAME.fullmatch(p.name) for p in entries
    ):  # killed before its first file
        files.remove_leftovers(out)
        entries = []
    if entries:
        others = [p.name for p in entries if not _ours(p.name, own)]
        if others:
            raise FileExistsError(
                f"{out} holds files this command does not write ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); choose a new folder"
            )
        old = read_json(out / RUN_FILE)
        if old == record and not overwrite:
            files.remove_leftovers(out)  # half-written files of a killed run: redone
            return
        if not overwrite:
            raise FileExistsError(
                f"{out} holds files made with {_difference(old, kind, settings)}; pass --overwrite "
                "(from Python: overwrite=True) to replace them, or choose a new folder"
            )
        for path in entries:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, out / RUN_FILE)


def _ours(name: str, own: re.Pattern[str]) -> bool:
    """Whether a run of this kind writes `name`, finished or (killed mid-write) as a temporary file."""
    temporary = files.TEMPORARY_NAME.fullmatch(name)
    if temporary is not None:
        name = temporary["name"]
    return own.fullmatch(name) is not None or name == RUN_FILE


def _difference(old: dict | None, kind: str, settings: dict) -> str:
    """How the recorded settings of a folder differ from `settings`, for the refusal message."""
    if old is None or old.get("format") != kind:
        return "unrecorded settings (no readable run.json)"
    before = old.get("settings") or {}
    return "other settings: " + "; ".join(describe_changes(before, settings))


def read_json(path: Path) -> dict | None:
    """A JSON object file's content; None when it is missing, cut short by a killed run, or not an object."""
    try:
        content = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return content if isinstance(content, dict) else None


def write_video(frames: np.ndarray, fps: float, path: Path) -> Path:
    """(F, H, W, 3) uint8 frames -> H.264 mp4 at `path`."""
    return video.write(video.Video(frames, fps), path)


def read_video(path: Path) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of an mp4 written by write_video."""
    return video.read(path).frames


def write_json(data: dict, path: Path) -> Path:
    files.write_json(path, data)
    return path


def write_masks(masks: np.ndarray, path: Path) -> Path:
    """(F, H, W) bool masks -> one lossless PNG strip of the frames side by side, (H, F * W)."""
    frames, height, width = masks.shape
    strip = masks.transpose(1, 0, 2).reshape(height, frames * width)  # (H, F * W)
    ok, data = cv2.imencode(".png", strip.astype(np.uint8) * 255)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ValueError(f"could not encode masks of shape {masks.shape} as PNG")
    path.write_bytes(data.tobytes())
    return path


def read_masks(path: Path, frames: int) -> np.ndarray:
    """(F, H, W) bool masks from a PNG strip written by write_masks."""
    strip = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if strip is None:
        raise FileNotFoundError(f"mask strip not found or unreadable: {path}")
    height, total = strip.shape
    if total % frames:
        raise ValueError(f"{path}: strip width {total} is not a multiple of {frames} frames")
    return strip.reshape(height, frames, total // frames).transpose(1, 0, 2) > 127
