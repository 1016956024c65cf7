"""Shared test helpers: oracle configs for Flatland, reading a synth dataset back (rows, decoded clips, the
oracle judge's verdicts), and a synthetic clip whose motion is known."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from retake import video
from retake.data.shards import iter_shard, read_manifest
from retake.flatland.edits import Edit
from retake.flatland.judge import judge

# Flatland frames are flat colours: the real-video sharpness and clipping thresholds do not apply.
FLATLAND_SOURCE = {"source.min_sharpness": 0.0, "source.max_clipped": 1.0, "source.clip_frames": 9}
INSVIE_ORACLE = {
    **FLATLAND_SOURCE,
    "editor.name": "flatland",
    "selection.name": "flatland",
    "propagation.name": "flatland",
    "quality.min_sharpness_ratio": 0.0,  # removing an object or a textured background lowers sharpness
}
SFT_ORACLE = {
    **FLATLAND_SOURCE,
    "masks.name": "flatland",
    "inpaint.name": "flatland",
}


def read_triplets(out: Path) -> dict[str, tuple[dict, np.ndarray, np.ndarray]]:
    """pair_id -> (row, source (F, H, W, 3), edited (F, H, W, 3)) for every triplet in the tars."""
    rows = {r["pair_id"]: r for r in read_manifest(out).to_pylist()}
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tar in sorted((out / "shards").glob("*.tar")):
            for key, files in iter_shard(tar):
                assert json.loads(files["json"]) == rows[key] or rows[key]["stage"] == "rebalance"
                clips = []
                for member in ("src.mp4", "tgt.mp4"):
                    path = Path(tmp) / member
                    path.write_bytes(files[member])
                    clips.append(video.read(path).frames)
                found[key] = (rows[key], clips[0], clips[1])
    return found


def oracle_verdicts(out: Path) -> dict[str, bool]:
    """pair_id -> whether the Flatland oracle judge passes the triplet (rows with status ok only)."""
    verdicts = {}
    for key, (row, source, edited) in read_triplets(out).items():
        if row["status"] == "ok":
            verdicts[key] = bool(judge(source, edited, Edit.from_json(json.loads(row["edit"]))))
    return verdicts


SPEED = 3  # px per frame, to the right
SIZE = (96, 128)


def sliding_clip(frames: int = 9, seed: int = 0) -> np.ndarray:
    """(F, H, W, 3) uint8: a smooth random texture moving SPEED px right per frame (wrapping around)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.random((SIZE[0], SIZE[1] * 2)).astype(np.float32), (0, 0), 2.0)
    texture = (texture - texture.min()) / np.ptp(texture)
    base = (40 + 180 * np.stack([texture, texture[:, ::-1], texture[::-1]], axis=-1)).astype(np.uint8)
    return np.stack([np.roll(base, SPEED * t, axis=1)[:, : SIZE[1]] for t in range(frames)])
