"""`EditPipeline`: (source video, instruction) -> edited video, with a transformer, a VAE and a text encoder.

An edit runs in six numbered steps (methods of the same names): 1. check inputs and fit the request to the
model's grid, 2. encode text, 3. encode source, 4. prepare latents, 5. denoise, 6. decode.

How each guidance branch is conditioned is one mapping (`BRANCH_INPUTS`): "full" = (instruction, source),
"no_text" = (negative or empty prompt, source), "none" = (empty prompt, no source: the transformer's
conditioning then feeds zeros (channel) or drops the source tokens (sequence)). One-way attention models get the
source K/V cache built once per video and shared by every step and branch; full attention passes the source
latents to each call (ICVE recomputes them, as its reference code does).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retake.checks import check_int, check_read_window, check_seed
from retake.device import check_device
from retake.flow import (
    TIMESTEP_SCALE,
    Branch,
    PinnedFrames,
    Step,
    denoise,
    flow_start,
    sigma_schedule,
    to_timestep,
)
from retake.model.config import AttentionMode, Prior
from retake.model.text import TextEmbedding, TextEncoder, load_text_encoder
from retake.model.transformer import InContextTransformer
from retake.model.vae import TilingConfig, VideoVAE
from retake.model.weights import check_model_folder
from retake.sample.bundle import (
    MINILM,
    TRANSFORMER_DIR,
    VAE_DIR,
    BundleSpec,
    check_parts_fit,
    place_text_encoder,
    read_bundle_spec,
    staged_directory,
    write_bundle_spec,
)
from retake.sample.config import EditConfig
from retake.sample.grid import ModelGrid, size_pair
from retake.sample.pass_store import PassStore, PassStoreError, passes_folder
from retake.sample.windows import Window, edit_windows, fit_passes, plan_windows
from retake.video import (
    CorruptStreamError,
    Video,
    VideoInfo,
    check_output,
    check_video_object,
    probe,
    read,
    resize_cover_crop,
    write,
    write_gif,
)

# branch -> (which prompt, whether the source is seen)
BRANCH_INPUTS: dict[str, tuple[str, bool]] = {
    "full": ("instruction", True),
    "no_text": ("negative", True),
    "none": ("empty", False),
}


def branch_prompts(branches: tuple[Branch, ...], instruction: str, negative_prompt: str) -> dict[str, str]:
    """The prompt each branch encodes."""
    prompts = {"instruction": instruction, "negative": negative_prompt, "empty": ""}
    return {branch: prompts[BRANCH_INPUTS[branch][0]] for branch in branches}


@dataclass(frozen=True)
class BranchInputs:
    """The conditioning keyword arguments of one branch's transformer call (batch 1)."""

    text: Tensor  # (1, L, D)
    text_mask: Tensor  # (1, L) bool
    pooled: Tensor  # (1, P)
    source: Mapping[str, Any]  # {"source": latents}, {"source_cache": cache} or {} (no source)


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32 or its name ("float32", "bfloat16", "float16"; "torch.float32", as str() writes it)."""
    # An integer dtype would reach diffusers, whose error does not say which argument was wrong.
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(
            f"dtype must be a floating torch dtype name such as float32 or bfloat16, got {dtype!r}"
        )
    return value


class EditPipeline:
    """Instruction-based video editing with an `InContextTransformer`, a `VideoVAE` and a text encoder.

    text_encoder_source: what `load_text_encoder` loaded the encoder from ("minilm" or a directory); it is
    what `save_pretrained` writes into the bundle. cache_source: reuse the one-way source K/V cache (False
    recomputes the source at every call, to check or time the cache; no effect on full attention).
    """

    def __init__(
        self,
        transformer: InContextTransformer,
        vae: VideoVAE,
        text_encoder: TextEncoder,
        defaults: EditConfig | None = None,
        *,
        text_encoder_source: str | Path = MINILM,
        cache_source: bool = True,
    ) -> None:
        check_parts_fit(transformer.spec, vae.latent_channels, text_encoder.dim, text_encoder.pooled_dim)
        self.transformer = transformer.eval()
        self.vae = vae
        self.text_encoder = text_encoder
        self.defaults = defaults or EditConfig()
        self.text_encoder_source = text_encoder_source
        self.cache_source = cache_source
        self.path: Path | None = None  # the bundle it was loaded from, if any

    # ------------------------------------------------------------------------------------------------------
    # loading and saving
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        vae_tiling: TilingConfig | None = TilingConfig(),
    ) -> EditPipeline:
        """Load a bundle directory (see `retake.sample.bundle`) onto `device` in `dtype` (fp32 by default; with
        float16 the VAE stays in float32)."""
        device = check_device(device)
        root = Path(path).expanduser()
        spec = read_bundle_spec(root)
        dtype = resolve_dtype(dtype)
        check_model_folder(root / spec.transformer, "InContextTransformer")
        transformer = InContextTransformer.from_pretrained(root / spec.transformer, torch_dtype=dtype)
        # float16 tops out at 65504, which VAE activations pass (the shipped Flatland VAE's reach 68000 and
        # decode to NaN); bfloat16 has float32's range. diffusers upcasts SD VAEs likewise (force_upcast).
        vae_dtype = torch.float32 if dtype == torch.float16 else dtype
        vae = VideoVAE.from_pretrained(root / spec.vae, device=device, dtype=vae_dtype, tiling=vae_tiling)
        text_source = spec.text_encoder_source(root)
        text_encoder = load_text_encoder(text_source, device=device, dtype=dtype)
        pipeline = cls(
            transformer.to(device), vae, text_encoder, spec.defaults, text_encoder_source=text_source
        )
        pipeline.path = root
        return pipeline

    def save_pretrained(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a self-contained bundle (safetensors weights, configs, sampler defaults); atomic."""
        with staged_directory(path, overwrite=overwrite) as staging:
            self.transformer.save_pretrained(staging / TRANSFORMER_DIR, safe_serialization=True)
            self.vae.vae.save_pretrained(staging / VAE_DIR, safe_serialization=True)
            reference = place_text_encoder(self.text_encoder_source, staging)
            write_bundle_spec(staging, BundleSpec(self.defaults, text_encoder=reference))
        return Path(path).expanduser()

    # ------------------------------------------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def grid(self) -> ModelGrid:
        spec = self.transformer.spec
        return ModelGrid(
            spatial=self.vae.spatial_compression * spec.patch_size,
            temporal=self.vae.temporal_compression,
            latent_frames_multiple=spec.patch_size_t,
        )

    # ------------------------------------------------------------------------------------------------------
    # the edit
    # ------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def edit(
        self,
        video: Video,
        instruction: str,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        video_guidance: float | None = None,
        seed: int = 0,
        frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        prefix: np.ndarray | None = None,
        progress: bool = True,
        callback: Callable[[Step], None] | None = None,
    ) -> Video:
        """Edit the first `frames` frames of `video` as `instruction` says; returns them at the source's fps.

        video: a `Video` (uint8 (F, H, W, 3) RGB; an array of frames goes in as `Video(frames, fps)`). Returns
        a `Video` of uint8 (frames, H, W, 3) at the size the request was fitted to (`check_inputs`).
        Left-out settings come from `self.defaults`. guidance: text CFG scale; video_guidance: InsViE's video
        scale (3-way guidance). size: (H, W), or one int N for N x N; the source is resized to cover it and
        centre-cropped. frames and size are rounded down to the model's grid (frames 4k+1); frames=None takes
        the default, capped to the source. Same seed, same output (the noise is drawn on the CPU, so on any
        device). prefix: uint8 (K, H, W, 3) frames the edit must begin with, K = 4m + 1 (see `encode_prefix`):
        the previous pass's end when a long video is edited in passes, or an edited first frame; the result's
        first K frames are then their VAE round trip.
        """
        options = dict(steps=steps, guidance=guidance, video_guidance=video_guidance, seed=seed)
        latents = self.edit_latents(
            video,
            instruction,
            frames=frames,
            size=size,
            prefix=prefix,
            progress=progress,
            callback=callback,
            **options,
        )
        # 6. decode, at the source's frame rate (the frames are its first N, so the timing is the same)
        return Video(self.decode(latents), fps=video.fps)

    @torch.no_grad()
    def edit_latents(
        self,
        video: Video,
        instruction: str,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        video_guidance: float | None = None,
        seed: int = 0,
        frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        prefix: np.ndarray | None = None,
        progress: bool = True,
        callback: Callable[[Step], None] | None = None,
    ) -> Tensor:
        """Steps 1-5 of `edit`: the edited latents (1, C, F', H', W') before decoding."""
        # 1. check inputs: a complete config with frames and size on the model's grid
        overrides = {"steps": steps, "guidance": guidance, "video_guidance": video_guidance, "seed": seed}
        config = self.check_inputs(video, instruction, frames=frames, size=size, **overrides)
        if callback is not None and not callable(callback):  # else a TypeError after minutes of encoding
            raise ValueError(f"callback must be a function of a Step, got {callback!r}")
        # 2. encode text: one batch with every prompt the guidance branches need
        prompts = branch_prompts(config.guidance().branches, instruction, config.negative_prompt)
        texts = self.encode_text(prompts)
        # 3. encode source: (1, C, F', H', W') latents of the first config.frames frames, and the prefix's
        source = self.encode_source(video, config)
        known = None if prefix is None else self.encode_prefix(prefix, config)
        # 4. prepare latents: the seeded start point, and each branch's conditioning (the one-way cache, once)
        start = self.prepare_latents(source, seed)
        embedded = self._embedded_guidance(config)
        branches = self.prepare_branches(texts, source, embedded)
        # 5. denoise
        return self.denoise(
            start, config, branches, embedded, known=known, progress=progress, callback=callback
        )

    def check_inputs(
        self,
        video: Video,
        instruction: str,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        video_guidance: float | None = None,
        frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        seed: int = 0,
    ) -> EditConfig:
        """Step 1: validate the request and resolve it to a complete config on the model's grid (the seed is
        checked here too, before minutes of encoding). size=None: the default's area at the video's shape."""
        check_video_object(video)
        if not isinstance(instruction, str):
            # One edit takes one prompt; a list or bytes would reach the tokenizer, whose error names neither.
            raise ValueError(f"instruction must be a str, got {type(instruction).__name__}: {instruction!r}")
        if not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        check_seed("seed", seed)
        config = self.defaults.with_overrides(steps=steps, text_scale=guidance, video_scale=video_guidance)
        grid = self.grid
        shape = video.frames.shape[1:3]
        height, width = grid.fit_size(size) if size is not None else grid.fit_shape(config.size, shape)
        num_frames = grid.fit_frames(frames, config.frames, video.num_frames)
        return config.with_overrides(frames=num_frames, height=height, width=width)

    def encode_text(self, prompts: Mapping[str, str]) -> dict[str, TextEmbedding]:
        """Step 2: encode every distinct prompt of the run in one batch; branch -> its (1, L, D) embedding."""
        unique = list(dict.fromkeys(prompts.values()))
        embedding = self.text_encoder.encode(unique).to(self.device, self.dtype)
        rows = {prompt: i for i, prompt in enumerate(unique)}
        return {
            branch: TextEmbedding(
                embedding.tokens[rows[p] : rows[p] + 1],
                embedding.mask[rows[p] : rows[p] + 1],
                embedding.pooled[rows[p] : rows[p] + 1],
            )
            for branch, p in prompts.items()
        }

    def encode_source(self, video: Video, config: EditConfig) -> Tensor:
        """Step 3: the first `config.frames` frames, cover-cropped to (H, W), as VAE latents (1, C, F', H', W')."""
        pixels = resize_cover_crop(video.frames[: config.frames], config.size)  # (F, H, W, 3) uint8
        latents = self.vae.encode(torch.from_numpy(np.ascontiguousarray(pixels)))  # posterior mode, scaled
        return latents.to(self.device, self.dtype)

    def encode_prefix(self, prefix: np.ndarray, config: EditConfig) -> Tensor:
        """Step 3b: frames the edit must begin with, as the latents they pin, fp32 (1, C, m + 1, H', W').

        The causal VAE encodes a clip's first frame alone and every later latent frame from the next
        `grid.temporal` frames, so K = temporal * m + 1 frames make the first m + 1 latent frames of any clip
        they begin. Nearly exactly: the VAE's group norms pool over time, so each latent depends a little on
        the whole clip (on the shipped Flatland VAE about 1% of the latents' spread for 5 of 17 frames).
        prefix: uint8 (K, H, W, 3), resized to cover the edit's size like the source."""
        # (K, H, W, 4) or channels first would be resized as pictures and fail in the VAE, unnamed.
        if (
            not isinstance(prefix, np.ndarray)
            or prefix.dtype != np.uint8
            or prefix.ndim != 4
            or prefix.shape[-1] != 3
        ):
            got = (
                f"{prefix.dtype} {prefix.shape}" if isinstance(prefix, np.ndarray) else type(prefix).__name__
            )
            raise ValueError(f"prefix must be uint8 frames (K, H, W, 3), got {got}")
        count, temporal = len(prefix), self.grid.temporal
        if count % temporal != 1 % temporal or count > config.frames:
            raise ValueError(
                f"prefix must have {temporal}m + 1 frames, at most the edit's {config.frames}; got {count}"
            )
        pixels = resize_cover_crop(prefix, config.size)  # (K, H, W, 3) uint8
        latents = self.vae.encode(torch.from_numpy(np.ascontiguousarray(pixels)))
        return latents.to(self.device, torch.float32)

    def prepare_latents(self, source: Tensor, seed: int) -> Tensor:
        """Step 4a: the start point at t = 1, fp32 (the Euler integration runs in fp32 whatever the model
        dtype): seeded noise shaped like the source latents, plus those latents for a source-prior model."""
        seed = check_seed("seed", seed)
        generator = torch.Generator("cpu").manual_seed(seed)  # CPU noise: identical on every device
        noise = torch.randn(tuple(source.shape), generator=generator, dtype=torch.float32).to(self.device)
        anchor = source.float() if self.transformer.spec.prior is Prior.SOURCE else None
        return flow_start(noise, anchor)

    def prepare_branches(
        self, texts: Mapping[str, TextEmbedding], source: Tensor, embedded: Tensor | None
    ) -> dict[str, BranchInputs]:
        """Step 4b: each branch's conditioning; the one-way source cache is built here, once per video."""
        with_source = self._source_inputs(source, embedded)
        return {
            branch: BranchInputs(
                text.tokens, text.mask, text.pooled, with_source if BRANCH_INPUTS[branch][1] else {}
            )
            for branch, text in texts.items()
        }

    def denoise(
        self,
        start: Tensor,
        config: EditConfig,
        branches: Mapping[str, BranchInputs],
        embedded: Tensor | None,
        *,
        known: Tensor | None = None,
        progress: bool = True,
        callback: Callable[[Step], None] | None = None,
    ) -> Tensor:
        """Step 5: integrate the flow from the start point to the edited latents under the config's guidance.

        known: latents (1, C, K', H', W') the result must begin with (`encode_prefix`). Their frames move on
        the straight path from the start point to them: with x_t = (1 - t) x0 + t x1 the velocity of a frame
        bound for z is exactly x1 - z, which replaces the guided velocity there (`PinnedFrames`). The frames end
        at z exactly, and the model, which sees them at every step, fits the rest to them: inpainting's
        replacement trick, along time.
        """
        guidance = config.guidance()
        if known is not None:  # (1, C, K', H', W') velocities of the pinned frames
            guidance = PinnedFrames(guidance, start[:, :, : known.shape[2]] - known)

        def predict(x: Tensor, t: Tensor, branch: Branch) -> Tensor:
            inputs = branches[branch]
            velocity = self.transformer(
                hidden_states=x.to(self.dtype),
                timestep=to_timestep(t),
                encoder_hidden_states=inputs.text,
                encoder_attention_mask=inputs.text_mask,
                pooled_projections=inputs.pooled,
                guidance=embedded,
                **inputs.source,
            )
            return velocity.float()

        sigmas = sigma_schedule(config.steps, shift=config.shift, device=self.device)
        return denoise(start, sigmas, predict, guidance, progress=progress, callback=callback)

    def decode(self, latents: Tensor) -> np.ndarray:
        """Step 6: latents (1, C, F', H', W') -> uint8 frames (F, H, W, 3)."""
        return self.vae.decode_to_uint8(latents)[0].cpu().numpy()

    # ------------------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------------------
    def _embedded_guidance(self, config: EditConfig) -> Tensor | None:
        """The distilled-guidance input (B=1), scaled like the timestep, for models that embed it."""
        if not self.transformer.spec.guidance_embeds:
            return None
        return torch.full((1,), config.embedded_guidance * TIMESTEP_SCALE, device=self.device)

    def _source_inputs(self, source: Tensor, embedded: Tensor | None) -> dict[str, Any]:
        if self.cache_source and self.transformer.spec.attention is AttentionMode.ONE_WAY:
            return {"source_cache": self.transformer.build_source_cache(source, guidance=embedded)}
        return {"source": source}


def edit_file(
    pipeline: EditPipeline,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    instruction: str,
    *,
    frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    overlap: int | None = None,
    note: Callable[[str], None] | None = None,
    info: VideoInfo | None = None,
    **options: Any,
) -> Path:
    """Read `src`, edit it, write `dst` (.mp4, or .gif for a preview); `options` go to `EditPipeline.edit`.

    fps: resample the source to this rate first (None: its own). A model edits a fixed number of frames, so
    this sets how much time they cover: 17 frames of a 120 fps phone clip last 0.14 s, at 24 fps 0.7 s.
    start: where the edited part begins, in seconds from the first frame.
    duration: seconds to edit from `start` (math.inf: to the end), in passes of `frames` frames (default:
    the bundle's) sharing `overlap` (`retake.sample.windows`); None edits one pass. The frames of the stretch
    are held in memory at the edit's size, source and result (a minute at 24 fps and 480x768: 2 x 1.6 GB).
    note: told, in a sentence each, what was changed from the request: a size or frame count rounded to the
    model's grid, a picture cropped to another shape, fewer frames than the default.
    Only the frames the edit can use are decoded, resized straight to the model's grid as they are read.
    size=None edits at the bundle's default area in the source's shape (`ModelGrid.fit_shape`).
    info: `probe(src)`, when the caller has it already (a probe reads all of a file's packets).
    """
    dst = check_output(dst)  # before the edit, which may take minutes
    if overlap is not None and duration is None:
        raise ValueError(f"overlap={overlap} needs a duration: one pass has nothing to overlap")
    tell = note or (lambda _: None)
    passes = None if duration is None else _fit_passes(pipeline, frames, overlap, tell)  # before reading
    asked = dict(frames=frames, size=size, fps=fps, start=start, duration=duration)
    video = read_for_edit(pipeline, src, note=tell, info=info, **asked)
    fitted = (video.height, video.width)
    if passes is None:
        return _write_edit(
            pipeline.edit(video, instruction, frames=video.num_frames, size=fitted, **options), dst
        )
    window, overlap = passes
    _tell_passes(plan_windows(video.num_frames, window, overlap, pipeline.grid), window, overlap, tell)
    request = _pass_request(pipeline, src, instruction, asked | {"overlap": overlap}, options)
    store = PassStore(passes_folder(dst), request, tell)
    options |= dict(window=window, overlap=overlap, size=fitted, store=store)
    try:
        written = _write_edit(edit_windows(pipeline, video, instruction, **options), dst)
    except BaseException as exc:  # Ctrl-C too: the user should learn that a rerun continues
        _tell_saved(store, exc, tell)
        raise
    store.remove()  # only once the output is whole
    return written


def read_for_edit(
    pipeline: EditPipeline,
    src: str | os.PathLike[str],
    *,
    frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    note: Callable[[str], None] | None = None,
    info: VideoInfo | None = None,
) -> Video:
    """The frames of `src` that `edit_file` edits, decoded straight at the size it edits at (see there):
    without `duration`, the first frames from `start` fitted to the model's grid; with it, the whole stretch.
    `note` hears what differs from the request."""
    tell = note or (lambda _: None)
    info = info if info is not None else probe(src)
    fitted = _edit_size(pipeline, size, (info.height, info.width), tell)
    check_read_window(fps, start, duration)
    if start >= info.duration:  # named here as the caller named it (read would say start_time)
        raise ValueError(f"start={start:g} s is past the end of {src} ({info.duration:.2f} s long)")
    if duration is not None:
        return _read_stretch(src, fitted, fps, start, duration, tell)
    wanted = pipeline.defaults.frames if frames is None else check_int("frames", frames, minimum=1)
    video = read(src, size=fitted, max_frames=wanted, fps=fps, start_time=start or None)
    try:  # a source too short for the request: say which file, as read's own errors do
        count = pipeline.grid.fit_frames(frames, pipeline.defaults.frames, video.num_frames)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}{_window_words(fps, start)}") from None
    asked = frames if frames is not None else pipeline.defaults.frames
    if count != asked:
        what = f"frames={frames}" if frames is not None else f"the default {asked} frames"
        reason = _frames_reason(pipeline.grid, asked, video.num_frames, fps, start)
        tell(f"editing {_count(count)}, not {what}: {reason}")
    return Video(video.frames[:count], fps=video.fps)


def _read_stretch(
    src: str | os.PathLike[str],
    size: tuple[int, int],
    fps: float | None,
    start: float,
    duration: float,
    tell: Callable[[str], None],
) -> Video:
    """Every frame from `start` for `duration` seconds (math.inf: to the end), telling when the source ends
    sooner."""
    end = None if math.isinf(duration) else start + duration
    video = read(src, size=size, fps=fps, start_time=start or None, end_time=end, allow_partial=True)
    covered = video.num_frames / video.fps
    if video.decode_errors:  # read's own error would point a command-line user at a Python argument
        whole = math.floor(covered * 100) / 100
        raise CorruptStreamError(
            src,
            f"the video stream is cut short or damaged: {video.num_frames} frames decode from {start:g} s, "
            f"{video.decode_errors} packets fail or are missing; a duration of at most {whole:g} s edits the "
            "part before the damage",
            decoded=video.num_frames,
            failed=video.decode_errors,
        )
    if end is not None and covered < duration - 1.5 / video.fps:
        tell(f"editing {covered:.2f} s, not {duration:g}: the source ends {covered:.2f} s after {start:g} s")
    return video


def _fit_passes(
    pipeline: EditPipeline, frames: int | None, overlap: int | None, tell: Callable[[str], None]
) -> tuple[int, int]:
    """(frames per pass, overlap) of an edit with a duration, checked against the model's grid."""
    grid = pipeline.grid
    window, overlap = fit_passes(grid, pipeline.defaults.frames, frames, overlap)
    if frames is not None and window != frames:
        tell(f"passes of {_count(window)}, not {frames}: {grid.describe_frames()}")
    return window, overlap


def _pass_request(
    pipeline: EditPipeline,
    src: str | os.PathLike[str],
    instruction: str,
    asked: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """What the saved passes of an edit depend on: the source file as it is, the request, the model (its
    bundle's files as they are) and its numerics. A rerun that matches continues them (`PassStore`)."""
    source = Path(src).absolute()
    stat = source.stat()
    sampler = {k: v for k, v in options.items() if k not in ("progress", "callback")}
    return {
        "source": {"path": str(source), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "instruction": instruction,
        "request": _plain(asked | sampler),
        "model": {
            "bundle": None if pipeline.path is None else str(pipeline.path.absolute()),
            "files": None if pipeline.path is None else _bundle_files(pipeline.path),
            "defaults": pipeline.defaults.to_dict(),
            "dtype": str(pipeline.dtype),
            "device": pipeline.device.type,
        },
    }


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers: the request is saved as JSON, which refuses an np.int64
    seed or an np.float32 guidance that the edit itself takes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _bundle_files(root: Path) -> dict[str, list[int]]:
    """Each file of a bundle -> [bytes, mtime_ns]. Weights retrained or copied over at the same path change
    these, and passes of other weights must not be continued (the path alone would match)."""
    found = {}
    for folder, _, names in os.walk(root, followlinks=True):  # parts linked in (bundle --link) count too
        for name in names:
            stat = Path(folder, name).stat()
            found[str(Path(folder, name).relative_to(root))] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(found.items()))


def _tell_saved(store: PassStore, exc: BaseException, tell: Callable[[str], None]) -> None:
    """After an edit stopped part-way, where its finished passes are (a hidden folder that can hold
    gigabytes) and that the same command continues from them."""
    count = store.count()
    if count and not isinstance(exc, PassStoreError):  # that error names the folder itself
        saved = _count(count, "finished pass", "finished passes")
        tell(
            f"the edit stopped with {saved} saved in {store.folder}: the same command continues from them "
            "(delete the folder to drop them)"
        )


def _tell_passes(plan: list[Window], window: int, overlap: int, tell: Callable[[str], None]) -> None:
    if len(plan) > 1:
        shared = f"the last {_count(overlap)} of the one before" if overlap else "nothing of the one before"
        frames = plan[-1].end
        up_to = _count(window)
        tell(f"editing {frames} frames in {len(plan)} passes of up to {up_to}, each continuing {shared}")


def _count(number: int, one: str = "frame", many: str = "frames") -> str:
    return f"{number} {one if number == 1 else many}"


def _write_edit(video: Video, dst: Path) -> Path:
    return write_gif(video, dst) if dst.suffix.lower() == ".gif" else write(video, dst)


def _edit_size(
    pipeline: EditPipeline,
    size: int | tuple[int, int] | None,
    source: tuple[int, int],
    tell: Callable[[str], None],
) -> tuple[int, int]:
    """The (H, W) to edit at, telling what differs from the request or the bundle's default."""
    grid, default = pipeline.grid, pipeline.defaults.size
    if size is None:
        fitted = grid.fit_shape(default, source)
        if fitted != default:
            tell(
                f"editing at {fitted[0]}x{fitted[1]}: about the bundle's {default[0]}x{default[1]} pixels, "
                "in the source's shape"
            )
    else:
        fitted = grid.fit_size(size)
        if fitted != size_pair(size):
            asked = "x".join(map(str, size_pair(size)))
            tell(f"size {asked} rounded down to {fitted[0]}x{fitted[1]} (multiples of {grid.spatial} px)")
    _tell_crop(source, fitted, tell)
    return fitted


def _tell_crop(source: tuple[int, int], fitted: tuple[int, int], tell: Callable[[str], None]) -> None:
    """A note when covering `fitted` cuts more than 3% off a side of the source (rounding aside)."""
    tall, wide = fitted[0] / source[0], fitted[1] / source[1]
    kept = min(tall, wide) / max(tall, wide)
    if kept < 0.97:
        side = "height" if tall < wide else "width"
        tell(
            f"the source ({source[0]}x{source[1]}) is cropped to the shape of {fitted[0]}x{fitted[1]}: "
            f"{1 - kept:.0%} of its {side} is cut off"
        )


def _frames_reason(grid: ModelGrid, asked: int, available: int, fps: float | None, start: float) -> str:
    """Why `fit_frames` edits fewer frames than asked: the source ran short, the grid, or both."""
    reasons = []
    if available < asked:
        reasons.append(f"the source has {available}{_window_words(fps, start)}")
    if grid.round_frames(min(asked, available)) != min(asked, available):
        reasons.append(grid.describe_frames())
    return " and ".join(reasons)


def _window_words(fps: float | None, start: float) -> str:
    """' from 2 s at 12 fps': the part of the source `edit_file` read, for messages about its length."""
    return (f" from {start:g} s" if start > 0 else "") + (f" at {fps:g} fps" if fps is not None else "")
