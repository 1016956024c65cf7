"""Stage `decode`: the one full decode of a pass. Its frames are shared by scene split, motion scoring and
clipping.

Videos whose frames at *output* resolution fit in `keep_budget_mb` are decoded once, at that resolution,
and kept (`sample.full`): the analysis frames are a downscaled copy, and the clips are later cut from the
kept frames instead of decoding again. Longer videos are decoded at analysis resolution only, and the chosen
clip ranges are read again later (stages.load_clips). The choice depends on the probe alone, so the same
video always takes the same path.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from retake import video
from retake.data.records import Meta, Sample, StageResult, error_from_exception
from retake.data.sizing import fit_short_side


class Decode:
    name = "decode"

    def __init__(
        self,
        *,
        analysis_short_side: int,
        output_short_side: int,
        keep_budget_mb: float,
        skip_loop_filter: bool = False,
    ) -> None:
        self.analysis_short_side = analysis_short_side
        self.output_short_side = output_short_side
        self.keep_budget_mb = keep_budget_mb
        self.skip_loop_filter = skip_loop_filter  # see video.read

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        info = meta.info
        output_size = fit_short_side(info.height, info.width, self.output_short_side, even=True)
        keep = info.frame_count * output_size[0] * output_size[1] * 3 <= self.keep_budget_mb * 2**20
        try:
            clip = video.read(
                sample.path,
                size=output_size if keep else self.analysis_size(info.height, info.width),
                skip_loop_filter=self.skip_loop_filter,
            )
        except (video.VideoError, OSError) as exc:  # corrupt or truncated stream, no decodable frames
            return sample, meta, error_from_exception(self.name, exc)
        frames = clip.frames  # (F, H, W, 3) uint8 RGB: output size when kept, else analysis size
        meta = replace(meta, analysis_fps=float(clip.fps), frames_analysed=len(frames))
        if not keep:
            return replace(sample, frames=frames), meta, None
        return (
            replace(sample, frames=downscale(frames, self.analysis_size(*output_size)), full=frames),
            meta,
            None,
        )

    def analysis_size(self, height: int, width: int) -> tuple[int, int]:
        return fit_short_side(height, width, self.analysis_short_side)


def downscale(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(F, H, W, 3) -> (F, h, w, 3), bilinear: what PySceneDetect itself downscales with, and several times
    cheaper than area averaging at non-integer factors."""
    if frames.shape[1:3] == size:
        return frames
    out = np.empty((len(frames), *size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out
