"""Stage `clips`: tile each scene with non-overlapping clips of N = 4k+1 frames sampled at the target fps.

A clip's frames are native frames start + round(i * step), step = native fps / target fps (never below 1:
a slow source is not upsampled, its clips keep the native rate). Clips start at the scene start and follow
each other every round(N * step) native frames; the last one must end inside the scene. Native frames are
decoded frames, so on variable-frame-rate input the step is taken at the average rate and a clip's timing
follows the source's own irregularity (exact on constant-rate video).
"""

from __future__ import annotations

from dataclasses import replace

from retake.data.records import Clip, Meta, Sample, Scene, StageResult


class SplitClips:
    name = "clips"

    def __init__(self, *, clip_frames: int, target_fps: float | None) -> None:
        self.clip_frames = clip_frames
        self.target_fps = target_fps

    def step(self, fps: float) -> float:
        return max(1.0, fps / self.target_fps) if self.target_fps else 1.0

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        fps = meta.analysis_fps or 25.0
        step = self.step(fps)
        clips: list[Clip] = []
        for scene in meta.scenes:
            clips += self.tile(scene, step, first_index=len(clips))
        return sample, replace(meta, clips=tuple(clips), clip_fps=fps / step), None

    def tile(self, scene: Scene, step: float, first_index: int) -> list[Clip]:
        n = self.clip_frames
        offsets = [round(i * step) for i in range(n)]
        stride = round(n * step)
        clips, start = [], scene.start
        while start + offsets[-1] < scene.end:
            frames = tuple(start + o for o in offsets)
            clips.append(Clip(first_index + len(clips), scene.index, start, frames[-1] + 1, frames))
            start += stride
        return clips
