"""Training a small HunyuanVideo-layout video VAE (diffusers `AutoencoderKLHunyuanVideo`) on Flatland.

Pieces, in order: the architecture and training configs; a seeded, endless stream of Flatland clips that covers
every background pattern, camera motion and global style and includes edited scenes (the editor's outputs are
edited scenes, so the VAE must reconstruct them too); held-out clips per background pattern from a separate
random stream; the loss (L1 + MSE reconstruction + a small KL); checkpoints; the loop; and the export to a
diffusers directory that `retake.model.vae.VideoVAE.from_pretrained` loads.

Randomness is stateless: clip `i` of run seed `s` and the posterior noise of step `n` are drawn from generators
seeded by (s, i) and (s, n). A resumed run therefore sees exactly the data and noise an uninterrupted run sees,
and a checkpoint needs no RNG state, only model, optimizer, EMA and step.

Shapes: clips (F, H, W, 3) uint8 -> batches (B, 3, F, h, w) float in [-1, 1] -> latents (B, C, (F-1)/4+1, h/s,
w/s) -> reconstructions (B, 3, F, h, w).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from retake import files
from retake.checks import check_int, describe_changes
from retake.eval.psnr import psnr
from retake.files import replacing
from retake.flatland.edits import apply_edit, sample_edit
from retake.flatland.generate import CAMERA_MODES, random_scene
from retake.flatland.palette import PATTERNS, STYLES
from retake.flatland.render import render
from retake.model.vae import video_to_model_input, video_to_uint8
from retake.train.ema import EMA

# The VAE shipped with the package (package data), trained by `retake vae train` on Flatland.
FLATLAND_VAE_DIR = Path(__file__).resolve().parents[1] / "assets" / "flatland" / "vae"
STATE_FILE = "state.safetensors"
LOG_FILE = "log.jsonl"
VAE_DIR = "vae"
METRICS_FILE = "metrics.json"
EMA_PREFIX = "ema."  # checkpoint keys of the EMA weights
TARGET_PSNR_DB = 30.0
OPTIMIZERS = ("muon", "adamw")

# First words of the seed sequences of the three clip streams: they differ, so no training seed can ever
# draw a held-out or calibration clip.
_TRAIN_STREAM, _HELDOUT_STREAM, _CALIBRATION_STREAM = 0x7EA1, 0x4E1D, 0xCA1B
_SPEC, _SCENE, _CROP = 0, 1, 2  # last seed word: independent draws for what a clip shows, its scene, its crop
_OBJECT_EDITS = ("add", "remove", "replace", "recolour")  # background and style are drawn separately
_HELDOUT_STYLES = (None, *STYLES)


# ---- configs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VAEArchitecture:
    """The diffusers `AutoencoderKLHunyuanVideo` arguments retake varies. Temporal compression 4 keeps
    HunyuanVideo's causal layout (frames 4k + 1); spatial compression s needs log2(s) spatial down blocks, and
    4x time needs two time-downsampling blocks before the last, so there are max(3, log2(s) + 1) blocks."""

    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (16, 32, 32)
    layers_per_block: int = 1
    # One group: GroupNorm then normalises each clip over all channels together. With more groups every
    # group loses its own mean and scale per clip, which is where a flat colour lives (replicate padding gives
    # no border to recover it from); one group keeps colours in the relations between channels.
    norm_num_groups: int = 1
    spatial_compression: int = 4
    temporal_compression: int = 4
    mid_attention: bool = False

    def __post_init__(self) -> None:
        s, blocks = self.spatial_compression, len(self.block_out_channels)
        if s < 2 or s & (s - 1):
            raise ValueError(f"spatial_compression must be a power of two >= 2, got {s}")
        if self.temporal_compression != 4:
            raise ValueError(
                f"temporal_compression must be 4 (diffusers' decoder), got {self.temporal_compression}"
            )
        if blocks < max(3, int(math.log2(s)) + 1):
            raise ValueError(
                f"block_out_channels {self.block_out_channels} has {blocks} blocks; "
                f"spatial compression {s} with 4x time needs at least {max(3, int(math.log2(s)) + 1)}"
            )
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad or self.latent_channels < 1 or self.layers_per_block < 1:
            raise ValueError(
                f"norm_num_groups {self.norm_num_groups} must divide every block width {self.block_out_channels}"
                f", and latent_channels ({self.latent_channels}) and layers_per_block "
                f"({self.layers_per_block}) must be >= 1"
            )


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """One VAE training run. Clips are rendered at `size` x `size` with `frames` frames and randomly cropped
    to `crop` (None: whole frames); the network is convolutional, so crops buy more scenes per second of CPU
    and the held-out eval runs on whole `eval_size` frames."""

    arch: VAEArchitecture = field(default_factory=VAEArchitecture)
    steps: int = 6000
    batch: int = 4
    size: int = 64
    crop: int | None = 32
    frames: int = 5
    fps: float = 8.0
    seed: int = 0
    # Warm start: the weights of an exported VAE folder or of a run's state.safetensors (same architecture),
    # e.g. to fine-tune a short-clip run on full-length clips. None: fresh weights from `seed`.
    init: str | None = None
    optimizer: str = "muon"  # "muon": Muon on hidden conv filters + AdamW on the rest; "adamw": AdamW only
    lr: float = 5e-4  # AdamW's; 2e-3 oscillates without progress, 1e-4 learns more slowly
    muon_lr: float = 0.02
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * this
    warmup: int = 50
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    # EMA of the weights (0: none). With batches of 2-4 clips the weights are noisy: held-out PSNR can drop by
    # 1.5 dB from one eval to the next. With an EMA, evals score both, and the export (the weights one ships)
    # is the EMA.
    ema_decay: float = 0.0
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    kl_weight: float = 1e-6  # on the per-element mean KL: keeps latents bounded without costing detail
    edited_share: float = 0.5  # share of training clips that show an object-edited scene
    style_share: float = 0.25  # share rendered in one of the global styles
    eval_every: int = 250
    eval_clips: int = 4  # held-out clips per background pattern
    eval_size: int = 64
    eval_frames: int = 17
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self) -> None:
        t = self.arch.temporal_compression
        for name in ("steps", "batch", "eval_clips", "checkpoint_every", "log_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("frames", "eval_frames"):
            if (getattr(self, name) - 1) % t or getattr(self, name) < 1:
                raise ValueError(f"{name} must be {t}k + 1 (e.g. 9 or 17), got {getattr(self, name)}")
        s = self.arch.spatial_compression
        for name in ("size", "eval_size", "crop"):
            value = getattr(self, name)
            if value is not None and (value < s or value % s):
                raise ValueError(f"{name} must be a positive multiple of {s}, got {value}")
        if self.crop is not None and self.crop > self.size:
            raise ValueError(f"crop {self.crop} is larger than the clip size {self.size}")
        if self.lr <= 0 or self.muon_lr <= 0 or self.warmup < 0:
            raise ValueError(
                f"need lr > 0, muon_lr > 0 and warmup >= 0, got {self.lr}, {self.muon_lr} and {self.warmup}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no EMA), got {self.ema_decay}")
        if not (0 <= self.edited_share <= 1 and 0 <= self.style_share <= 1):
            raise ValueError(f"shares must be in [0, 1], got {self.edited_share} and {self.style_share}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> AutoencoderTrainConfig:
        arch = dict(data.get("arch", {}))
        if "block_out_channels" in arch:
            arch["block_out_channels"] = tuple(arch["block_out_channels"])  # JSON made it a list
        unknown = sorted(set(arch) - {f.name for f in fields(VAEArchitecture)})
        if unknown:  # dropping one would build another network than the one saved
            raise ValueError(
                f"unknown VAE architecture settings {unknown} (written by another retake version?)"
            )
        arch = VAEArchitecture(**arch)
        known = {f.name for f in fields(cls)} - {"arch"}
        return cls(arch=arch, **{k: v for k, v in data.items() if k in known})


def build_vae(arch: VAEArchitecture, *, seed: int = 0, scaling_factor: float = 1.0):
    """A freshly initialised `AutoencoderKLHunyuanVideo` (fp32). diffusers initialises from the global RNG,
    so it is forked and seeded here, leaving the caller's RNG untouched."""
    from diffusers import AutoencoderKLHunyuanVideo

    blocks = len(arch.block_out_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLHunyuanVideo(
            latent_channels=arch.latent_channels,
            down_block_types=("HunyuanVideoDownBlock3D",) * blocks,
            up_block_types=("HunyuanVideoUpBlock3D",) * blocks,
            block_out_channels=tuple(arch.block_out_channels),
            layers_per_block=arch.layers_per_block,
            norm_num_groups=arch.norm_num_groups,
            scaling_factor=scaling_factor,
            spatial_compression_ratio=arch.spatial_compression,
            temporal_compression_ratio=arch.temporal_compression,
            mid_block_add_attention=arch.mid_attention,
        )
    _single_pass(vae)
    return vae


def _single_pass(vae) -> None:
    """diffusers splits clips longer than 16 frames into overlapping time tiles by default; Flatland clips are
    small, and training on tiles would teach the seams, so every pass sees the whole clip."""
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    vae.disable_tiling()


# ---- Flatland clips -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """What a clip must show; everything else (colours, objects, motion, the edit itself) is random."""

    pattern: str
    camera: str
    style: str | None = None
    edit: str | None = None  # an object edit applied to the scene: the clip is then an edited target


def render_clip(
    spec: ClipSpec, rng: np.random.Generator, *, size: int, frames: int, fps: float
) -> np.ndarray:
    """Render one clip that satisfies `spec`: (frames, size, size, 3) uint8."""
    scene = random_scene(rng, fps=fps, objects=(0 if spec.edit == "add" else 1, 4), camera=spec.camera)
    if spec.edit is not None:
        scene = apply_edit(scene, sample_edit(rng, scene, spec.edit, fps=fps))
    scene = replace(scene, background=replace(scene.background, pattern=spec.pattern), style=spec.style)
    return render(scene, frames, size).frames


def training_spec(seed: int, index: int, *, edited_share: float = 0.5, style_share: float = 0.25) -> ClipSpec:
    """What clip `index` of run `seed` shows. Patterns cycle every 5 clips and cameras every 15, so every 5
    consecutive clips cover all patterns and every 15 all pattern x camera pairs; styles and edits are drawn."""
    return _stream_spec(_TRAIN_STREAM, seed, index, edited_share, style_share)


def training_clip(
    seed: int,
    index: int,
    *,
    size: int = 64,
    frames: int = 17,
    fps: float = 8.0,
    edited_share: float = 0.5,
    style_share: float = 0.25,
) -> np.ndarray:
    """Clip `index` of the training stream of run `seed` (deterministic): (frames, size, size, 3) uint8."""
    spec = training_spec(seed, index, edited_share=edited_share, style_share=style_share)
    return render_clip(spec, _rng(_TRAIN_STREAM, seed, index, _SCENE), size=size, frames=frames, fps=fps)


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(list(words))


def _stream_spec(stream: int, seed: int, index: int, edited_share: float, style_share: float) -> ClipSpec:
    rng = _rng(stream, seed, index, _SPEC)
    pattern = PATTERNS[index % len(PATTERNS)]
    camera = CAMERA_MODES[(index // len(PATTERNS)) % len(CAMERA_MODES)]
    style = STYLES[int(rng.integers(len(STYLES)))] if rng.random() < style_share else None
    edit = _OBJECT_EDITS[int(rng.integers(len(_OBJECT_EDITS)))] if rng.random() < edited_share else None
    return ClipSpec(pattern, camera, style, edit)


def clip_stream(seed: int, *, start: int = 0, **options) -> Iterator[np.ndarray]:
    """The endless training stream of run `seed` from clip `start` on (options as for `training_clip`)."""
    index = start
    while True:
        yield training_clip(seed, index, **options)
        index += 1


def heldout_clips(
    pattern: str, count: int, *, size: int = 64, frames: int = 17, fps: float = 8.0
) -> list[np.ndarray]:
    """`count` held-out clips with background `pattern`, from a stream training never draws. Clip j has camera
    j mod 3 (static, pan, zoom) and style j mod 4 (none, grayscale, invert, outline); odd clips are edited."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown background pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
    clips = []
    for j in range(count):
        rng = _rng(_HELDOUT_STREAM, PATTERNS.index(pattern), j, _SCENE)
        spec = ClipSpec(
            pattern,
            CAMERA_MODES[j % len(CAMERA_MODES)],
            _heldout_style(j),
            _OBJECT_EDITS[(j // 2) % len(_OBJECT_EDITS)] if j % 2 else None,
        )
        clips.append(render_clip(spec, rng, size=size, frames=frames, fps=fps))
    return clips


def _heldout_style(j: int) -> str | None:
    """The global style of held-out clip j (None: unstyled): the one rule both the clips and the per-style
    summary follow."""
    return _HELDOUT_STYLES[j % len(_HELDOUT_STYLES)]


def calibration_clips(count: int, *, size: int = 64, frames: int = 17, fps: float = 8.0) -> list[np.ndarray]:
    """Training-distribution clips from their own stream, for measuring the latent scale."""
    specs = [_stream_spec(_CALIBRATION_STREAM, 0, i, 0.5, 0.25) for i in range(count)]
    rngs = [_rng(_CALIBRATION_STREAM, 0, i, _SCENE) for i in range(count)]
    return [render_clip(s, r, size=size, frames=frames, fps=fps) for s, r in zip(specs, rngs, strict=True)]


def training_batch(config: AutoencoderTrainConfig, step: int) -> Tensor:
    """The batch of step `step` (0-based): (batch, 3, frames, crop, crop) float in [-1, 1]."""
    shares = {"edited_share": config.edited_share, "style_share": config.style_share}
    clips = []
    for i in range(step * config.batch, (step + 1) * config.batch):
        clip = training_clip(config.seed, i, size=config.size, frames=config.frames, fps=config.fps, **shares)
        clips.append(_crop(clip, config.crop, _rng(_TRAIN_STREAM, config.seed, i, _CROP)))
    return video_to_model_input(torch.from_numpy(np.stack(clips)))  # (B, 3, F, crop, crop)


def _crop(clip: np.ndarray, crop: int | None, rng: np.random.Generator) -> np.ndarray:
    if crop is None:
        return clip
    y, x = (int(rng.integers(n - crop + 1)) for n in clip.shape[1:3])
    return clip[:, y : y + crop, x : x + crop]


# ---- loss and evaluation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossParts:
    total: Tensor
    l1: float
    mse: float
    kl: float

    @property
    def psnr(self) -> float:
        """PSNR of the batch in dB ([-1, 1] pixels: peak-to-peak 2)."""
        return 10.0 * math.log10(4.0 / max(self.mse, 1e-12))

    def row(self) -> dict[str, float]:
        return {"loss": self.total.item(), "l1": self.l1, "mse": self.mse, "kl": self.kl, "psnr": self.psnr}


def vae_loss(vae, x: Tensor, config: AutoencoderTrainConfig, generator: torch.Generator) -> LossParts:
    """Encode x (B, 3, F, h, w), sample the posterior with `generator`, decode, and weigh the errors."""
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)  # (B, C, F', h/s, w/s)
    recon = vae.decode(z).sample  # (B, 3, F, h, w)
    l1 = (recon - x).abs().mean()
    mse = (recon - x).square().mean()
    # KL(N(mu, sigma) || N(0, 1)) per latent element; diffusers' .kl() sums only dims 1-3 of 5-D latents.
    kl = 0.5 * (posterior.mean.square() + posterior.var - 1.0 - posterior.logvar).mean()
    total = config.l1_weight * l1 + config.mse_weight * mse + config.kl_weight * kl
    return LossParts(total, l1.item(), mse.item(), kl.item())


@torch.no_grad()
def reconstruct(vae, clips: np.ndarray) -> np.ndarray:
    """Round trip through the posterior mean: uint8 (F, H, W, 3) or (B, F, H, W, 3) -> the same shape.
    Clips go through together: oneDNN only takes batches (or large tensors), the slow path is ~3x slower."""
    single = clips.ndim == 4
    x = video_to_model_input(torch.from_numpy(clips[None] if single else clips)).to(vae.device, vae.dtype)
    recon = video_to_uint8(vae.decode(vae.encode(x).latent_dist.mode()).sample.float()).cpu().numpy()
    return recon[0] if single else recon


@dataclass(frozen=True)
class KindScore:
    mean: float
    min: float
    clips: tuple[float, ...]


def evaluate(vae, clips_by_pattern: dict[str, list[np.ndarray]]) -> dict[str, KindScore]:
    """Reconstruction PSNR (dB) of every held-out clip, summarised per background pattern."""
    was_training = vae.training
    vae.eval()
    scores = {}
    for pattern, clips in clips_by_pattern.items():
        recons = reconstruct(vae, np.stack(clips))
        values = tuple(round(psnr(c, r), 3) for c, r in zip(clips, recons, strict=True))
        scores[pattern] = KindScore(round(float(np.mean(values)), 3), min(values), values)
    vae.train(was_training)
    return scores


def style_means(scores: dict[str, KindScore]) -> dict[str, float]:
    """Mean held-out PSNR per global style ("none" included) over every pattern: held-out clip j has style
    j mod 4, and the styles differ far more than the patterns (grayscale clips score ~6 dB above unstyled ones)."""
    by_style: dict[str, list[float]] = {}
    for score in scores.values():
        for j, value in enumerate(score.clips):
            by_style.setdefault(_heldout_style(j) or "none", []).append(value)
    return {style: round(float(np.mean(values)), 3) for style, values in by_style.items()}


def heldout_set(
    clips: int, *, size: int = 64, frames: int = 17, fps: float = 8.0
) -> dict[str, list[np.ndarray]]:
    """`clips` held-out clips for every background pattern."""
    return {p: heldout_clips(p, clips, size=size, frames=frames, fps=fps) for p in PATTERNS}


def evaluate_heldout(
    vae, *, clips: int = 4, size: int = 64, frames: int = 17, fps: float = 8.0
) -> dict[str, KindScore]:
    """Held-out reconstruction PSNR per background pattern of a diffusers VAE (e.g. `VideoVAE(...).vae`)."""
    check_int("clips", clips, minimum=1)
    t, s = vae.config.temporal_compression_ratio, vae.config.spatial_compression_ratio
    if check_int("frames", frames, minimum=1) % t != 1 % t:
        raise ValueError(f"frames must be {t}k + 1 for this VAE (e.g. {4 * t + 1}), got {frames}")
    if check_int("size", size, minimum=s) % s:
        raise ValueError(f"size must be a multiple of {s} for this VAE, got {size}")
    _single_pass(vae)
    return evaluate(vae, heldout_set(clips, size=size, frames=frames, fps=fps))


@torch.no_grad()
def measure_latent_std(vae, clips: list[np.ndarray], batch: int = 4) -> float:
    """Standard deviation of the unscaled posterior means over `clips` (encoded `batch` at a time)."""
    vae.eval()
    latents = []
    for i in range(0, len(clips), batch):
        x = video_to_model_input(torch.from_numpy(np.stack(clips[i : i + batch]))).to(vae.device, vae.dtype)
        latents.append(vae.encode(x).latent_dist.mode().flatten())
    return float(torch.cat(latents).std())


# ---- checkpoints ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    config: AutoencoderTrainConfig
    step: int  # optimiser steps taken
    seconds: float  # training wall time so far, over every session of the run


def save_checkpoint(
    path: Path, vae, optimizer: VAEOptimizer, info: CheckpointInfo, ema: EMA | None = None
) -> None:
    """Model, optimizer states, EMA, step and config in one safetensors file, written atomically (temp +
    rename) so a run killed mid-write keeps its previous checkpoint."""
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
    if ema is not None:
        tensors.update({f"{EMA_PREFIX}{k}": v.clone().contiguous() for k, v in ema.state_dict().items()})
    metadata = {
        "step": str(info.step),
        "seconds": repr(info.seconds),
        "config": json.dumps(info.config.to_json()),
    }
    for part, opt in optimizer.parts.items():
        state = opt.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{part}.{index}.{name}"] = (
                    torch.as_tensor(value).detach().clone().contiguous()
                )
        metadata[f"param_groups.{part}"] = json.dumps(state["param_groups"])
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def read_checkpoint_info(path: Path) -> CheckpointInfo:
    """Config, step and seconds stored in a checkpoint, without loading its tensors."""
    meta = _metadata(path)
    try:
        config = AutoencoderTrainConfig.from_json(json.loads(meta["config"]))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return CheckpointInfo(config, int(meta["step"]), float(meta.get("seconds", 0.0)))


def load_checkpoint(path: Path, vae, optimizer: VAEOptimizer, ema: EMA | None = None) -> CheckpointInfo:
    """Restore model, optimizer and EMA in place from `save_checkpoint`'s file. Given an `ema` and a checkpoint
    without EMA tensors (`retake vae train --resume` refuses that change of `ema_decay`; a caller may not),
    the EMA starts from the restored weights."""
    tensors = load_file(str(path))
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    vae.load_state_dict(model, strict=True)  # copies in place, so Muon's views stay attached
    if ema is not None:
        shadow = {k.removeprefix(EMA_PREFIX): v for k, v in tensors.items() if k.startswith(EMA_PREFIX)}
        ema.load_state_dict(shadow or {n: p.detach().float() for n, p in ema.params.items()})
    meta = _metadata(path)
    for part, opt in optimizer.parts.items():
        state: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(f"optimizer.{part}."):
                index, name = key.removeprefix(f"optimizer.{part}.").split(".", 1)
                state.setdefault(int(index), {})[name] = value
        groups = json.loads(meta[f"param_groups.{part}"])
        for group in groups:
            group.update({k: tuple(v) for k, v in group.items() if k in ("betas", "ns_coefficients")})
        opt.load_state_dict({"state": state, "param_groups": groups})
    return read_checkpoint_info(path)


# ---- the loop ----------------------------------------------------------------------------------------------------


def learning_rate(config: AutoencoderTrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


class VAEOptimizer:
    """AdamW, optionally with Muon (`torch.optim.Muon`) on the hidden convolution filters.

    Muon orthogonalises each filter's momentum seen as an (out, in * k * k * k) matrix; on this network it
    reaches in 500 steps the held-out PSNR AdamW reaches in ~2000. torch's Muon takes 2-D parameters only, so
    it updates 2-D views that share storage with the 5-D filters. The RGB-facing convolutions (3 input or
    output channels), biases and norms stay with AdamW, as Muon's authors advise for first and last layers.
    """

    def __init__(self, vae, config: AutoencoderTrainConfig) -> None:
        def is_matrix(p: Tensor) -> bool:
            return config.optimizer == "muon" and p.ndim >= 2 and min(p.shape[:2]) > 3

        self.config = config
        params = list(vae.parameters())
        self.filters = [p for p in params if is_matrix(p)]
        self.views = [torch.nn.Parameter(p.data.view(p.shape[0], -1)) for p in self.filters]  # (out, in*k^3)
        rest = [p for p in params if not is_matrix(p)]
        self.parts: dict[str, torch.optim.Optimizer] = {
            "adamw": torch.optim.AdamW(rest, lr=config.lr, weight_decay=config.weight_decay)
        }
        if self.views:
            self.parts["muon"] = torch.optim.Muon(self.views, lr=config.muon_lr, weight_decay=0.0)

    def set_lr(self, scale: float) -> None:
        """Scale both learning rates by the schedule's factor."""
        base = {"adamw": self.config.lr, "muon": self.config.muon_lr}
        for name, optimizer in self.parts.items():
            for group in optimizer.param_groups:
                group["lr"] = base[name] * scale

    def step(self) -> None:
        for filt, view in zip(self.filters, self.views, strict=True):
            view.grad = None if filt.grad is None else filt.grad.reshape(view.shape)
        for optimizer in self.parts.values():
            optimizer.step()

    def zero_grad(self) -> None:
        for filt, view in zip(self.filters, self.views, strict=True):
            filt.grad = view.grad = None
        for optimizer in self.parts.values():
            optimizer.zero_grad(set_to_none=True)


def make_optimizer(vae, config: AutoencoderTrainConfig) -> VAEOptimizer:
    return VAEOptimizer(vae, config)


def train_step(vae, optimizer: VAEOptimizer, config: AutoencoderTrainConfig, step: int) -> LossParts:
    """One optimisation step on the batch of `step`, with posterior noise seeded by (seed, step)."""
    optimizer.set_lr(learning_rate(config, step) / config.lr)
    noise = torch.Generator(device=vae.device).manual_seed(config.seed * 1_000_003 + step)
    parts = vae_loss(vae, training_batch(config, step).to(vae.device), config, noise)
    optimizer.zero_grad()
    parts.total.backward()
    torch.nn.utils.clip_grad_norm_(vae.parameters(), config.grad_clip)
    optimizer.step()
    return parts


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    steps: int
    scores: dict[str, KindScore]
    seconds: float

    @property
    def vae_dir(self) -> Path:
        return self.out_dir / VAE_DIR


def train_autoencoder(
    config: AutoencoderTrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    device: torch.device | str = "cpu",
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a Flatland VAE in `out_dir`: checkpoints to state.safetensors, logs to log.jsonl,
    and at the end exports out_dir/vae (diffusers layout, scaling factor measured) with metrics.json.

    stop_after: stop (with a checkpoint, without export) once this many steps are done, as if killed.
    """
    out_dir = Path(out_dir).expanduser()
    state_path = out_dir / STATE_FILE
    if state_path.exists() and not resume:
        raise FileExistsError(
            f"{out_dir} already holds a training run; continue it with --resume (resume=True) or choose another folder"
        )
    if resume and not state_path.exists():
        raise FileNotFoundError(f"nothing to resume: no {STATE_FILE} in {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    files.remove_leftovers(out_dir)  # checkpoints and exports killed mid-write
    vae = build_vae(config.arch, seed=config.seed)
    if config.init is not None and not resume:  # a resumed run's checkpoint already holds the weights
        load_init_weights(vae, Path(config.init))
    vae = vae.to(device).train()
    optimizer = make_optimizer(vae, config)
    ema = EMA(vae, config.ema_decay) if config.ema_decay else None
    info = _resume(state_path, vae, optimizer, config, ema) if resume else CheckpointInfo(config, 0, 0.0)
    _trim_log(out_dir / LOG_FILE, info.step)
    heldout = heldout_set(config.eval_clips, size=config.eval_size, frames=config.eval_frames, fps=config.fps)
    last = min(config.steps, config.steps if stop_after is None else stop_after)
    began = time.monotonic() - info.seconds
    with _progress(progress) as bar, (out_dir / LOG_FILE).open("a") as log:
        task = bar.add_task("vae", total=config.steps, completed=info.step, status="")
        for step in range(info.step, last):
            parts = train_step(vae, optimizer, config, step)
            if ema is not None:
                ema.update()
            done, seconds = step + 1, round(time.monotonic() - began, 2)
            if done % config.log_every == 0 or done == last:
                _log(
                    log, {"step": done, **parts.row(), "lr": learning_rate(config, step), "seconds": seconds}
                )
            if done % config.eval_every == 0:
                row = {"step": done, "eval": _rows(evaluate(vae, heldout))}
                if ema is not None:
                    with ema.swapped():
                        row["eval_ema"] = _rows(evaluate(vae, heldout))
                _log(log, row)
            if done % config.checkpoint_every == 0 or done == last:
                save_checkpoint(state_path, vae, optimizer, CheckpointInfo(config, done, seconds), ema)
            bar.update(
                task, completed=done, status=f"loss {parts.total.item():.4f}  psnr {parts.psnr:5.2f} dB"
            )
    seconds = time.monotonic() - began
    if last < config.steps:
        return TrainResult(out_dir, last, {}, seconds)
    with nullcontext() if ema is None else ema.swapped():  # the export is the EMA when there is one
        scores = evaluate(vae, heldout)
        export_vae(vae, out_dir / VAE_DIR, config=config, scores=scores, seconds=seconds)
    return TrainResult(out_dir, last, scores, seconds)


def load_init_weights(vae, path: Path) -> None:
    """Copy into `vae` the weights of an exported VAE folder (diffusers layout) or of a training checkpoint
    (`state.safetensors`, or the run folder holding it; its EMA if it has one). The architectures must match
    exactly."""
    if path.is_dir():
        exported, state = path / "diffusion_pytorch_model.safetensors", path / STATE_FILE
        path = exported if exported.is_file() else state
    if not path.is_file():
        raise FileNotFoundError(f"no VAE weights at {path} (want an exported VAE folder or a {STATE_FILE})")
    tensors = load_file(str(path))
    if any(k.startswith("model.") for k in tensors):  # a training checkpoint: model, EMA, optimizer state
        # Its EMA weights when it has them: they are what the run would export.
        tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")} | {
            k.removeprefix(EMA_PREFIX): v for k, v in tensors.items() if k.startswith(EMA_PREFIX)
        }
    own = vae.state_dict()
    missing, extra = sorted(own.keys() - tensors.keys()), sorted(tensors.keys() - own.keys())
    wrong = [k for k in own.keys() & tensors.keys() if own[k].shape != tensors[k].shape]
    if missing or extra or wrong:
        raise ValueError(
            f"init weights {path} do not fit this architecture: {len(missing)} missing, {len(extra)} unexpected"
            f", {len(wrong)} of another shape (e.g. {(missing + extra + wrong)[0]})"
        )
    vae.load_state_dict(tensors, strict=True)


# What a resumed run may change: how far it goes, and `init` (the checkpoint holds the weights now).
_RESUME_MAY_CHANGE = ("steps", "init")


def _resume(
    path: Path, vae, optimizer: VAEOptimizer, config: AutoencoderTrainConfig, ema: EMA | None
) -> CheckpointInfo:
    """Load the checkpoint, which must have been written with these settings (all but `steps` and `init`):
    another seed, batch or learning rate would silently make a run no uninterrupted one matches, and a run
    resumed without its `ema_decay` would export raw weights instead of the EMA it kept. (Another `steps` is
    allowed, as `retake train` allows it: it stretches the cosine decay from here on.)"""
    saved = read_checkpoint_info(path).config.to_json()
    now = config.to_json()
    for key in _RESUME_MAY_CHANGE:
        saved.pop(key), now.pop(key)
    changes = describe_changes(files.as_read_back(saved), files.as_read_back(now))
    if changes:
        raise ValueError(
            f"checkpoint {path} was written with other settings ({'; '.join(changes)}); resume with its "
            "settings, or train into a new folder"
        )
    return load_checkpoint(path, vae, optimizer, ema)


def _rows(scores: dict[str, KindScore]) -> dict[str, dict]:
    return {k: asdict(v) for k, v in scores.items()}


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def _trim_log(path: Path, step: int) -> None:
    """Keep only the log rows of the steps the run starts after. A run killed after its last checkpoint
    logged steps that the resumed run takes and logs again (a fresh run in a killed one's folder: all of
    them), and perhaps a line cut short (`files.read_json_lines`); the log then reads as an uninterrupted
    run's."""
    rows = files.read_json_lines(path, repair=True)
    kept = [row for row in rows if _logged_by(row, step)]
    if len(kept) < len(rows):
        files.write_json_lines(path, kept)


def _logged_by(row: dict, step: int) -> bool:
    """Whether a log row was logged at or before `step`."""
    try:
        return int(row["step"]) <= step
    except (KeyError, TypeError, ValueError):  # not a row this log writes
        return False


def _log(handle, row: dict) -> None:
    handle.write(json.dumps(row) + "\n")
    handle.flush()


# ---- export -----------------------------------------------------------------------------------------------------


def export_vae(
    vae,
    out_dir: Path,
    *,
    config: AutoencoderTrainConfig,
    scores: dict[str, KindScore],
    seconds: float,
    calibration: int = 20,
    notes: str = "",
) -> Path:
    """Write `vae` as a diffusers directory with `scaling_factor` = 1 / std of Flatland latents (so scaled
    latents have unit std) and metrics.json (held-out PSNR per background pattern, how it was trained)."""
    std = measure_latent_std(
        vae, calibration_clips(calibration, size=config.eval_size, frames=config.eval_frames)
    )
    vae.register_to_config(scaling_factor=round(1.0 / std, 6))
    metrics = {
        "heldout_psnr_db": _rows(scores),
        "heldout_psnr_db_by_style": style_means(scores),
        "below_target": _below_target(scores),
        "target_psnr_db": TARGET_PSNR_DB,
        "latent_std_before_scaling": round(std, 6),
        "heldout": f"{config.eval_clips} clips per pattern, {config.eval_frames} frames at "
        f"{config.eval_size}x{config.eval_size}, cameras static/pan/zoom, styles none/grayscale/invert/outline, "
        "every other clip object-edited; posterior mean, no tiling",
        "training": {
            **config.to_json(),
            "wall_seconds": round(seconds, 1),
            "torch_threads": torch.get_num_threads(),
        },
        "notes": notes,
    }
    # Staged: a kill mid-export never leaves a config.json without its weights at the final path.
    with files.staged_folder(out_dir, marker="config.json", what="VAE export", overwrite=True) as staging:
        vae.save_pretrained(staging, safe_serialization=True)
        files.write_json(staging / METRICS_FILE, metrics, indent=2)
    return Path(out_dir).expanduser()


def _below_target(scores: dict[str, KindScore]) -> list[str]:
    """Human-readable list of every pattern mean and single clip under the target."""
    out = [f"{k} mean {v.mean:.2f} dB" for k, v in scores.items() if v.mean < TARGET_PSNR_DB]
    for k, v in scores.items():
        out += [f"{k} clip {i}: {p:.2f} dB" for i, p in enumerate(v.clips) if p < TARGET_PSNR_DB]
    return out
