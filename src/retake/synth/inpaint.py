"""Masked video inpainting for the SFT pairs, through a pluggable engine.

- `opencv`: the classical baseline. Where the camera holds still, a masked pixel takes the median of the
  frames in which it is uncovered (the background the object moved off); what stays covered in every frame
  is filled spatially per frame (OpenCV's Telea or Navier-Stokes inpainting). It can only remove: it has no
  way to paint a described object, so `supports_prompts` is False;
- `wan-vace`: diffusers' `WanVACEPipeline` from a local directory, prompted with the background (remove)
  or the new object's caption (replace); its output is blended in with a feathered mask, so everything
  outside the grown mask is the source's own pixels;
- `flatland`: the oracle, re-rendering the Flatland scene without (or with a replaced) object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from retake.flatland.edits import Edit
from retake.opticalflow import FlowConfig, check_video, flow_between
from retake.synth.flatland import apply_residual, edit_change, read_source
from retake.synth.loading import (
    cpu_generator,
    diffusers_pipeline,
    fit_multiple,
    text_inputs,
    to_pil,
    to_uint8,
)
from retake.synth.recipes import InpaintConfig
from retake.video import resize_cover_crop

OPENCV_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
STILL_CAMERA_PX = 0.5  # median background flow (px per frame) under which the camera counts as still


@dataclass(frozen=True)
class InpaintRequest:
    """What to paint into the masked region: a caption (None: the background, i.e. remove) and, for the
    Flatland oracle, the structured edit; plus the input and frames oracles re-render."""

    caption: str | None = None
    edit: dict[str, Any] | None = None
    path: Path | None = None
    frame_indices: tuple[int, ...] = ()
    seed: int = 0


class Inpainter(Protocol):
    name: str
    supports_prompts: bool  # can it paint a described object (replace pairs)?

    def inpaint(self, frames: np.ndarray, masks: np.ndarray, request: InpaintRequest) -> np.ndarray:
        """frames (F, H, W, 3) uint8 with masks (F, H, W) bool -> (F, H, W, 3) uint8, the masks filled
        (integer masks are read as nonzero = masked, see `check_masks`)."""
        ...


def check_masks(frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, masks) as a uint8 (F, H, W, 3) video and (F, H, W) bool masks, or a ValueError naming the bad
    one. Integer masks count nonzero as masked: a 0/255 mask as read from a PNG would otherwise be used as
    fancy indices (255 is out of bounds) instead of a selection."""
    frames = check_video(frames)
    masks = np.asarray(masks)
    shape = frames.shape[:3]
    if masks.shape != shape or not (masks.dtype == bool or np.issubdtype(masks.dtype, np.integer)):
        raise ValueError(
            f"masks must be (F, H, W) bool or integer matching the frames (F, H, W) = {shape}, "
            f"got {masks.shape} {masks.dtype}"
        )
    return frames, masks != 0


def still_camera(frames: np.ndarray, masks: np.ndarray) -> bool:
    """True when the unmasked background barely moves (median flow magnitude below STILL_CAMERA_PX)."""
    frames, masks = check_masks(frames, masks)
    if len(frames) < 2:
        return True
    flow = flow_between(frames, FlowConfig(preset="ultrafast", max_side=128))  # (F-1, H, W, 2)
    background = ~(masks[:-1] | masks[1:])
    speeds = np.linalg.norm(flow, axis=-1)[background]
    return bool(speeds.size) and float(np.median(speeds)) < STILL_CAMERA_PX


class OpenCVInpainter:
    name = "opencv"
    supports_prompts = False

    def __init__(self, config: InpaintConfig) -> None:
        self.flag = OPENCV_FLAGS[config.method]
        self.radius = config.radius

    def inpaint(self, frames: np.ndarray, masks: np.ndarray, request: InpaintRequest) -> np.ndarray:
        if request.caption is not None:
            raise ValueError("the opencv inpainter can only remove; replace pairs need a generative engine")
        frames, masks = check_masks(frames, masks)
        out = frames.copy()
        holes = masks.copy()
        if still_camera(frames, masks):
            seen = (~masks).any(axis=0)  # (H, W): uncovered in some frame
            wanted = masks.any(axis=0) & seen  # (H, W): pixels to fill from other frames
            if wanted.any():
                # (F, n, 3) over the n wanted pixels, NaN where covered: the median of the uncovered frames
                column = np.where(
                    masks[:, wanted, None], np.float32(np.nan), frames[:, wanted].astype(np.float32)
                )
                background = np.zeros(frames.shape[1:], np.uint8)
                background[wanted] = np.round(np.nanmedian(column, axis=0)).astype(np.uint8)
                fill = masks & seen[None]
                out[fill] = np.broadcast_to(background, frames.shape)[fill]
            holes = masks & ~seen[None]
        for t in range(len(out)):
            if holes[t].any():
                out[t] = cv2.inpaint(out[t], holes[t].astype(np.uint8), self.radius, self.flag)
        return out


class WanVaceInpainter:
    name = "wan-vace"
    supports_prompts = True
    size_multiple = 16  # VAE stride 8 x patch 2

    def __init__(self, config: InpaintConfig) -> None:
        self.config = config

    def inpaint(self, frames: np.ndarray, masks: np.ndarray, request: InpaintRequest) -> np.ndarray:
        frames, masks = check_masks(frames, masks)  # before the pipeline is loaded
        pipeline = diffusers_pipeline(str(self.config.path), self.config.device, self.config.dtype)
        height, width = fit_multiple(frames.shape[1:3], self.size_multiple)
        small = resize_cover_crop(frames, (height, width))
        small_masks = resize_cover_crop(masks[..., None].astype(np.uint8) * 255, (height, width))[..., 0]
        result = pipeline(
            video=[to_pil(f) for f in small],
            mask=[to_pil(np.repeat(m[..., None], 3, axis=-1)) for m in small_masks],
            **text_inputs(
                pipeline, request.caption or self.config.background_prompt, self.config.negative_prompt
            ),
            height=height,
            width=width,
            num_frames=len(frames),
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance,
            generator=cpu_generator(request.seed),
            output_type="np",
        )
        painted = resize_cover_crop(to_uint8(result.frames[0]), frames.shape[1:3])  # (F, H, W, 3)
        return blend(frames, painted, masks)


def blend(frames: np.ndarray, painted: np.ndarray, masks: np.ndarray, feather: float = 2.0) -> np.ndarray:
    """painted inside the masks, frames outside, across a `feather`-px soft edge that stays inside the mask
    (pixels outside it are exactly the source's). Integer masks count nonzero as masked (`check_masks`)."""
    frames, masks = check_masks(frames, masks)
    if painted.shape != frames.shape:
        raise ValueError(f"painted must have the frames' shape {frames.shape}, got {painted.shape}")
    out = np.empty_like(frames)
    for t, (frame, fill, mask) in enumerate(zip(frames, painted, masks, strict=True)):
        soft = (
            cv2.GaussianBlur(mask.astype(np.float32), (0, 0), feather)
            if feather > 0
            else mask.astype(np.float32)
        )
        alpha = np.where(mask, np.clip(soft * 2, 0, 1), 0.0)[..., None]  # 1 deep inside, 0 outside
        out[t] = np.round(alpha * fill + (1 - alpha) * frame).astype(np.uint8)
    return out


class FlatlandInpainter:
    """The oracle: the scene re-rendered without the object (or with it replaced), added as a residual."""

    name = "flatland"
    supports_prompts = True

    def inpaint(self, frames: np.ndarray, masks: np.ndarray, request: InpaintRequest) -> np.ndarray:
        if request.path is None or request.edit is None or not request.frame_indices:
            raise ValueError(
                "the flatland inpainter needs a Flatland source: its file, edit and frame indices"
            )
        scene = read_source(request.path).scene
        residual = edit_change(frames, scene, Edit.from_json(request.edit), request.frame_indices)
        return apply_residual(frames, residual)


def make_inpainter(config: InpaintConfig) -> Inpainter:
    if config.name == "opencv":
        return OpenCVInpainter(config)
    if config.name == "wan-vace":
        return WanVaceInpainter(config)
    if config.name == "flatland":
        return FlatlandInpainter()
    raise ValueError(f"unknown inpainter {config.name!r}; known: opencv, wan-vace, flatland")
