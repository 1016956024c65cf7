"""Stage `basic_filter`: turn away videos that are too short or too long, too small, or at an odd frame rate."""

from __future__ import annotations

from retake.data.records import STATUS_DROPPED, Meta, Sample, StageError, StageResult
from retake.video import VideoInfo


class BasicFilter:
    name = "basic_filter"

    def __init__(
        self,
        *,
        min_duration_s: float,
        max_duration_s: float,
        min_short_side: int,
        min_fps: float,
        max_fps: float,
    ) -> None:
        self.min_duration_s = min_duration_s
        self.max_duration_s = max_duration_s
        self.min_short_side = min_short_side
        self.min_fps = min_fps
        self.max_fps = max_fps

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        reason = self.reject_reason(meta.info)
        if reason is None:
            return sample, meta, None
        return sample, meta, StageError(self.name, reason[0], reason[1], status=STATUS_DROPPED)

    def reject_reason(self, info: VideoInfo) -> tuple[str, str] | None:
        """(reason, detail) when `info` fails a threshold, else None."""
        if info.duration < self.min_duration_s:
            return "too_short", f"{info.duration:.2f} s < {self.min_duration_s} s"
        if info.duration > self.max_duration_s:
            return "too_long", f"{info.duration:.2f} s > {self.max_duration_s} s"
        if min(info.width, info.height) < self.min_short_side:
            return "low_resolution", f"{info.width}x{info.height}: short side < {self.min_short_side}"
        if not self.min_fps <= info.fps <= self.max_fps:
            return "fps_out_of_range", f"{info.fps:.2f} fps not in [{self.min_fps}, {self.max_fps}]"
        return None
