"""The records that flow through the curation pipeline: one `Sample` (an input video and its decoded pixels),
its `Meta` (everything learnt about it: probe, scenes, clips, pairs, drops) and a `StageError`.

Every stage is a callable `(sample, meta) -> (sample, meta, error)`. Pixels live on `Sample`, so they are
decoded once and shared by the stages that need them; `Meta` holds only small, serialisable facts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from retake.video import VideoInfo

# Where a row stands in the manifest: an emitted pair, a pair or video dropped on purpose, or a broken input.
STATUS_OK = "ok"
STATUS_DROPPED = "dropped"
STATUS_ERROR = "error"


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts; the same parts give the same seed on every machine and run
    (Python's hash() is salted per process, so it cannot be used for this)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class StageError:
    """Why a stage gave up on a sample; it becomes an error row (and a count in the stats)."""

    stage: str
    reason: str  # short machine-friendly key, e.g. "not_media", "no_video_stream"
    detail: str = ""  # one human line (never holds secrets)
    status: str = STATUS_ERROR  # STATUS_DROPPED when a filter turned the video away on purpose


@dataclass(frozen=True)
class Drop:
    """A counted, deliberate removal: `count` units ("video", "scene" or "pair") left at `stage` for `reason`."""

    stage: str
    reason: str
    unit: str
    count: int = 1


@dataclass(frozen=True)
class Scene:
    """A shot: native frames [start, end) of the source (decode order), with its motion score once known."""

    index: int
    start: int
    end: int
    motion: float | None = None

    @property
    def num_frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Clip:
    """N output frames of one scene: `frames` are native frame indices (sampled at the target fps), all
    inside [start, end), which never leaves the scene."""

    index: int
    scene: int
    start: int
    end: int
    frames: tuple[int, ...]


@dataclass(frozen=True)
class Pair:
    """(original, pseudo-edited) = (src, tgt): two clips of one scene and the instruction turning src into tgt."""

    index: int
    scene: int
    src: Clip
    tgt: Clip
    seed: int
    instruction: str | None = None
    status: str = STATUS_OK
    stage: str = ""  # the stage that dropped it, if any
    reason: str = ""
    detail: str = ""  # one human line on why (never holds secrets)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def key(self) -> str:
        return f"s{self.scene:04d}-p{self.index:03d}"


@dataclass(frozen=True, eq=False)
class Sample:
    """One input video. `frames` are the analysis frames (F, h, w, 3) uint8 RGB, decoded once and shared;
    `full`, when the video is short enough to keep, is every frame at output resolution (F, H, W, 3);
    `clips` maps a clip index to its frames at output resolution (N, H, W, 3) uint8 RGB."""

    key: str  # stable id of the input, used in pair ids and tar member names
    path: Path
    source: str  # the input as listed (relative to the input root), written to the manifest
    seed: int
    frames: np.ndarray | None = None
    full: np.ndarray | None = None
    clips: dict[int, np.ndarray] = field(default_factory=dict)

    def without_pixels(self) -> Sample:
        """Drop the decoded arrays so a finished sample does not hold memory while its shard goes on."""
        return replace(self, frames=None, full=None, clips={})


@dataclass(frozen=True)
class Meta:
    """Small facts about a sample, filled in stage by stage."""

    info: VideoInfo | None = None  # set by the probe stage
    analysis_fps: float | None = None
    clip_fps: float | None = None  # the rate clips are sampled at (target fps, or native when slower)
    output_size: tuple[int, int] | None = None  # (H, W) of the written clips
    cuts: tuple[int, ...] = ()  # native frames where a new scene starts (hard cuts and fades), 0 excluded
    scenes: tuple[Scene, ...] = ()
    clips: tuple[Clip, ...] = ()
    pairs: tuple[Pair, ...] = ()
    drops: tuple[Drop, ...] = ()
    frames_analysed: int = 0

    def dropped(self, stage: str, reason: str, unit: str, count: int = 1) -> Meta:
        if count <= 0:
            return self
        return replace(self, drops=(*self.drops, Drop(stage, reason, unit, count)))


StageResult = tuple[Sample, Meta, StageError | None]


class Stage(Protocol):
    """One step of the pipeline. A stage never raises for a bad input: it returns a `StageError`."""

    name: str

    def __call__(self, sample: Sample, meta: Meta) -> StageResult: ...


def make_sample(path: Path, source: str, global_seed: int) -> Sample:
    """A fresh sample whose key and seed depend only on how the input is listed and the global seed, so any
    executor, worker count or restart gives it the same randomness."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    return Sample(key=key, path=path, source=source, seed=stable_seed(global_seed, source))


def error_from_exception(stage: str, exc: BaseException) -> StageError:
    """A StageError naming the exception type as the reason: MissingFileError -> "missing_file", etc."""
    name = type(exc).__name__.removesuffix("Error") or type(exc).__name__
    reason = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return StageError(stage, reason, str(exc).splitlines()[0][:300] if str(exc) else name)
