"""The records of the paired-data factory: one `SynthSample` (a source video or still image and the pixels made
from it), its `SynthMeta` (small facts: probe, frames, triplets, drops) and one `Triplet` per (source, edited,
instruction) it yields.

Stages follow the curation contract `(sample, meta) -> (sample, meta, error)` (retake.data.records): a bad
input becomes a `StageError`, a triplet turned away keeps its row with a status, a stage and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from retake.data.records import STATUS_DROPPED, STATUS_OK, Drop, make_sample
from retake.video import VideoInfo

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


@dataclass(frozen=True)
class Triplet:
    """(source, edited, instruction): what one edit of one input became. `edit` is what the edit's maker
    needs to redo it, as JSON (the structured Flatland edit, or the precomputed file's name); `scores` and
    `metrics` are what selection and the filters measured."""

    index: int
    instruction: str
    edit_type: str = ""  # "remove" | "add" | "replace" (icve-sft), the Flatland edit kind, or "" (free text)
    seed: int = 0
    status: str = STATUS_OK
    stage: str = ""  # the stage that dropped it, if any
    reason: str = ""
    detail: str = ""
    edit: dict[str, Any] | None = None
    strength: float | None = None  # the chosen candidate's guidance strength
    candidates: int = 0  # how many candidate first frames selection saw
    scores: tuple[float, ...] = ()  # selection's score per candidate
    metrics: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def dropped(self, stage: str, reason: str, detail: str = "") -> Triplet:
        return replace(self, status=STATUS_DROPPED, stage=stage, reason=reason, detail=detail[:300])

    def measured(self, **metrics: float) -> Triplet:
        return replace(self, metrics={**self.metrics, **{k: float(v) for k, v in metrics.items()}})


@dataclass(frozen=True)
class Candidate:
    """One edited first frame (H, W, 3) uint8, made at guidance `strength` (None: the editor has no knob)."""

    image: np.ndarray
    strength: float | None = None


@dataclass(frozen=True)
class MaskedObject:
    """An object to edit in a video: its label ("red star", "dog"), per-frame masks (F, H, W) bool and what
    its source knows besides (the Flatland object id ...)."""

    label: str
    masks: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class SynthSample:
    """One input. `frames` (F, H, W, 3) uint8 RGB is the source clip (a still is animated into one);
    `first` the picture the image editor edits (frame 0, or the whole still); per triplet index: the editor's
    `candidates`, the `chosen` edited first frame, the `sources` and `targets` the triplet is written with.
    Those dicts are filled in place, stage by stage: a sample belongs to the one run that made it."""

    key: str
    path: Path
    source: str
    seed: int
    frames: np.ndarray | None = None
    first: np.ndarray | None = None
    still: np.ndarray | None = None  # (H, W, 3) the full still image of an image input
    objects: tuple[MaskedObject, ...] = ()
    candidates: dict[int, list[Candidate]] = field(default_factory=dict)
    chosen: dict[int, np.ndarray] = field(default_factory=dict)
    sources: dict[int, np.ndarray] = field(default_factory=dict)
    targets: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def is_still(self) -> bool:
        return self.path.suffix.lower() in IMAGE_EXTENSIONS

    def source_of(self, index: int) -> np.ndarray:
        """The source clip of triplet `index` (its own when set, e.g. a reversed pair, else the input's)."""
        return self.sources.get(index, self.frames)

    def without_pixels(self) -> SynthSample:
        return replace(
            self,
            frames=None,
            first=None,
            still=None,
            objects=(),
            candidates={},
            chosen={},
            sources={},
            targets={},
        )


@dataclass(frozen=True)
class SynthMeta:
    """Small facts about a sample, filled in stage by stage."""

    info: VideoInfo | None = None  # probe of a video input (None for stills)
    kind: str = "video"  # "video" | "image"
    fps: float | None = None  # rate of `frames`
    frame_indices: tuple[int, ...] = ()  # native frame of each frame of `frames` (oracles re-render these)
    size: tuple[int, int] | None = None  # (H, W) of `frames`
    source_metrics: dict[str, float] = field(default_factory=dict)
    objects: int = 0  # objects found (icve-sft), then objects that passed the mask filter
    triplets: tuple[Triplet, ...] = ()
    drops: tuple[Drop, ...] = ()
    frames_analysed: int = 0

    def dropped(self, stage: str, reason: str, unit: str, count: int = 1) -> SynthMeta:
        if count <= 0:
            return self
        return replace(self, drops=(*self.drops, Drop(stage, reason, unit, count)))

    def with_triplets(self, triplets: list[Triplet] | tuple[Triplet, ...]) -> SynthMeta:
        return replace(self, triplets=tuple(triplets))

    @property
    def live(self) -> list[Triplet]:
        """The triplets still in the running."""
        return [t for t in self.triplets if t.ok]


def new_sample(path: Path, source: str, global_seed: int) -> SynthSample:
    """A fresh sample whose key and seed depend only on how the input is listed and the global seed (the
    curation pipeline's rule, so keys agree across both)."""
    base = make_sample(path, source, global_seed)
    return SynthSample(key=base.key, path=path, source=source, seed=base.seed)
