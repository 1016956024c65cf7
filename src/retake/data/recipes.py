"""Curation configs: one typed, frozen `CurateConfig` and a name -> recipe registry (`icve-pretrain`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retake.checks import check_field_types, check_seed
from retake.data.vlm import VLMConfig
from retake.overrides import apply_overrides, build_config
from retake.video import X264_PRESETS

WRITERS = ("none", "flatland", "vlm")
VERB_MODES = ("off", "canonical", "diversify")


@dataclass(frozen=True)
class CurateConfig:
    """Every threshold of the unpaired-clip pipeline. Frame counts are native frames unless said otherwise."""

    # basic filter
    min_duration_s: float = 2.0
    max_duration_s: float = 1800.0  # the analysis decode holds the whole video at analysis size in memory
    min_short_side: int = 64
    min_fps: float = 8.0
    max_fps: float = 120.0
    # analysis decode (shared by scene split and motion)
    analysis_short_side: int = 96  # cuts on the sample clips match PySceneDetect from 48 px up
    keep_budget_mb: float = 384.0  # a video whose output-size frames fit is decoded once in all
    # Decode without the in-loop deblocking filter: about a sixth less decoding CPU, for frames within 43-47 dB
    # of the exact decode at the 256-px output size on the sample clips, a smaller change than the written
    # clips' own x264 encode makes (about 39 dB).
    skip_loop_filter: bool = True
    # scene split: PySceneDetect ContentDetector (hard cuts) + ThresholdDetector (fades to black)
    content_threshold: float = 27.0
    fade_threshold: float = 12.0
    min_scene_frames: int = 15
    scene_margin_frames: int = 2  # frames trimmed at each scene end, so a cut found a frame late stays out
    # motion: DIS optical flow on a small grey copy
    flow_max_side: int = 128  # longer side of the grey copy optical flow runs on
    motion_samples: int = 8  # frame pairs per scene
    min_motion: float = 0.0005  # mean flow per target-fps frame step, as a fraction of the frame diagonal
    # clips and pairs
    clip_frames: int = 17  # 4k + 1, as the causal video VAE needs
    target_fps: float | None = 12.0  # None: the native rate
    pairs_per_scene: int = 2
    both_directions: bool = True  # a pair may run backwards in time (tgt before src)
    seed: int = 0
    # instructions
    writer: str = "none"
    vlm: VLMConfig = field(default_factory=VLMConfig)
    vlm_frames_per_clip: int = 4
    verb_mode: str = "diversify"
    min_words: int = 3
    max_words: int = 40
    # output
    output_short_side: int = 256
    # x264 for the written clips. ultrafast at crf 20 matches veryfast at crf 18 (39.4 dB on the sample clips
    # at 256 px) with 3x less encoding CPU and 1.8x the bytes: encoding is a fifth of the pipeline's CPU.
    crf: int = 20
    encode_preset: str = "ultrafast"
    shard_size: int = 16

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed("seed", self.seed)
        if self.clip_frames < 1 or (self.clip_frames - 1) % 4:
            raise ValueError(f"clip_frames must be 4k+1 (1, 5, ..., 17, 33), got {self.clip_frames}")
        if self.writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {self.writer!r}")
        if self.verb_mode not in VERB_MODES:
            raise ValueError(f"verb_mode must be one of {VERB_MODES}, got {self.verb_mode!r}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(f"target_fps must be > 0 or None, got {self.target_fps}")
        if self.min_fps > self.max_fps:
            raise ValueError(f"min_fps ({self.min_fps}) is above max_fps ({self.max_fps})")
        if not 0 <= self.min_duration_s <= self.max_duration_s:  # else every video is dropped
            raise ValueError(
                f"need 0 <= min_duration_s <= max_duration_s, got {self.min_duration_s}, "
                f"{self.max_duration_s}"
            )
        for name in (
            "shard_size",
            "pairs_per_scene",
            "analysis_short_side",
            "flow_max_side",
            "motion_samples",
            "min_short_side",
            "min_scene_frames",  # 0 lets a detector cut at every frame: no scene long enough for a clip
            "vlm_frames_per_clip",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scene_margin_frames < 0:
            raise ValueError(f"scene_margin_frames must be >= 0, got {self.scene_margin_frames}")
        if self.output_short_side < 2 or self.output_short_side % 2:
            raise ValueError(f"output_short_side must be even and >= 2, got {self.output_short_side}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {self.crf}")
        if self.encode_preset not in X264_PRESETS:
            raise ValueError(
                f"encode_preset must be one of {', '.join(X264_PRESETS)}; got {self.encode_preset!r}"
            )
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}")

    def replace(self, **changes: Any) -> CurateConfig:
        return dataclasses.replace(self, **changes)

    def with_settings(self, settings: Mapping[str, Any]) -> CurateConfig:
        """This config with fields set by dotted name ({"min_short_side": 32, "vlm.model": "m"}), as
        `retake curate --set KEY=VALUE` does; each value is checked as the field's type."""
        return CurateConfig.from_dict(apply_overrides(self.to_dict(), settings))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurateConfig:
        """The config `to_dict` wrote (or any subset of its fields); unknown fields are named."""
        return build_config(cls, data)


RECIPES: dict[str, CurateConfig] = {
    # ICVE pretraining (DESIGN 1.1): clips of 4k+1 frames, two pairs per scene, both directions, motion-filtered.
    "icve-pretrain": CurateConfig(),
}


def get_recipe(name: str) -> CurateConfig:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
