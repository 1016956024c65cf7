"""The curation pipeline for one shard of input videos: build the stages from a config, run every video
through them, and write the shard (tar + manifest part + stats) atomically.

probe -> basic_filter -> decode -> scene_split -> motion -> clips -> pairing -> [load_clips] -> instruct ->
verb_rewrite -> trivial_filter -> [load_clips] -> write

`load_clips` (clip frames at output resolution: cut from the frames the decode kept, or a second, partial
read) runs before `instruct` when the writer looks at pixels (VLM), else just before `write`, so pairs the
trivial filter drops are never decoded again.

The shard machinery (`ShardTask`, `process_shard`, `run_sample`) is shared with other dataset pipelines
(`retake synth`): a `ShardFamily` supplies a pipeline's config type, stages, manifest schema and row order;
`CURATION` is the curation pipeline's. A task names its family by import path, so any executor's worker can
rebuild it from the task's JSON alone.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from retake.data import shards
from retake.data.recipes import CurateConfig
from retake.data.records import (
    STATUS_DROPPED,
    Meta,
    Sample,
    Stage,
    StageError,
    error_from_exception,
    make_sample,
)
from retake.data.stages import (
    BasicFilter,
    Decode,
    Instruct,
    LoadClips,
    MotionScore,
    PairClips,
    Probe,
    SceneSplit,
    SplitClips,
    TrivialFilter,
    VerbRewrite,
    WriteShard,
)
from retake.data.stats import ShardStats
from retake.data.writers import InstructionWriter, make_writer

log = logging.getLogger(__name__)

CURATION_FAMILY = "retake.data.pipeline:CURATION"


class ShardWork(Protocol):
    """One shard's pipeline, built once per shard: it runs the shard's inputs one by one."""

    def run(self, path: Path, source: str) -> list[dict]:
        """The manifest rows of one input (its items are added to the shard's tar on the way)."""
        ...

    def totals(self, rows: list[dict]) -> dict[str, Any]:
        """The shard's stats once every input has run."""
        ...


class ShardFamily(Protocol):
    """What a dataset pipeline brings to the shared shard runner."""

    name: str  # the command, e.g. "curate": progress bars and run.json say it
    item: str  # what it makes, plural, e.g. "pairs"
    ok_key: str  # the stats key counting items written, e.g. "pairs_ok"
    schema: pa.Schema  # its manifest's columns
    sort_keys: list[tuple[str, str]]  # the merged manifest's order

    def config_from_dict(self, data: dict[str, Any]) -> Any: ...

    def prepare(self, config: Any, out: Path) -> Path | None:
        """Check the config before any worker starts (one clear error, not one per shard); returns the VLM
        cache folder the shards share, or None when they call no VLM."""
        ...

    def open_shard(self, task: ShardTask, sink: shards.TarSink) -> ShardWork: ...

    def row_order(self, row: dict) -> tuple: ...


def load_family(path: str) -> ShardFamily:
    """The family at "module:attribute" (imported on first use, so workers load only what they run)."""
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"unknown shard family {path!r}: {exc}") from None


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a shard's inputs, as (path, source) pairs, where to write it, and the family (import
    path of a `ShardFamily`) whose pipeline makes it."""

    shard: str
    inputs: tuple[tuple[str, str], ...]
    out: str
    config: Any  # the family's config: a frozen dataclass with to_dict()
    vlm_cache_dir: str | None = None
    family: str = CURATION_FAMILY

    def to_json(self) -> str:
        data = {**self.__dict__, "config": self.config.to_dict()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        data = json.loads(text)
        data["inputs"] = tuple(tuple(item) for item in data["inputs"])
        family = data.get("family", CURATION_FAMILY)
        data["config"] = load_family(family).config_from_dict(data["config"])
        return cls(**data)


@dataclass(frozen=True)
class ShardSummary:
    shard: str
    videos: int
    pairs: int  # items written to the tar (pairs when curating, triplets when synthesising)
    stats: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # True when a previous run had finished this shard


def build_stages(
    config: CurateConfig, writer: InstructionWriter, sink: shards.TarSink, shard: str
) -> list[Stage]:
    """The curation stages of one shard, in order: probe, filter, decode, split scenes, score motion, cut
    clips, pair them, write each pair's instruction, write the pairs to `sink` under `shard`."""
    load = LoadClips(short_side=config.output_short_side, skip_loop_filter=config.skip_loop_filter)
    stages: list[Stage] = [
        Probe(),
        BasicFilter(
            min_duration_s=config.min_duration_s,
            max_duration_s=config.max_duration_s,
            min_short_side=config.min_short_side,
            min_fps=config.min_fps,
            max_fps=config.max_fps,
        ),
        Decode(
            analysis_short_side=config.analysis_short_side,
            output_short_side=config.output_short_side,
            keep_budget_mb=config.keep_budget_mb,
            skip_loop_filter=config.skip_loop_filter,
        ),
        SceneSplit(
            content_threshold=config.content_threshold,
            fade_threshold=config.fade_threshold,
            min_scene_frames=config.min_scene_frames,
            margin_frames=config.scene_margin_frames,
        ),
        MotionScore(
            flow_max_side=config.flow_max_side,
            samples=config.motion_samples,
            min_motion=config.min_motion,
            target_fps=config.target_fps,
        ),
        SplitClips(clip_frames=config.clip_frames, target_fps=config.target_fps),
        PairClips(pairs_per_scene=config.pairs_per_scene, both_directions=config.both_directions),
    ]
    if writer.needs_pixels:
        stages.append(load)
    stages.append(Instruct(writer))
    if config.writer != "none":  # unlabelled pairs have nothing to rewrite or judge yet
        stages += [
            VerbRewrite(mode=config.verb_mode),
            TrivialFilter(min_words=config.min_words, max_words=config.max_words),
        ]
    if not writer.needs_pixels:
        stages.append(load)
    stages.append(
        WriteShard(sink, shard=shard, writer=writer.name, crf=config.crf, preset=config.encode_preset)
    )
    return stages


# After these stages a video with nothing left is dropped as a whole, with this reason.
_EMPTY_AFTER: dict[str, tuple[str, Callable[[Meta], bool]]] = {
    "scene_split": ("no_scenes", lambda m: not m.scenes),
    "motion": ("low_motion", lambda m: not m.scenes),
    "pairing": ("too_few_clips", lambda m: not m.pairs),
}


def run_sample(
    stages: list[Stage],
    sample: Sample,
    meta: Any = None,
    empty_after: dict[str, tuple[str, Callable[[Any], bool]]] = _EMPTY_AFTER,
) -> tuple[Any, Any, StageError | None]:
    """Run one input through the stages; the first error (or exception) ends it. Never raises for a bad
    input: a stage that crashes becomes an error named after the exception. `meta` starts empty (a curation
    `Meta()` unless a family passes its own); `empty_after` maps a stage to the (reason, test) that drops an
    input with nothing left after it."""
    meta = Meta() if meta is None else meta
    for stage in stages:
        try:
            sample, meta, error = stage(sample, meta)
        except Exception as exc:  # a bug or an unforeseen input must cost one row, not the shard
            log.warning("stage %s failed on %s", stage.name, sample.source, exc_info=True)
            error = error_from_exception(stage.name, exc)
        if error is None and stage.name in empty_after:
            reason, empty = empty_after[stage.name]
            if empty(meta):
                error = StageError(stage.name, reason, "", status=STATUS_DROPPED)
        if error is not None:
            return sample.without_pixels(), meta, error
    return sample.without_pixels(), meta, None


def sample_rows(
    sample: Sample, meta: Meta, error: StageError | None, *, shard: str, writer: str
) -> list[dict]:
    """Manifest rows of a finished video: one per pair, or one for the whole video when it yielded none."""
    if error is not None:
        return [shards.video_row(sample, meta, error, shard=shard, writer=writer)]
    return [shards.pair_row(sample, meta, p, shard=shard, writer=writer) for p in meta.pairs]


def process_shard(task: ShardTask) -> ShardSummary:
    """Run one shard, or return at once if a previous run finished it. The manifest part is renamed into
    place last: its presence is what marks the shard done, so a kill at any point leaves it redoable."""
    out = Path(task.out)
    family = load_family(task.family)
    part = shards.part_path(out, task.shard)
    if part.is_file():
        stats = shards.read_json(shards.stats_path(out, task.shard))
        return ShardSummary(task.shard, stats["videos"], stats[family.ok_key], stats, skipped=True)
    sink = shards.TarSink(shards.tar_path(out, task.shard))
    rows: list[dict] = []
    try:
        work = family.open_shard(task, sink)
        for path, source in task.inputs:
            rows += work.run(Path(path), source)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    totals = work.totals(rows)
    shards.write_json(shards.stats_path(out, task.shard), totals)
    shards.write_rows(sorted(rows, key=family.row_order), part, schema=family.schema)
    return ShardSummary(task.shard, len(task.inputs), totals[family.ok_key], totals)


class _CurationWork:
    """One shard of curation: the writer, the stages and the counts."""

    def __init__(self, task: ShardTask, sink: shards.TarSink) -> None:
        config: CurateConfig = task.config
        cache = Path(task.vlm_cache_dir) if task.vlm_cache_dir else None
        self.writer = make_writer(
            config.writer, vlm=config.vlm, frames_per_clip=config.vlm_frames_per_clip, cache_dir=cache
        )
        self.stages = build_stages(config, self.writer, sink, task.shard)
        self.seed = config.seed
        self.shard = task.shard
        self.stats = ShardStats()

    def run(self, path: Path, source: str) -> list[dict]:
        sample, meta, error = run_sample(self.stages, make_sample(path, source, self.seed))
        self.stats.add(meta, error)
        return sample_rows(sample, meta, error, shard=self.shard, writer=self.writer.name)

    def totals(self, rows: list[dict]) -> dict[str, Any]:
        totals = self.stats.to_dict(rows)
        if self.writer.spend():
            totals["vlm_spend"] = self.writer.spend()
        return totals


class CurationFamily:
    """The curation pipeline as a `ShardFamily`."""

    name = "curate"
    item = "pairs"
    ok_key = "pairs_ok"
    schema = shards.MANIFEST_SCHEMA
    sort_keys = shards.SORT_KEYS

    def config_from_dict(self, data: dict[str, Any]) -> CurateConfig:
        return CurateConfig.from_dict(data)

    def prepare(self, config: CurateConfig, out: Path) -> Path | None:
        cache = Path(config.vlm.cache_dir) if config.vlm.cache_dir else out / "vlm_cache"
        # Fail here, in one line, on a misconfigured writer (no VLM endpoint...) rather than in every worker.
        make_writer(
            config.writer, vlm=config.vlm, frames_per_clip=config.vlm_frames_per_clip, cache_dir=cache
        )
        return cache if config.writer == "vlm" else None

    def open_shard(self, task: ShardTask, sink: shards.TarSink) -> ShardWork:
        return _CurationWork(task, sink)

    def row_order(self, row: dict) -> tuple:
        return _row_order(row)


CURATION = CurationFamily()


def process_shard_json(task: str) -> str:
    """`process_shard` on a JSON task, answering JSON: plain strings cross any executor's wire (Ray Data
    keeps them as Arrow strings instead of falling back to pickled objects)."""
    summary = process_shard(ShardTask.from_json(task))
    return json.dumps(summary.__dict__, sort_keys=True)


def _row_order(row: dict) -> tuple:
    return (
        row["source_video"],
        row["scene"] if row["scene"] is not None else -1,
        row["pair"] or 0,
        row["pair_id"],
    )
