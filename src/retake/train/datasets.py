"""Training triplets (source clip, target clip, instruction) from the dataset formats retake writes.

One protocol, `TripletDataset` (`len`, `ids`, `kinds`, `load(index) -> Triplet`), keeps the trainer and the
cache format-free; one adapter per format:

- `FlatlandPairs`: `retake.flatland.make_pairs` output (source and target mp4 per sample, manifest.jsonl).
- `CuratedPairs`: `retake curate` or `retake synth` output (manifest.parquet + WebDataset tar shards); clip A
  (or the source) is the source, clip B the target; rows without an instruction are left out; a synth
  triplet's `edit_type` is its kind.

`load` raises `SampleError` for a corrupt or missing sample, so callers skip and count it instead of crashing;
its reason starts with the kind of problem ("cannot read video: ..."), the text before the first ':' that
skip counts are keyed by.
Clips are read with `retake.video.read` at the stage's size (cover + centre crop) and cut to its frame count.
"""

from __future__ import annotations

import json
import math
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from retake import video
from retake.errors import RetakeError


class SampleError(RetakeError):
    """One sample cannot be used (missing file, undecodable video, too short); the loader skips and counts it."""

    def __init__(self, sample_id: str, reason: str) -> None:
        super().__init__(f"sample {sample_id!r}: {reason}")
        self.sample_id = sample_id
        self.reason = reason

    def __reduce__(self):  # the default pickling would call __init__ with the message alone
        return type(self), (self.sample_id, self.reason)


@dataclass(frozen=True)
class Triplet:
    """One training example: `source` and `target` (F, H, W, 3) uint8 of equal shape, and the instruction."""

    id: str
    source: np.ndarray
    target: np.ndarray
    instruction: str

    def __post_init__(self) -> None:
        if self.source.shape != self.target.shape or self.source.ndim != 4 or self.source.shape[-1] != 3:
            raise ValueError(
                f"triplet {self.id!r}: source {self.source.shape} and target {self.target.shape} must be equal "
                "(F, H, W, 3) arrays"
            )


class TripletDataset(Protocol):
    """Indexable triplets; `load` raises SampleError for an unusable sample."""

    def __len__(self) -> int: ...

    def ids(self) -> list[str]: ...

    def kinds(self) -> list[str | None]:
        """Each sample's edit kind ("add", "style", ...), None where the dataset does not say; a stage can
        train on some kinds only (`data.kinds`)."""
        ...

    def load(self, index: int) -> Triplet: ...


@dataclass(frozen=True)
class ClipSpec:
    """How clips are decoded for a stage: exactly `frames` frames at (H, W) = `size`."""

    frames: int
    size: tuple[int, int]


# Errors that mean "this sample is unusable" rather than "the program is wrong".
_SAMPLE_ERRORS = (video.VideoError, OSError, ValueError, KeyError, json.JSONDecodeError, tarfile.TarError)


def read_clip(path: Path, spec: ClipSpec, sample_id: str) -> np.ndarray:
    """(spec.frames, H, W, 3) uint8 from the start of a video file; SampleError when unusable or too short."""
    try:
        clip = video.read(path, size=spec.size, max_frames=spec.frames).frames
    except _SAMPLE_ERRORS as exc:
        raise SampleError(sample_id, f"cannot read video: {path.name}: {exc}") from exc
    if clip.shape[0] < spec.frames:
        raise SampleError(
            sample_id,
            f"too few frames: {path.name} has {clip.shape[0]} frames, the stage needs {spec.frames}",
        )
    return clip


def read_clip_bytes(data: bytes, spec: ClipSpec, sample_id: str, name: str) -> np.ndarray:
    """`read_clip` for an mp4 held in memory (a tar member): PyAV reads it from a temporary file."""
    with tempfile.NamedTemporaryFile(suffix=".mp4", prefix="retake-clip-") as handle:
        handle.write(data)
        handle.flush()
        try:
            return read_clip(Path(handle.name), spec, sample_id)
        except SampleError as exc:
            raise SampleError(sample_id, exc.reason.replace(Path(handle.name).name, name)) from exc


# ----------------------------------------------------------------------------------------------------------
# Flatland pairs
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _FlatlandEntry:
    id: str
    source: Path
    target: Path
    instruction: str | None  # None: the manifest gives no text for it, so the sample is unusable
    kind: str | None
    size: tuple[int, int] | None = None  # (H, W) of its videos, when the manifest says


class FlatlandPairs:
    """Paired Flatland edits written by `retake.flatland.make_pairs`: per sample a source and a target mp4 and
    the instruction, listed in the folder's manifest."""

    def __init__(self, root: str | Path, spec: ClipSpec) -> None:
        self.root = Path(root).expanduser()
        self.spec = spec
        self.entries = _flatland_entries(self.root)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def kinds(self) -> list[str | None]:
        return [e.kind for e in self.entries]

    def load(self, index: int) -> Triplet:
        entry = self.entries[index]
        if entry.instruction is None:  # not "None" as a prompt; "" is a deliberate empty prompt and is kept
            raise SampleError(entry.id, f"no instruction: its {FLATLAND_MANIFEST} record gives no text")
        source = read_clip(entry.source, self.spec, entry.id)
        target = read_clip(entry.target, self.spec, entry.id)
        return Triplet(entry.id, source, target, entry.instruction)


# One record per line: id, source, target (relative paths), instruction; optionally the edit's kind.
FLATLAND_MANIFEST = "manifest.jsonl"


def _flatland_entries(root: Path) -> list[_FlatlandEntry]:
    manifest = root / FLATLAND_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"no Flatland pairs manifest ({FLATLAND_MANIFEST}) in {root}")
    entries: list[_FlatlandEntry] = []
    lines: dict[str, int] = {}  # sample id -> its line, to name both lines of a repeated id
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest}, line {number}"
        entry = _flatland_entry(root, _manifest_record(line, where), where)
        if entry.id in lines:  # one id for two samples would mix them up in a cache's ids and kinds
            raise ValueError(
                f"{where}: sample id {entry.id!r} repeats line {lines[entry.id]}; ids must be unique"
            )
        lines[entry.id] = number
        entries.append(entry)
    return entries


def _manifest_record(line: str, where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: not a JSON object (need id, source, target, instruction)")
    return record


def _flatland_entry(root: Path, record: dict, where: str) -> _FlatlandEntry:
    lacking = [k for k in ("id", "source", "target") if record.get(k) is None or record.get(k) == ""]
    if lacking:
        raise ValueError(
            f"{where}: the sample lacks {', '.join(lacking)} (need id, source, target, instruction)"
        )
    instruction, kind = record.get("instruction"), record.get("kind")
    return _FlatlandEntry(
        str(record["id"]),
        root / str(record["source"]),
        root / str(record["target"]),
        instruction if isinstance(instruction, str) else None,  # missing, null or not text: a bad sample
        None if kind is None else str(kind),
        _record_size(record.get("size")),
    )


def _record_size(size: object) -> tuple[int, int] | None:
    """A manifest record's [H, W]; None when it has none (or not two positive ints: then nothing is checked)."""
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return size[0], size[1]
    return None


_MAX_CROP = 0.03  # share of a side that cover-resizing may cut off a Flatland pair (rounding, not content)


def check_flatland_crop(triplets: TripletDataset, multiple: int = 1) -> None:
    """ValueError when Flatland pairs would be resized to another aspect ratio. Clips are resized to cover the
    stage's size and centre-cropped: fine for real video, but a pair's edited object is only guaranteed in
    view in the whole frame, so a crop can cut it out and leave an instruction about nothing visible.
    multiple: the sizes the VAE takes (its spatial compression), so that the sizes suggested are ones it takes."""
    if not isinstance(triplets, FlatlandPairs):
        return
    height, width = triplets.spec.size
    for entry in triplets.entries:
        if entry.size is None:
            continue
        h, w = entry.size
        cropped = _cropped_share((h, w), (height, width))
        if cropped > _MAX_CROP:
            fits = " or ".join(f"{a}x{b}" for a, b in _sizes_in_shape((h, w), height * width, multiple))
            fits = f", e.g. {fits}" if fits else ""
            raise ValueError(
                f"Flatland pairs in {triplets.root} are {h}x{w} (HxW), but the clip size (--size, data.size) "
                f"{height}x{width} has another aspect ratio: resizing would crop {math.ceil(cropped * 1000) / 10:.1f}% of a side "
                f"(at most {_MAX_CROP:.0%}), and with it maybe the edited object; use a size of the pairs' "
                f"shape{f' in multiples of {multiple} px' if multiple > 1 else ''}{fits}"
            )


def _cropped_share(clip: tuple[int, int], size: tuple[int, int]) -> float:
    """Share of a side of an (h, w) clip that cover-resizing to `size` and centre-cropping cuts off."""
    scale = max(size[0] / clip[0], size[1] / clip[1])
    return 1 - min(size[0] / (clip[0] * scale), size[1] / (clip[1] * scale))


def _sizes_in_shape(clip: tuple[int, int], area: int, multiple: int, count: int = 2) -> list[tuple[int, int]]:
    """Up to `count` sizes in multiples of `multiple` that crop an (h, w) clip by at most _MAX_CROP, nearest in
    area to `area` first."""
    h, w = clip
    found = []
    for height in range(multiple, max(4 * h, 4 * round(area**0.5), 64 * multiple) + 1, multiple):
        width = max(multiple, round(height * w / h / multiple) * multiple)
        if _cropped_share(clip, (height, width)) <= _MAX_CROP:
            found.append((height, width))
    return sorted(found, key=lambda s: (abs(np.log(s[0] * s[1] / area)), s))[:count]


# ----------------------------------------------------------------------------------------------------------
# `retake curate` output
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Member:
    tar: Path
    offset: int
    size: int


@dataclass(frozen=True)
class _CuratedEntry:
    id: str
    shard: str
    instruction: str
    kind: str | None = None  # a `retake synth` triplet's edit_type; None for an unpaired clip pair


class CuratedPairs:
    """Unpaired-clip pairs curated by `retake curate`: clip A (`<id>.src.mp4`) is the source, clip B
    (`<id>.tgt.mp4`) the target, the manifest row's instruction the prompt. Only rows with status 'ok' and a
    non-empty instruction are training samples; `unlabelled` counts the ok rows left out for lack of one."""

    def __init__(self, root: str | Path, spec: ClipSpec) -> None:
        from retake.data.shards import read_manifest

        self.root = Path(root).expanduser()
        self.spec = spec
        rows = read_manifest(self.root).to_pylist()
        ok = [r for r in rows if r["status"] == "ok"]
        self.entries = [
            _CuratedEntry(r["pair_id"], r["shard"], r["instruction"].strip(), r.get("edit_type") or None)
            for r in ok
            if (r["instruction"] or "").strip()
        ]
        self.unlabelled = len(ok) - len(self.entries)
        if not self.entries:
            raise ValueError(_no_samples(self.root, len(rows), self.unlabelled))
        self._members: dict[str, dict[str, _Member]] = {}  # shard -> member name -> location, built lazily

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def kinds(self) -> list[str | None]:
        # A `retake synth` manifest names each triplet's edit (add, remove ...); an unpaired clip pair of
        # `retake curate` (no edit_type column) is no edit of a named kind.
        return [e.kind for e in self.entries]

    def load(self, index: int) -> Triplet:
        entry = self.entries[index]
        clips = [self._clip(entry, part) for part in ("src", "tgt")]
        return Triplet(entry.id, clips[0], clips[1], entry.instruction)

    def _clip(self, entry: _CuratedEntry, part: str) -> np.ndarray:
        name = f"{entry.id}.{part}.mp4"
        try:
            member = self._index(entry.shard)[name]
            with member.tar.open("rb") as handle:
                handle.seek(member.offset)
                data = handle.read(member.size)
        except _SAMPLE_ERRORS as exc:
            raise SampleError(
                entry.id, f"cannot read video: {name} from shard {entry.shard}: {exc!r}"
            ) from exc
        return read_clip_bytes(data, self.spec, entry.id, name)

    def _index(self, shard: str) -> dict[str, _Member]:
        """Byte ranges of a shard's members, read once, so a sample costs one seek instead of a tar scan."""
        if shard not in self._members:
            from retake.data.shards import tar_path

            path = tar_path(self.root, shard)
            with tarfile.open(path, "r") as tar:
                self._members[shard] = {
                    m.name: _Member(path, m.offset_data, m.size) for m in tar if m.isfile()
                }
        return self._members[shard]


def _no_samples(root: Path, rows: int, unlabelled: int) -> str:
    """Why a `retake curate`/`retake synth` folder has no training sample, and what to change."""
    if unlabelled:  # `retake curate --writer none` (its default) writes pairs without instructions
        return (
            f"{root}: none of its {unlabelled} pairs has an instruction to train on (curated with "
            "--writer none?); curate again with --writer vlm (or flatland for Flatland footage)"
        )
    return f"{root}: no usable samples (none of its {rows} manifest rows has status 'ok'; see its stats.json)"


# ----------------------------------------------------------------------------------------------------------
# opening by format
# ----------------------------------------------------------------------------------------------------------
def detect_format(root: Path) -> str:
    """'curated' for a `retake curate` folder, 'flatland' for Flatland pairs; ValueError otherwise."""
    if (root / "manifest.parquet").is_file():
        return "curated"
    if (root / FLATLAND_MANIFEST).is_file():
        return "flatland"
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    raise ValueError(
        f"{root}: neither a `retake curate` output (manifest.parquet) nor Flatland pairs (manifest)"
    )


def open_triplets(root: str | Path, spec: ClipSpec, format: str = "auto") -> TripletDataset:
    """The adapter for the dataset at `root` ('auto' detects the format)."""
    root = Path(root).expanduser()
    kind = detect_format(root) if format == "auto" else format
    if kind == "curated":
        return CuratedPairs(root, spec)
    if kind == "flatland":
        return FlatlandPairs(root, spec)
    raise ValueError(f"unknown dataset format {format!r}; expected auto, flatland or curated")


class InMemoryTriplets:
    """Triplets already in memory (tests, notebooks); a None entry stands for a broken sample."""

    def __init__(
        self,
        triplets: Sequence[Triplet | None],
        ids: Sequence[str] | None = None,
        kinds: Sequence[str | None] | None = None,
    ) -> None:
        self.triplets = list(triplets)
        self._ids = (
            list(ids) if ids is not None else [t.id if t else f"broken-{i}" for i, t in enumerate(triplets)]
        )
        self._kinds = list(kinds) if kinds is not None else [None] * len(self.triplets)
        if len(self._ids) != len(self.triplets) or len(self._kinds) != len(self.triplets):
            raise ValueError(
                f"{len(self.triplets)} triplets need as many ids and kinds, got {len(self._ids)} and "
                f"{len(self._kinds)}"
            )

    def __len__(self) -> int:
        return len(self.triplets)

    def ids(self) -> list[str]:
        return list(self._ids)

    def kinds(self) -> list[str | None]:
        return list(self._kinds)

    def load(self, index: int) -> Triplet:
        triplet = self.triplets[index]
        if triplet is None:
            raise SampleError(self._ids[index], "marked broken")
        return triplet
