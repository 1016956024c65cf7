"""Stage `load_clips`: the frames of the clips that are still in a pair, at output resolution.

They are cut from the frames the decode stage kept when it could (short videos). Otherwise this is the only
second read of a video: it seeks to the needed ranges instead of decoding everything again.
A seek lands on the keyframe before a range and decodes from there (x264 puts one every 250 frames by
default), so clips less than `merge_gap_s` apart are read in one go rather than by seeking back; a merged read
stops growing at `max_span_frames` to bound memory.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retake import video
from retake.data.records import STATUS_OK, Clip, Meta, Sample, StageResult, error_from_exception
from retake.data.sizing import fit_short_side


class LoadClips:
    name = "load_clips"

    def __init__(
        self,
        *,
        short_side: int,
        merge_gap_s: float = 10.0,
        max_span_frames: int = 600,
        skip_loop_filter: bool = False,
    ) -> None:
        self.short_side = short_side
        self.skip_loop_filter = skip_loop_filter  # decode as the decode stage does (see video.read)
        self.merge_gap_s = merge_gap_s
        self.max_span_frames = max_span_frames

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        wanted = {c.index: c for p in meta.pairs if p.status == STATUS_OK for c in (p.src, p.tgt)}
        size = fit_short_side(meta.info.height, meta.info.width, self.short_side, even=True)
        if sample.full is not None:  # kept by the decode: no second read, and only written frames are resized
            loaded = {
                i: video.resize_cover_crop(sample.full[np.asarray(c.frames)], size) for i, c in wanted.items()
            }
            return replace(sample, clips=loaded, full=None), replace(meta, output_size=size), None
        loaded: dict[int, np.ndarray] = {}
        try:
            gap = round(self.merge_gap_s * (meta.analysis_fps or 25.0))
            for group in merge_ranges(
                sorted(wanted.values(), key=lambda c: c.start), gap, self.max_span_frames
            ):
                start, end = group[0].start, max(c.end for c in group)
                frames = video.read(
                    sample.path, start=start, end=end, size=size, skip_loop_filter=self.skip_loop_filter
                ).frames  # (end-start, H, W, 3)
                if len(frames) < end - start:
                    raise video.VideoError(f"{sample.path}: frames [{start}, {end}) gave only {len(frames)}")
                for clip in group:
                    loaded[clip.index] = frames[np.asarray(clip.frames) - start]  # (N, H, W, 3)
        except (video.VideoError, OSError) as exc:
            return sample, meta, error_from_exception(self.name, exc)
        return replace(sample, clips=loaded), replace(meta, output_size=size), None


def merge_ranges(clips: list[Clip], max_gap: int, max_span: int) -> list[list[Clip]]:
    """Group clips (sorted by start) at most `max_gap` frames apart, each group spanning <= `max_span` frames
    (a single longer clip still gets its own group)."""
    groups: list[list[Clip]] = []
    for clip in clips:
        if (
            groups
            and clip.start - max(c.end for c in groups[-1]) <= max_gap
            and clip.end - groups[-1][0].start <= max_span
        ):
            groups[-1].append(clip)
        else:
            groups.append([clip])
    return groups
