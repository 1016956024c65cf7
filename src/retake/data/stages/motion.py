"""Stage `motion`: score each scene's motion with DIS optical flow (retake.opticalflow, ultrafast preset) on a
small grey copy of the shared analysis frames, and drop scenes that barely move: a still shot has no edit
to learn.

Score = mean flow magnitude over a few frame pairs spread across the scene, each pair one target-fps frame
step apart, divided by the frame diagonal: a resolution-free "fraction of the frame moved per output frame".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retake.data.records import Meta, Sample, Scene, StageResult
from retake.opticalflow import FlowConfig, flow_pairs


class MotionScore:
    name = "motion"

    def __init__(
        self, *, flow_max_side: int, samples: int, min_motion: float, target_fps: float | None
    ) -> None:
        self.flow = FlowConfig(preset="ultrafast", max_side=flow_max_side)
        self.samples = samples
        self.min_motion = min_motion
        self.target_fps = target_fps

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        fps = meta.analysis_fps or 25.0
        step = max(1, round(fps / self.target_fps)) if self.target_fps else 1
        kept, low = [], 0
        for scene in meta.scenes:
            score = self.score(sample.frames, scene, step)
            if score < self.min_motion:
                low += 1
                continue
            kept.append(replace(scene, motion=score))
        return sample, replace(meta, scenes=tuple(kept)).dropped(self.name, "low_motion", "scene", low), None

    def score(self, frames: np.ndarray, scene: Scene, step: int) -> float:
        """Mean flow magnitude / frame diagonal over up to `samples` pairs (i, i + step) inside the scene."""
        last_first = scene.end - 1 - step  # the last i whose partner i + step is still in the scene
        if last_first < scene.start:
            return 0.0
        firsts = np.unique(np.linspace(scene.start, last_first, self.samples).round().astype(int))
        uv = flow_pairs(frames[firsts], frames[firsts + step], self.flow)  # (S, h, w, 2) analysis pixels
        magnitude = float(np.linalg.norm(uv, axis=-1).mean())
        return magnitude / float(np.hypot(frames.shape[1], frames.shape[2]))
