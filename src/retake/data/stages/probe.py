"""Stage `probe`: read the container's facts (size, fps, duration ...) without decoding frames."""

from __future__ import annotations

from dataclasses import replace

from retake import video
from retake.data.records import Meta, Sample, StageResult, error_from_exception


class Probe:
    name = "probe"

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        try:
            info = video.probe(sample.path)
        except (video.VideoError, OSError) as exc:  # missing, not media, no video stream, unreadable
            return sample, meta, error_from_exception(self.name, exc)
        return sample, replace(meta, info=info), None
