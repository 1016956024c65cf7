"""Stages `read` and `source_filter`: read an input (the first 4k+1 frames of a video at the output size, or a
still animated along a camera path) and turn away sources not worth editing (first filter)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retake import video
from retake.data.records import STATUS_DROPPED, StageError, error_from_exception, stable_seed
from retake.data.stages.basic_filter import BasicFilter
from retake.synth import stills
from retake.synth.filters import frame_metrics, motion_metric, source_reason
from retake.synth.recipes import SourceConfig, StillsConfig
from retake.synth.records import SynthMeta, SynthSample
from retake.synth.sources import UnreadableImageError, read_clip, read_still

StageResult = tuple[SynthSample, SynthMeta, StageError | None]


def still_path(sample: SynthSample, config: StillsConfig) -> stills.CameraPath:
    """The camera path of a still input: drawn from the sample's seed, so every stage gets the same one."""
    height, width = sample.still.shape[:2]
    return stills.camera_path(
        height, width, config, np.random.default_rng(stable_seed(sample.seed, "camera"))
    )


class ReadSource:
    name = "read"

    def __init__(self, source: SourceConfig, still_config: StillsConfig | None) -> None:
        self.config = source
        self.stills = still_config  # None: this recipe takes videos only
        self.basic = BasicFilter(
            min_duration_s=source.min_duration_s,
            max_duration_s=source.max_duration_s,
            min_short_side=source.min_short_side,
            min_fps=source.min_fps,
            max_fps=source.max_fps,
        )

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        if sample.is_still:
            return self.read_still(sample, meta)
        try:
            info = video.probe(sample.path)
        except (video.VideoError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        meta = replace(meta, info=info)
        rejected = self.basic.reject_reason(info)
        if rejected is not None:
            return sample, meta, StageError(self.name, *rejected, status=STATUS_DROPPED)
        try:
            frames, fps, indices = read_clip(
                sample.path,
                info,
                frames=self.config.clip_frames,
                short_side=self.config.short_side,
                fps=self.config.target_fps,
            )
        except (video.VideoError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        if len(frames) < self.config.min_frames:
            detail = f"{len(frames)} frames (4k+1) < {self.config.min_frames}"
            return sample, meta, StageError(self.name, "too_short", detail, status=STATUS_DROPPED)
        meta = replace(
            meta, fps=fps, frame_indices=indices, size=frames.shape[1:3], frames_analysed=len(frames)
        )
        return replace(sample, frames=frames, first=frames[0]), meta, None

    def read_still(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        meta = replace(meta, kind="image")
        if self.stills is None or not self.stills.enabled:
            return sample, meta, StageError(self.name, "stills_disabled", "", status=STATUS_DROPPED)
        try:
            image = read_still(sample.path)
        except (UnreadableImageError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        if min(image.shape[:2]) < self.config.min_short_side:
            detail = f"{image.shape[1]}x{image.shape[0]}: short side < {self.config.min_short_side}"
            return sample, meta, StageError(self.name, "low_resolution", detail, status=STATUS_DROPPED)
        sample = replace(sample, still=image, first=image)
        size = stills.still_clip_size(*image.shape[:2], self.stills, self.config.short_side)
        frames = stills.animate(image, still_path(sample, self.stills), size)  # (F, h, w, 3)
        fps = self.config.target_fps or 8.0
        meta = replace(meta, fps=fps, size=size, frame_indices=tuple(range(len(frames))), frames_analysed=1)
        return replace(sample, frames=frames), meta, None


class SourceFilter:
    name = "source_filter"

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        still = meta.kind == "image"
        # A still is judged on the image itself; its animation adds nothing to know.
        metrics = frame_metrics(sample.still[None] if still else sample.frames)
        if not still:
            metrics["motion"] = motion_metric(sample.frames, self.config.flow_max_side)
        meta = replace(meta, source_metrics=metrics)
        verdict = source_reason(metrics, self.config, still=still)
        if verdict is None:
            return sample, meta, None
        return sample, meta, StageError(self.name, *verdict, status=STATUS_DROPPED)
