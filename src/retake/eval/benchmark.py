"""Benchmark sets: a folder of source videos and instructions that any editor can be run on, with the ground
truth (target video, edit mask, structured edit) kept beside it for scoring.

`build_flatland_benchmark(out_dir, config)` renders `per_kind` seeded Flatland pairs per edit kind and writes

    OUT/README.md              what to hand to another system and what it must hand back
    OUT/instructions.jsonl     {"id", "source", "instruction"} per sample: the task, and all another system needs
    OUT/sources/<id>.mp4       source videos
    OUT/truth/<id>.mp4         ground-truth edited videos (scoring only)
    OUT/truth/<id>.masks.safetensors   {"masks": (F, H, W) bool}, True where the edit may change pixels
    OUT/benchmark.json         manifest: config, fingerprint and every sample (id, kind, seed, instruction, edit)

A draw is kept only if the oracle judge accepts its encoded ground truth and rejects its encoded source, so a
perfect editor scores 100% and an editor that changes nothing 0%; the manifest counts the redraws. The
manifest is written last, so a folder without one is an interrupted build. Scoring reads the videos back
from the files, so the reference is exactly what a perfect editor that returned it would hand back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import track
from safetensors.numpy import load_file, save_file

from retake import files
from retake.checks import describe_changes, size_pair
from retake.errors import RetakeError
from retake.flatland.edits import EDIT_KINDS, Edit
from retake.flatland.io import video_size
from retake.flatland.judge import judge as oracle_judge
from retake.flatland.pairs import PairSample, make_pair
from retake.flatland.palette import check_name
from retake.video import Video, read, write

FORMAT = "retake.eval.benchmark/1"
MANIFEST = "benchmark.json"
PENDING = ".pending.json"  # the config of a build under way; gone once the manifest is written
PROGRESS = ".progress.jsonl"  # one row per sample drawn, so an interrupted build continues
INSTRUCTIONS = "instructions.jsonl"
_MAX_DRAWS = 20


class BenchmarkError(RetakeError):
    """A benchmark folder that cannot be used (no manifest, another format, missing files)."""


@dataclass(frozen=True)
class BenchmarkConfig:
    per_kind: int = 20  # samples per edit kind
    kinds: tuple[str, ...] = EDIT_KINDS
    size: int | tuple[int, int] = 64  # N for N x N pixels, or (H, W); a square (N, N) is stored as N
    frames: int = 17
    fps: float = 8.0
    seed: int = 0
    # x264 crf of the written videos. 0 is lossless in YUV, so only 4:2:0 chroma rounding separates the files
    # from the renders; the target then differs from the source only near the edit.
    crf: int = 0
    # Masks are grown by this many pixels: 4:2:0 chroma and its upsampling smear an edit's colour ~3 px
    # beyond its edge, which is no fault of the editor (measured on Flatland pairs at crf 0).
    mask_margin: int = 3

    def __post_init__(self) -> None:
        if self.per_kind < 1:
            raise ValueError(f"per_kind must be >= 1, got {self.per_kind}")
        if not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must be a non-empty list without repeats, got {self.kinds!r}")
        for kind in self.kinds:
            check_name(kind, EDIT_KINDS, "edit kind")
        height, width = _bench_size(self.size)
        # N x N is kept as N, so a square benchmark's config (and fingerprint) reads as it always did.
        object.__setattr__(self, "size", height if height == width else (height, width))
        if min(height, width) < 16 or self.frames < 2 or not 0 < self.fps < math.inf:
            raise ValueError(
                f"need sides >= 16, frames >= 2, fps > 0 and finite; got {height}x{width}, {self.frames}, "
                f"{self.fps}"
            )
        video_size(self.size)  # even: the masks must match the videos, which H.264 pads to even sides
        if not 0 <= self.crf <= 51 or self.mask_margin < 0:
            raise ValueError(f"need crf in 0..51 and mask_margin >= 0, got {self.crf} and {self.mask_margin}")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the benchmark's videos."""
        return _bench_size(self.size)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready and as JSON reads it back (lists, not tuples), so a saved config compares equal."""
        size = list(self.size) if isinstance(self.size, tuple) else self.size
        return asdict(self) | {"kinds": list(self.kinds), "size": size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchmarkConfig:
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise ValueError(f"unknown benchmark config fields {sorted(set(data) - known)}")
        return cls(**(data | {"kinds": tuple(data.get("kinds", EDIT_KINDS))}))


def _bench_size(size: object) -> tuple[int, int]:
    """(H, W) from N or an (H, W) pair (a JSON list too), as `size_pair` reads them; the error in the
    benchmark's own words (N, as `--size` takes it)."""
    try:
        return size_pair(size)
    except ValueError:
        raise ValueError(f"size must be N or (H, W) in whole pixels, got {size!r}") from None


@dataclass(frozen=True)
class BenchmarkSample:
    id: str
    kind: str
    seed: int  # the Flatland seed that rendered it
    instruction: str
    edit: Edit
    root: Path

    @property
    def source_path(self) -> Path:
        return sample_files(self.root, self.id)[0]

    @property
    def target_path(self) -> Path:
        return sample_files(self.root, self.id)[1]

    @property
    def masks_path(self) -> Path:
        return sample_files(self.root, self.id)[2]

    def source(self) -> Video:
        return read(self.source_path)

    def target(self) -> Video:
        return read(self.target_path)

    def masks(self) -> np.ndarray:
        """(F, H, W) bool, True where the edit may change pixels."""
        return load_file(str(self.masks_path))["masks"]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "seed": self.seed,
            "instruction": self.instruction,
            "edit": self.edit.to_json(),
        }


@dataclass(frozen=True)
class Benchmark:
    root: Path
    config: BenchmarkConfig
    samples: tuple[BenchmarkSample, ...]
    fingerprint: str  # hash of config and samples: two runs are comparable only on one fingerprint

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def pick(self, limit: int | None) -> list[int]:
        """Indices of the first `limit` samples taken kind by kind in turn (sample 0 of every kind, then
        sample 1, ...), in benchmark order: a smoke run of any size covers every edit kind, and a larger
        limit only adds samples. None: all."""
        if limit is None or limit >= len(self.samples):
            return list(range(len(self.samples)))
        rank: dict[str, int] = {}
        turns = []  # (place within its kind, kind's place, index)
        for index, sample in enumerate(self.samples):
            turns.append((rank.get(sample.kind, 0), self.config.kinds.index(sample.kind), index))
            rank[sample.kind] = rank.get(sample.kind, 0) + 1
        return sorted(index for *_, index in sorted(turns)[:limit])

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "fingerprint": self.fingerprint,
            "config": self.config.to_json(),
            "samples": len(self.samples),
        }


def sample_files(root: Path, sample: str) -> tuple[Path, Path, Path]:
    """Where sample `sample` of the benchmark at `root` keeps its source, ground truth and edit masks."""
    return (
        root / "sources" / f"{sample}.mp4",
        root / "truth" / f"{sample}.mp4",
        root / "truth" / f"{sample}.masks.safetensors",
    )


def sample_id(kind: str, index: int) -> str:
    return f"{kind}-{index:03d}"


def sample_seed(seed: int, kind: str, index: int, draw: int = 0) -> int:
    """The Flatland seed of sample `index` of `kind` (`draw` > 0: its redraws). It depends on the kind's place
    in EDIT_KINDS, not in the config, so a benchmark of some kinds holds the same samples as one of all kinds."""
    state = np.random.SeedSequence([seed, EDIT_KINDS.index(kind), index, draw]).generate_state(1)
    return int(state[0])


def build_flatland_benchmark(
    out_dir: str | os.PathLike[str], config: BenchmarkConfig = BenchmarkConfig(), *, progress: bool = True
) -> Benchmark:
    """Render and write a Flatland benchmark (see the module docstring) into `out_dir`; returns it loaded.

    `out_dir` must be empty or absent, or hold an interrupted build of the same config: that one continues
    where it stopped (samples already drawn are kept, the rest are rendered; rendering is seeded, so the result
    is the benchmark an uninterrupted build writes)."""
    if config.frames % 4 != 1:
        # An editor edits 4k + 1 frames (the causal video VAE's grid), so a new benchmark of another length
        # would come back shorter from every editor and fail every sample. (Checked when building, not in
        # the config: benchmarks of other lengths built before still load, e.g. for folders of edits.)
        raise ValueError(f"frames must be 4k + 1 (5, 9, 13, 17, ...) as editors edit, got {config.frames}")
    root = Path(out_dir)
    done = _claim(root, config)
    jobs = [(kind, i) for kind in config.kinds for i in range(config.per_kind)]
    samples, redrawn = [], 0
    with (root / PROGRESS).open("a") as log:
        for kind, index in track(jobs, description="rendering benchmark", disable=not progress):
            if (kind, index) in done:
                sample, draws = _from_row(root, done[(kind, index)]), done[(kind, index)]["draws"]
            else:
                sample, draws = _draw_sample(root, kind, index, config)
                log.write(json.dumps({"index": index, "draws": draws, **sample.to_json()}) + "\n")
                log.flush()
            samples.append(sample)
            redrawn += draws
    files.write_json_lines(root / INSTRUCTIONS, [_task(s) for s in samples])
    files.write_text(root / "README.md", _readme(config, len(samples)))
    manifest = {"format": FORMAT, "config": config.to_json(), "samples": [s.to_json() for s in samples]}
    manifest["fingerprint"] = _fingerprint(manifest)
    manifest["redrawn"] = redrawn
    files.write_json(root / MANIFEST, manifest)
    _finish(root)
    return load_benchmark(root)


def _claim(root: Path, config: BenchmarkConfig) -> dict[tuple[str, int], dict[str, Any]]:
    """Make `root` this build's folder; returns the samples an interrupted build of `config` already drew,
    by (kind, index). A folder holding anything else is refused, never written into."""
    pending = root / PENDING
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder; choose a new benchmark folder")
    files.remove_temporaries_of(pending)  # a build killed while writing it wrote nothing else
    if root.is_dir() and any(root.iterdir()):
        if (root / MANIFEST).is_file():
            _finish(root)  # killed after writing the manifest: its last two files may be left
            raise FileExistsError(
                f"{root} already holds a finished benchmark, not an empty folder; use it as it is or choose "
                "a new benchmark folder"
            )
        if not pending.is_file():
            raise FileExistsError(f"{root} exists and is not an empty folder; choose a new benchmark folder")
        changes = describe_changes(json.loads(pending.read_text()), config.to_json())
        if changes:
            raise FileExistsError(
                f"{root} holds an interrupted build of another benchmark config ({'; '.join(changes)}); "
                "choose a new folder"
            )
        for folder in (root, root / "sources", root / "truth"):  # the samples they were part of are redrawn
            files.remove_leftovers(folder)
        rows = _progress_rows(root / PROGRESS)
        return {
            (row["kind"], row["index"]): row
            for row in rows
            if all(p.is_file() for p in sample_files(root, row["id"]))
        }
    root.mkdir(parents=True, exist_ok=True)
    files.write_json(pending, config.to_json())
    (root / PROGRESS).write_text("")
    return {}


def _progress_rows(path: Path) -> list[dict[str, Any]]:
    """The samples an interrupted build logged (none when it was killed before it made the log); a line the
    kill cut short is dropped from the file, so the samples appended next are not glued onto it."""
    return files.read_json_lines(path, repair=True)


def _finish(root: Path) -> None:
    """Delete the files of a build under way, once its manifest is written."""
    (root / PROGRESS).unlink(missing_ok=True)
    (root / PENDING).unlink(missing_ok=True)


def _from_row(root: Path, row: dict[str, Any]) -> BenchmarkSample:
    return BenchmarkSample(
        row["id"], row["kind"], row["seed"], row["instruction"], Edit.from_json(row["edit"]), root
    )


def _draw_sample(root: Path, kind: str, index: int, config: BenchmarkConfig) -> tuple[BenchmarkSample, int]:
    """Sample `index` of `kind`, written to disk, and how many draws before it were rejected.

    A draw is kept only when the oracle judge, on the *encoded* videos, accepts the target and rejects the
    unedited source: 4:2:0 chroma can blur a thin shape (a small ring) past recognition, and a sample that
    even the ground truth fails would count against every editor."""
    for draw in range(_MAX_DRAWS):
        seed = sample_seed(config.seed, kind, index, draw)
        pair = make_pair(kind, size=config.size, frames=config.frames, fps=config.fps, seed=seed)
        sample = BenchmarkSample(sample_id(kind, index), kind, seed, pair.instruction, pair.edit, root)
        _write_sample(sample, pair, config)
        source, target = sample.source().frames, sample.target().frames
        if oracle_judge(source, target, sample.edit) and not oracle_judge(source, source, sample.edit):
            return sample, draw
    raise BenchmarkError(
        f"no {kind} sample the oracle judge can score after encoding in {_MAX_DRAWS} draws at size {config.shape[0]}x{config.shape[1]} "
        f"and {config.frames} frames: small shapes blur past recognition"
        + ("; use a larger --size (64 is safe)" if min(config.shape) < 64 else "")
    )


def load_benchmark(path: str | os.PathLike[str]) -> Benchmark:
    """A benchmark folder written by `build_flatland_benchmark` (or its manifest file); checks every file."""
    path = Path(path)
    manifest_path = path if path.is_file() else path / MANIFEST
    if not manifest_path.is_file():
        raise BenchmarkError(f"{path}: no {MANIFEST} (not a benchmark folder, or an interrupted build)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise BenchmarkError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    root = manifest_path.parent
    samples = tuple(
        BenchmarkSample(s["id"], s["kind"], s["seed"], s["instruction"], Edit.from_json(s["edit"]), root)
        for s in manifest["samples"]
    )
    missing = [
        str(p.relative_to(root))
        for s in samples
        for p in (s.source_path, s.target_path, s.masks_path)
        if not p.is_file()
    ]
    if missing:
        raise BenchmarkError(f"{root}: {len(missing)} benchmark files are missing: {_listing(missing)}")
    config = BenchmarkConfig.from_json(manifest["config"])
    return Benchmark(root, config, samples, manifest["fingerprint"])


def grow_masks(masks: np.ndarray, margin: int) -> np.ndarray:
    """(F, H, W) bool masks dilated by a disc of radius `margin` px in every frame."""
    if margin == 0:
        return masks
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in masks]).astype(bool)


def _write_sample(sample: BenchmarkSample, pair: PairSample, config: BenchmarkConfig) -> None:
    write(Video(pair.source, pair.fps), sample.source_path, crf=config.crf)
    write(Video(pair.target, pair.fps), sample.target_path, crf=config.crf)
    save_file({"masks": grow_masks(pair.masks, config.mask_margin)}, str(sample.masks_path))
    files.share(sample.masks_path)


def _task(sample: BenchmarkSample) -> dict[str, str]:
    return {"id": sample.id, "source": f"sources/{sample.id}.mp4", "instruction": sample.instruction}


def _fingerprint(manifest: dict[str, Any]) -> str:
    content = {"config": manifest["config"], "samples": manifest["samples"]}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _listing(items: list[str], limit: int = 10) -> str:
    """The first `limit` items and how many more, for error messages."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _readme(config: BenchmarkConfig, count: int) -> str:
    return f"""# Flatland editing benchmark

{count} edits ({config.per_kind} per kind: {", ".join(config.kinds)}), {config.shape[0]}x{config.shape[1]} px (HxW),
{config.frames} frames at {config.fps:g} fps, seed {config.seed}.

To evaluate another system, give it `instructions.jsonl` and `sources/`. For every line
`{{"id": ..., "source": "sources/<id>.mp4", "instruction": ...}}` it must write the edited video as
`<id>.mp4` into one folder, with the same frame count (a different picture size is resized back). Then:

    retake eval run THIS_FOLDER --videos THAT_FOLDER -o REPORT_FOLDER

`truth/` holds the ground-truth edits and masks used for scoring; do not show it to the system.
"""
