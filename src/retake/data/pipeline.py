"""The curation pipeline for one shard of input videos: build the stages from a config, run every video
through them, and write the shard (tar + manifest part + stats) atomically.

probe -> basic_filter -> decode -> scene_split -> motion -> clips -> pairing -> [load_clips] -> instruct ->
verb_rewrite -> trivial_filter -> [load_clips] -> write

`load_clips` (clip frames at output resolution: cut from the frames the decode kept, or a second, partial
read) runs before `instruct` when the writer looks at pixels (VLM), else just before `write`, so pairs the
trivial filter drops are never decoded again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a shard's input videos, as (path, source) pairs, and where to write it."""

    shard: str
    inputs: tuple[tuple[str, str], ...]
    out: str
    config: CurateConfig
    vlm_cache_dir: str | None = None

    def to_json(self) -> str:
        data = {**self.__dict__, "config": self.config.to_dict()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        data = json.loads(text)
        data["inputs"] = tuple(tuple(item) for item in data["inputs"])
        data["config"] = CurateConfig.from_dict(data["config"])
        return cls(**data)


@dataclass(frozen=True)
class ShardSummary:
    shard: str
    videos: int
    pairs: int  # pairs written to the tar
    stats: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # True when a previous run had finished this shard


def build_stages(
    config: CurateConfig, writer: InstructionWriter, sink: shards.TarSink, shard: str
) -> list[Stage]:
    load = LoadClips(short_side=config.output_short_side)
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


def run_sample(stages: list[Stage], sample: Sample) -> tuple[Sample, Meta, StageError | None]:
    """Run one video through the stages; the first error (or exception) ends it. Never raises for a bad
    input: a stage that crashes becomes an error named after the exception."""
    meta = Meta()
    for stage in stages:
        try:
            sample, meta, error = stage(sample, meta)
        except Exception as exc:  # a bug or an unforeseen input must cost one row, not the shard
            log.warning("stage %s failed on %s", stage.name, sample.source, exc_info=True)
            error = error_from_exception(stage.name, exc)
        if error is None and stage.name in _EMPTY_AFTER:
            reason, empty = _EMPTY_AFTER[stage.name]
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
    """Curate one shard, or return at once if a previous run finished it. The manifest part is renamed into
    place last: its presence is what marks the shard done, so a kill at any point leaves it redoable."""
    out = Path(task.out)
    part = shards.part_path(out, task.shard)
    if part.is_file():
        stats = shards.read_json(shards.stats_path(out, task.shard))
        return ShardSummary(task.shard, stats["videos"], stats["pairs_ok"], stats, skipped=True)
    config = task.config
    cache = Path(task.vlm_cache_dir) if task.vlm_cache_dir else None
    writer = make_writer(
        config.writer, vlm=config.vlm, frames_per_clip=config.vlm_frames_per_clip, cache_dir=cache
    )
    sink = shards.TarSink(shards.tar_path(out, task.shard))
    stages = build_stages(config, writer, sink, task.shard)
    rows: list[dict] = []
    stats = ShardStats()
    try:
        for path, source in task.inputs:
            sample = make_sample(Path(path), source, config.seed)
            sample, meta, error = run_sample(stages, sample)
            rows += sample_rows(sample, meta, error, shard=task.shard, writer=writer.name)
            stats.add(meta, error)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    totals = stats.to_dict(rows)
    if writer.spend():
        totals["vlm_spend"] = writer.spend()
    shards.atomic_write_json(shards.stats_path(out, task.shard), totals)
    shards.write_rows(sorted(rows, key=_row_order), part)
    return ShardSummary(task.shard, len(task.inputs), totals["pairs_ok"], totals)


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
