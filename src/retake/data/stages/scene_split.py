"""Stage `scene_split`: find hard cuts (PySceneDetect's ContentDetector) and fades to black (its
ThresholdDetector) on the shared analysis frames, and cut the video into scenes.

The detectors are fed frame by frame through their public `process_frame` API, so the result is what
`scenedetect.detect(path, ContentDetector())` finds, up to the resolution the frames were decoded at. Each
scene is then trimmed: a few margin frames at both ends (a cut found one frame late cannot leak into a clip)
and the dark frames of a fade, which belong to no shot.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from scenedetect import ContentDetector, FrameTimecode, ThresholdDetector

from retake.data.records import Meta, Sample, Scene, StageResult


class SceneSplit:
    name = "scene_split"

    def __init__(
        self, *, content_threshold: float, fade_threshold: float, min_scene_frames: int, margin_frames: int
    ) -> None:
        self.content_threshold = content_threshold
        self.fade_threshold = fade_threshold
        self.min_scene_frames = min_scene_frames
        self.margin_frames = margin_frames

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        frames = sample.frames  # (F, h, w, 3) uint8 RGB
        cuts = self.detect_cuts(frames, meta.analysis_fps or 25.0)
        brightness = frames.reshape(len(frames), -1).mean(axis=1)  # (F,), the ThresholdDetector's measure
        scenes, dark = [], 0
        for start, end in zip((0, *cuts), (*cuts, len(frames)), strict=True):
            trimmed = self.trim(start, end, brightness)
            if trimmed is None:
                dark += 1
                continue
            scenes.append(Scene(index=len(scenes), start=trimmed[0], end=trimmed[1]))
        meta = replace(meta, cuts=tuple(cuts), scenes=tuple(scenes)).dropped(self.name, "dark", "scene", dark)
        return sample, meta, None

    def detect_cuts(self, frames: np.ndarray, fps: float) -> list[int]:
        """Frame indices where a new scene starts (0 excluded), sorted. A fade also moves the content
        detector; its cut there is dropped in favour of the fade's own (the middle of the dark stretch)."""
        content = ContentDetector(threshold=self.content_threshold, min_scene_len=self.min_scene_frames)
        fades = ThresholdDetector(threshold=self.fade_threshold, min_scene_len=self.min_scene_frames)
        found: dict[str, set[int]] = {"content": set(), "fade": set()}
        timecode = FrameTimecode(0, fps=fps)
        for i, frame in enumerate(frames):
            timecode = FrameTimecode(i, fps=fps)
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # the detectors expect OpenCV's BGR order
            found["content"].update(tc.frame_num for tc in content.process_frame(timecode, bgr))
            found["fade"].update(tc.frame_num for tc in fades.process_frame(timecode, bgr))
        found["content"].update(tc.frame_num for tc in content.post_process(timecode))
        found["fade"].update(tc.frame_num for tc in fades.post_process(timecode))
        near_fade = {
            c for c in found["content"] if any(abs(c - f) < self.min_scene_frames for f in found["fade"])
        }
        return sorted(c for c in (found["content"] - near_fade) | found["fade"] if 0 < c < len(frames))

    def trim(self, start: int, end: int, brightness: np.ndarray) -> tuple[int, int] | None:
        """[start, end) without its margins and the faded-out frames at either end; None if nothing is left."""
        start, end = start + self.margin_frames, end - self.margin_frames
        lit = np.flatnonzero(brightness[start:end] >= self.fade_threshold) if end > start else []
        if len(lit) == 0:
            return None
        return start + int(lit[0]), start + int(lit[-1]) + 1
