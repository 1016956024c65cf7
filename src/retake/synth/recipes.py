"""Typed, frozen configs of the paired-data factory and its two recipes (DESIGN 1.1 and 1.2):

- `insvie` (`InsVieConfig`): source curation -> first-frame edits at K strengths -> selection -> propagation ->
  second filter; still images become triplets along a synthetic camera path.
- `icve-sft` (`IcveSftConfig`): masks -> mask filter -> inpainting -> remove / add / replace pairs ->
  instruction and quality filters -> re-balancing of edit types.

Each config is nested plain dataclasses; `to_dict`/`config_from_dict` round-trip them through JSON (shard tasks
and run.json carry them), and `with_overrides` changes fields by dotted name ("editor.path").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retake.checks import check_field_types, check_seed
from retake.data.vlm import VLMConfig
from retake.opticalflow import PRESETS
from retake.overrides import apply_overrides, build_config

EDITORS = ("precomputed", "diffusers", "flatland")
SELECTIONS = ("vlm", "flatland", "none")
PROPAGATORS = ("flow", "model", "diffusers", "flatland")
CAMERA_MOTIONS = ("pan", "zoom")
MASK_SOURCES = ("files", "flatland")
INPAINTERS = ("opencv", "wan-vace", "flatland")
OPENCV_METHODS = ("telea", "ns")
EDIT_TYPES = ("remove", "add", "replace")
JUDGES = ("none", "vlm")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_positive(owner: object, *names: str) -> None:
    for name in names:
        if getattr(owner, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(owner, name)}")


def _check_fraction(owner: object, *names: str) -> None:
    for name in names:
        if not 0 <= getattr(owner, name) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(owner, name)}")


@dataclass(frozen=True)
class SourceConfig:
    """How inputs are read and which are good enough to edit (the first filter)."""

    clip_frames: int = 17  # frames taken from the start of a video: the largest 4k+1 it has, up to this
    min_frames: int = 5
    target_fps: float | None = None  # None: native rate
    short_side: int = 256  # output short side (aspect kept, never upscaled)
    min_short_side: int = 64
    min_duration_s: float = 0.0
    max_duration_s: float = 3600.0
    min_fps: float = 4.0
    max_fps: float = 120.0
    min_sharpness: float = 10.0  # mean variance of the Laplacian of luma (blurry footage scores lower)
    min_luma: float = 16.0  # mean luma bounds (too dark / washed out)
    max_luma: float = 240.0
    max_clipped: float = 0.4  # share of crushed-black plus blown-white pixels
    min_motion: float = 0.0  # mean flow per frame / frame diagonal; still shots teach no propagation
    max_motion: float = 0.08  # above this flow (and any propagation) breaks down
    flow_max_side: int = 128

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.clip_frames < 1 or (self.clip_frames - 1) % 4:
            raise ValueError(f"clip_frames must be 4k+1 (5, 9, 13, 17 ...), got {self.clip_frames}")
        if not 1 <= self.min_frames <= self.clip_frames:
            raise ValueError(f"min_frames must be in [1, clip_frames], got {self.min_frames}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(f"target_fps must be > 0 or None, got {self.target_fps}")
        if self.short_side < 16 or self.short_side % 2:
            raise ValueError(f"short_side must be even and >= 16, got {self.short_side}")
        if self.min_luma >= self.max_luma or self.min_motion > self.max_motion:
            raise ValueError(
                f"need min_luma < max_luma and min_motion <= max_motion, got {self.min_luma}, "
                f"{self.max_luma}, {self.min_motion}, {self.max_motion}"
            )
        # Either inverted range passes no video: the run would finish having made nothing.
        if not 0 <= self.min_duration_s <= self.max_duration_s or self.min_fps > self.max_fps:
            raise ValueError(
                f"need 0 <= min_duration_s <= max_duration_s and min_fps <= max_fps, got "
                f"{self.min_duration_s}, {self.max_duration_s}, {self.min_fps}, {self.max_fps}"
            )
        _check_fraction(self, "max_clipped")
        _check_positive(self, "min_short_side", "flow_max_side")


@dataclass(frozen=True)
class EditorConfig:
    """The image editor of the first frame. `strengths` are the K guidance strengths (text CFG for a
    diffusers editor; the Flatland oracle blends its edit at strength / max(strengths)); a precomputed folder
    has one candidate per instruction. `instructions` are used for inputs the editor brings none for (a
    sidecar `<input>.txt`, one per line, takes precedence)."""

    name: str = "precomputed"
    path: str | None = None  # precomputed: the folder; diffusers: the pipeline directory
    strengths: tuple[float, ...] = (5.0, 7.5, 10.0)
    image_guidance: float = 1.5  # InstructPix2Pix's image CFG
    steps: int = 20
    device: str = "cpu"
    dtype: str = "float32"
    instructions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_choice("editor", self.name, EDITORS)
        if not self.strengths or any(s <= 0 for s in self.strengths):
            raise ValueError(f"strengths must be a non-empty tuple of values > 0, got {self.strengths}")
        _check_positive(self, "steps", "image_guidance")


@dataclass(frozen=True)
class SelectionConfig:
    """Who picks the best candidate or rejects them all: a VLM following written guidelines, the Flatland
    oracle judge, or `none` (keeps the strongest candidate; for tests)."""

    name: str = "vlm"
    min_score: float = 6.0  # of 10: a VLM's best candidate below this is rejected
    max_side: int = 384  # candidates are shown at most this large

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_choice("selection", self.name, SELECTIONS)
        if not 0 <= self.min_score <= 10:
            raise ValueError(f"min_score must be in [0, 10], got {self.min_score}")


@dataclass(frozen=True)
class PropagationConfig:
    """How the edited first frame becomes an edited video.

    flow: the source's optical flow carries the edit (retake.synth.propagate.flow); model: a retake editor
    bundle anchored on the edited first frame; diffusers: an image-to-video pipeline; flatland: the oracle
    (re-render the edited scene)."""

    name: str = "flow"
    path: str | None = None  # model: a bundle; diffusers: a pipeline directory
    flow_preset: str = "medium"
    flow_max_side: int = 256
    # grey levels of |edit - source| from which a pixel takes the edit's texture (ramp from half of it);
    # image editors also drift colours a little everywhere, and that drift is carried as a residual only
    edit_threshold: float = 30.0
    texture_weight: float = 1.0  # how much edited pixels take the warped edit rather than source + residual
    fill_sigma: float = 6.0  # px reach of the residual into occluded pixels
    steps: int = 30
    guidance: float = 6.0
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_choice("propagator", self.name, PROPAGATORS)
        _check_choice("flow_preset", self.flow_preset, tuple(PRESETS))
        _check_fraction(self, "texture_weight")
        _check_positive(self, "flow_max_side", "edit_threshold", "fill_sigma", "steps")


@dataclass(frozen=True)
class QualityConfig:
    """The second filter on edited videos: frame quality (sharpness, exposure, artefact frames) and motion
    (the edit's flow must follow the source's; its warp error must stay near the source's own)."""

    min_sharpness_ratio: float = 0.4  # edited sharpness / source sharpness (blur artefacts)
    min_luma: float = 10.0
    max_luma: float = 245.0
    max_clipped: float = 0.5
    max_warp_error_ratio: float = 2.5  # edited warp error / (source warp error + floor)
    warp_error_floor: float = 2.0  # grey levels: keeps near-static, near-perfect sources from a 0 ratio
    max_spike: float = 5.0  # worst pair's warp error / median pair's: a glitch frame
    max_relative_epe: float = 0.9  # flow of the edit vs flow of the source
    min_motion_cosine: float = 0.3
    flow_max_side: int = 128

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_positive(self, "max_warp_error_ratio", "max_spike", "max_relative_epe", "flow_max_side")
        _check_fraction(self, "max_clipped")
        if not -1 <= self.min_motion_cosine <= 1:
            raise ValueError(f"min_motion_cosine must be in [-1, 1], got {self.min_motion_cosine}")


@dataclass(frozen=True)
class StillsConfig:
    """Still images become triplets: the image and its edit animated along one synthetic camera path."""

    enabled: bool = True
    frames: int = 17
    motions: tuple[str, ...] = CAMERA_MOTIONS  # one is drawn per image
    crop: float = 0.75  # the camera window's side, as a share of the image's (room to pan or zoom)
    pan: float = 0.2  # pan travel, as a share of the image side
    zoom: float = 1.25  # zoom factor over the clip

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ValueError(f"stills.frames must be 4k+1, got {self.frames}")
        if not self.motions:
            raise ValueError("stills.motions must name at least one camera motion")
        for motion in self.motions:
            _check_choice("camera motion", motion, CAMERA_MOTIONS)
        if not 0 < self.crop <= 1 or self.zoom < 1 or self.pan < 0:
            raise ValueError(
                f"need 0 < crop <= 1, zoom >= 1, pan >= 0; got {self.crop}, {self.zoom}, {self.pan}"
            )


@dataclass(frozen=True)
class InsVieConfig:
    """The InsViE recipe (DESIGN 1.2)."""

    recipe: str = "insvie"
    source: SourceConfig = field(default_factory=SourceConfig)
    editor: EditorConfig = field(default_factory=EditorConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    stills: StillsConfig = field(default_factory=StillsConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    seed: int = 0
    shard_size: int = 16
    crf: int = 18
    encode_preset: str = "veryfast"

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed("seed", self.seed)
        if self.recipe != "insvie":
            raise ValueError(f"an InsVieConfig has recipe 'insvie', got {self.recipe!r}")
        _check_positive(self, "shard_size")

    def missing_paths(self) -> list[str]:
        """Settings a run needs but this config leaves empty (a recipe's defaults name no folders), each with
        the setting's name and its `retake synth` option."""
        missing = []
        if self.editor.name in ("precomputed", "diffusers") and not self.editor.path:
            missing.append(f"editor {self.editor.name!r} needs editor.path (--edits)")
        if self.propagation.name in ("model", "diffusers") and not self.propagation.path:
            missing.append(f"propagator {self.propagation.name!r} needs propagation.path (--propagator-path)")
        return missing

    @property
    def uses_vlm(self) -> bool:
        return self.selection.name == "vlm"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class MaskConfig:
    """Where object masks come from and which are usable (the mask filter)."""

    name: str = "files"
    path: str | None = None  # files: <path>/<input stem>/<label>.png (static) or <label>.mp4 (per frame)
    min_area: float = 0.01  # mean share of the frame, over the frames the object shows in
    max_area: float = 0.4
    min_presence: float = 0.9  # share of frames the object must show in
    max_area_cv: float = 0.5  # coefficient of variation of its area over time
    min_iou: float = 0.2  # median IoU of consecutive masks (a mask that jumps around is no object)
    min_visible: float = 0.75  # least share of the object shown, where the source knows (Flatland oracle)
    max_objects: int = 3
    dilate: int = 3  # px the inpainting mask is grown (soft edges and shadows go with the object)

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_choice("mask source", self.name, MASK_SOURCES)
        _check_fraction(self, "min_area", "max_area", "min_presence", "min_iou", "min_visible")
        if self.min_area >= self.max_area:
            raise ValueError(f"need min_area < max_area, got {self.min_area} and {self.max_area}")
        _check_positive(self, "max_objects", "max_area_cv")
        if self.dilate < 0:
            raise ValueError(f"dilate must be >= 0, got {self.dilate}")


@dataclass(frozen=True)
class InpaintConfig:
    """The inpainting engine: classical OpenCV, diffusers' WanVACEPipeline, or the Flatland oracle."""

    name: str = "opencv"
    path: str | None = None  # wan-vace: the pipeline directory
    method: str = "telea"  # opencv: telea | ns
    radius: float = 5.0  # opencv: px neighbourhood
    steps: int = 30
    guidance: float = 5.0
    background_prompt: str = "the empty background, nothing in the masked area"
    negative_prompt: str = ""
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_field_types(self)
        _check_choice("inpainter", self.name, INPAINTERS)
        _check_choice("opencv method", self.method, OPENCV_METHODS)
        _check_positive(self, "radius", "steps")


@dataclass(frozen=True)
class PairsConfig:
    """Which pairs are made, how they are filtered and the edit-type mix the dataset is re-balanced to."""

    types: tuple[str, ...] = EDIT_TYPES
    proportions: tuple[float, ...] = (1.0, 1.0, 1.0)  # relative target share of each type
    replace_captions: tuple[str, ...] = (
        "a red ball",
        "a potted plant",
        "a small brown dog",
        "a wooden chair",
        "a blue umbrella",
    )
    min_words: int = 3
    max_words: int = 40
    min_outside_psnr: float = 30.0  # dB: the edit must leave everything outside the (grown) mask alone
    max_outside_blob: float = 0.002  # largest patch changed outside the mask, share of the frame
    min_inside_change: float = 6.0  # mean |target - source| inside the mask, grey levels: the edit happened
    min_sharpness_ratio: float = 0.4  # inpainted fill's detail over its surroundings' (blurry fills)
    judge: str = "none"  # an extra VLM quality filter (EditVerseBench rubric, 0-9)
    min_judge_total: int = 6

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.types or len(self.types) != len(self.proportions):
            raise ValueError(
                f"types and proportions must be non-empty and of equal length, got {self.types} and "
                f"{self.proportions}"
            )
        for name in self.types:
            _check_choice("edit type", name, EDIT_TYPES)
        if any(p < 0 for p in self.proportions) or sum(self.proportions) <= 0:
            raise ValueError(f"proportions must be >= 0 with a positive sum, got {self.proportions}")
        if "replace" in self.types and not self.replace_captions:
            raise ValueError("replace pairs need replace_captions")
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}")
        _check_choice("judge", self.judge, JUDGES)

    def share(self, edit_type: str) -> float:
        """The target share of `edit_type` (0 for a type not made)."""
        if edit_type not in self.types:
            return 0.0
        return self.proportions[self.types.index(edit_type)] / sum(self.proportions)


@dataclass(frozen=True)
class IcveSftConfig:
    """The ICVE SFT recipe (DESIGN 1.1)."""

    recipe: str = "icve-sft"
    source: SourceConfig = field(default_factory=lambda: SourceConfig(max_motion=1.0))
    masks: MaskConfig = field(default_factory=MaskConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    seed: int = 0
    shard_size: int = 16
    crf: int = 18
    encode_preset: str = "veryfast"

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed("seed", self.seed)
        if self.recipe != "icve-sft":
            raise ValueError(f"an IcveSftConfig has recipe 'icve-sft', got {self.recipe!r}")
        _check_positive(self, "shard_size")

    def missing_paths(self) -> list[str]:
        """Settings a run needs but this config leaves empty (a recipe's defaults name no folders), each with
        the setting's name and its `retake synth` option."""
        missing = []
        if self.masks.name == "files" and not self.masks.path:
            missing.append("mask source 'files' needs masks.path (--masks-dir)")
        if self.inpaint.name == "wan-vace" and not self.inpaint.path:
            missing.append("inpainter 'wan-vace' needs inpaint.path (--inpainter-path)")
        return missing

    @property
    def uses_vlm(self) -> bool:
        return self.pairs.judge == "vlm"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


SynthConfig = InsVieConfig | IcveSftConfig
RECIPES: dict[str, type[InsVieConfig] | type[IcveSftConfig]] = {
    "insvie": InsVieConfig,
    "icve-sft": IcveSftConfig,
}


def config_from_dict(data: dict[str, Any]) -> SynthConfig:
    """The config a `to_dict()` gave (its "recipe" field says which)."""
    recipe = data.get("recipe", "")
    if recipe not in RECIPES:
        raise ValueError(f"unknown synth recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return build_config(RECIPES[recipe], data)


def get_recipe(name: str) -> SynthConfig:
    """The default config of recipe `name` ("insvie" or "icve-sft")."""
    if name not in RECIPES:
        raise ValueError(f"unknown synth recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]()


def fit_default_types(config: SynthConfig) -> tuple[SynthConfig, str | None]:
    """The icve-sft recipe's default pair types fitted to its inpainter, and a note saying so (None: no
    change). The default OpenCV inpainter can only remove, so the default mix (remove, add, replace) would be
    refused on every run that does not name --types; it keeps remove and add (an add is a remove reversed)."""
    if not isinstance(config, IcveSftConfig) or config.inpaint.name != "opencv":
        return config, None
    kept = [
        (t, p) for t, p in zip(config.pairs.types, config.pairs.proportions, strict=True) if t != "replace"
    ]
    if len(kept) == len(config.pairs.types) or not kept:
        return config, None
    types, proportions = [t for t, _ in kept], [p for _, p in kept]
    note = (
        f"the opencv inpainter can only remove: making {' and '.join(types)} pairs (wan-vace makes replace)"
    )
    return with_settings(config, {"pairs.types": types, "pairs.proportions": proportions}), note


def with_overrides(config: SynthConfig, changes: dict[str, Any]) -> SynthConfig:
    """`config` with fields changed by dotted name ({"editor.path": "...", "seed": 3}); None values are
    skipped, so optional CLI flags can be passed straight through."""
    return with_settings(config, {k: v for k, v in changes.items() if v is not None})


def with_settings(config: SynthConfig, settings: Mapping[str, Any]) -> SynthConfig:
    """`config` with fields set by dotted name, None included (`--set KEY=VALUE`, `source.target_fps=null`)."""
    return config_from_dict(apply_overrides(config.to_dict(), settings))
