"""The video VAE: HunyuanVideo's causal 3D autoencoder (diffusers `AutoencoderKLHunyuanVideo`) from a local
directory, with the latent scaling the diffusion model was trained on and tiling for large videos.

Shapes: pixels (B, 3, F, H, W) float in [-1, 1] (or uint8 (B, F, H, W, 3) / (F, H, W, 3), as tensors or as the
numpy arrays `retake.video` reads) <-> latents (B, C, (F - 1) / t + 1, H / s, W / s) with t, s the temporal /
spatial compression (4 and 8 for HunyuanVideo); the first frame is encoded on its own (causal), hence
F = t * k + 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from retake.device import check_device
from retake.errors import RetakeError
from retake.model.weights import check_model_folder


class VAEError(RetakeError):
    """The VAE produced values that cannot be a video or a latent (NaN, inf)."""


@dataclass(frozen=True)
class TilingConfig:
    """Tile sizes in pixels/frames (diffusers' `enable_tiling` arguments): inputs larger than a tile are
    processed in overlapping tiles `stride` apart and blended, bounding memory. Defaults are diffusers'."""

    sample_height: int = 256
    sample_width: int = 256
    sample_frames: int = 16
    stride_height: int = 192
    stride_width: int = 192
    stride_frames: int = 12

    def check(self, spatial: int, temporal: int) -> None:
        """Tiles must align with the compression and overlap (stride < size), else seams or crashes."""
        for name, size, stride, unit in (
            ("height", self.sample_height, self.stride_height, spatial),
            ("width", self.sample_width, self.stride_width, spatial),
            ("frames", self.sample_frames, self.stride_frames, temporal),
        ):
            if size % unit or stride % unit or not 0 < stride < size:
                raise ValueError(
                    f"tile {name}: size {size} and stride {stride} must be multiples of {unit} with "
                    f"0 < stride < size"
                )


# How far past [-1, 1] a float video may reach: bfloat16 rounding of a video in range (one ulp at 1 is 2^-7),
# while a [0, 255] video, the mistake this catches, is off by two orders of magnitude.
RANGE_TOLERANCE = 0.01


def spatial_compression(path: str | Path, subfolder: str | None = None) -> int:
    """The spatial compression of the VAE saved at `path`, read from its config alone (for checks that run
    before the weights load). 1 when the config does not say: no constraint is assumed (diffusers would build
    such a VAE with its default of 8), and an unreadable config is left for the load to name."""
    config = Path(path).expanduser() / (subfolder or "") / "config.json"
    try:
        value = json.loads(config.read_text()).get("spatial_compression_ratio")
    except (OSError, ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) and value > 0 else 1


def video_to_model_input(video: Tensor | np.ndarray) -> Tensor:
    """uint8 (F, H, W, 3) or (B, F, H, W, 3) -> float (B, 3, F, H, W) in [-1, 1]; float (B, 3, F, H, W) in
    [-1, 1] passes. numpy arrays (as `retake.video` reads frames) are taken as tensors."""
    if isinstance(video, np.ndarray):  # copied when a view such as [..., ::-1] has negative strides
        video = torch.as_tensor(np.ascontiguousarray(video))
    if not isinstance(video, Tensor):
        raise ValueError(f"video must be a torch.Tensor or numpy array, got {type(video).__name__}")
    if video.dtype == torch.uint8:
        if video.ndim == 4:
            video = video.unsqueeze(0)
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"uint8 video must be (F, H, W, 3) or (B, F, H, W, 3), got {tuple(video.shape)}")
        return video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    if not video.is_floating_point() or video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"float video must be (B, 3, F, H, W), got {video.dtype} {tuple(video.shape)}")
    _check_range(video)
    return video


def _check_range(video: Tensor) -> None:
    """ValueError for a float video outside [-1, 1]: a [0, 255] one would encode to confident nonsense."""
    if video.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(video))  # NaN fails both tests: not blamed on the VAE
    if not (low >= -1.0 - RANGE_TOLERANCE and high <= 1.0 + RANGE_TOLERANCE):
        raise ValueError(
            f"float video must be in [-1, 1], got values in [{low:.4g}, {high:.4g}] "
            "(pass uint8 frames, or map [0, 255] to [-1, 1] as x / 127.5 - 1)"
        )


def video_to_uint8(video: Tensor) -> Tensor:
    """float [-1, 1] (B, 3, F, H, W) -> uint8 (B, F, H, W, 3); (3, F, H, W) -> (F, H, W, 3)."""
    if video.ndim == 4:
        return video_to_uint8(video.unsqueeze(0))[0]
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, F, H, W) or (3, F, H, W), got {tuple(video.shape)}")
    pixels = ((video.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 4, 1).contiguous()


class VideoVAE:
    """Encode videos to scaled latents and decode them back, for the diffusion model.

    latents = (z - shift_factor) * scaling_factor, with both read from the VAE config (HunyuanVideo has a
    scaling factor of 0.476986 and no shift), so latents are roughly unit variance for the flow model.
    `tiling=None` processes every input in one pass (exact, memory hungry).
    """

    def __init__(self, vae, *, tiling: TilingConfig | None = TilingConfig()) -> None:
        self.vae = vae.eval().requires_grad_(False)
        config = vae.config
        self.latent_channels: int = config.latent_channels
        self.temporal_compression: int = config.temporal_compression_ratio
        self.spatial_compression: int = config.spatial_compression_ratio
        self.scaling_factor: float = float(config.scaling_factor)
        self.shift_factor: float = float(getattr(config, "shift_factor", None) or 0.0)
        self.set_tiling(tiling)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        subfolder: str | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tiling: TilingConfig | None = TilingConfig(),
    ) -> VideoVAE:
        """Load from a local diffusers directory (e.g. a HunyuanVideo checkout with subfolder="vae")."""
        from diffusers import AutoencoderKLHunyuanVideo

        device = check_device(device)
        folder = Path(path).expanduser() / (subfolder or "")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no VAE config.json in {folder}")
        check_model_folder(folder, "AutoencoderKLHunyuanVideo")
        vae = AutoencoderKLHunyuanVideo.from_pretrained(
            Path(path).expanduser(), subfolder=subfolder, torch_dtype=dtype, local_files_only=True
        )
        return cls(vae.to(device), tiling=tiling)

    @property
    def device(self) -> torch.device:
        return self.vae.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    def set_tiling(self, tiling: TilingConfig | None) -> None:
        """Turn tiling on with these tile sizes, or off (None) for single-pass encode/decode."""
        if tiling is None:
            self.vae.disable_tiling()
        else:
            tiling.check(self.spatial_compression, self.temporal_compression)
            self.vae.enable_tiling(
                tile_sample_min_height=tiling.sample_height,
                tile_sample_min_width=tiling.sample_width,
                tile_sample_min_num_frames=tiling.sample_frames,
                tile_sample_stride_height=tiling.stride_height,
                tile_sample_stride_width=tiling.stride_width,
                tile_sample_stride_num_frames=tiling.stride_frames,
            )
        # diffusers splits long videos along time whenever these are on; "no tiling" means no splitting at all.
        self.vae.use_framewise_encoding = tiling is not None
        self.vae.use_framewise_decoding = tiling is not None
        self.tiling = tiling

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F', H', W') of the latents for a video of this size; ValueError if the size does not fit."""
        t, s = self.temporal_compression, self.spatial_compression
        if frames < 1 or (frames - 1) % t:
            raise ValueError(f"frame count must be {t}k + 1 (e.g. {t * 4 + 1}), got {frames}")
        if height < s or height % s or width < s or width % s:
            raise ValueError(f"height and width must be positive multiples of {s}, got {height}x{width}")
        return (self.latent_channels, (frames - 1) // t + 1, height // s, width // s)

    @torch.no_grad()
    def encode(
        self, video: Tensor | np.ndarray, *, generator: torch.Generator | None = None, sample: bool = False
    ) -> Tensor:
        """Video (see `video_to_model_input`) -> scaled latents (B, C, F', H', W'). sample=True draws from the
        posterior (with `generator`), otherwise its mean is used (deterministic)."""
        x = video_to_model_input(video)
        self.latent_shape(*x.shape[2:])
        posterior = self.vae.encode(x.to(device=self.device, dtype=self.dtype)).latent_dist
        z = posterior.sample(generator=generator) if sample else posterior.mode()
        return (self._finite(z, "encoded") - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents (B, C, F', H', W') -> float32 video (B, 3, (F' - 1) * t + 1, H' * s, W' * s) in [-1, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"latents must be (B, {self.latent_channels}, F, H, W), got {tuple(latents.shape)}"
            )
        if not bool(torch.isfinite(latents).all()):
            # Checked first, so that what came in broken (a diverged sampler, say) is not blamed on the VAE.
            raise ValueError("latents passed to decode hold NaN or inf values; the VAE was not run")
        z = latents.to(device=self.device, dtype=self.dtype) / self.scaling_factor + self.shift_factor
        return self._finite(self.vae.decode(z).sample, "decoded").float().clamp(-1.0, 1.0)

    def _finite(self, x: Tensor, what: str) -> Tensor:
        """`x`, or a VAEError: NaN or inf frames would otherwise be written as black video. Inputs are checked
        before, so the VAE itself made them: by overflow in float16, else its weights are broken."""
        if bool(torch.isfinite(x).all()):
            return x
        if self.dtype == torch.float16:
            cause = "float16 activations overflow past 65504; load it in bfloat16 or float32"
        else:
            cause = "from finite input, so its weights are likely broken (NaN or inf)"
        raise VAEError(f"the VAE {what} NaN or inf values in {self.dtype} ({cause})")

    def decode_to_uint8(self, latents: Tensor) -> Tensor:
        """Latents -> uint8 video (B, F, H, W, 3), ready for `retake.video` writers."""
        return video_to_uint8(self.decode(latents))
