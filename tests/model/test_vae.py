"""The VAE wrapper on a tiny random AutoencoderKLHunyuanVideo, saved and loaded from disk."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLHunyuanVideo

from retake.model.vae import TilingConfig, VAEError, VideoVAE, video_to_model_input, video_to_uint8

SCALE = 0.5


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    """A HunyuanVideo-shaped checkout with a tiny VAE in vae/ (4x time, 8x space, 4 latent channels)."""
    root = tmp_path_factory.mktemp("hunyuan_vae")
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        scaling_factor=SCALE,
        mid_block_add_attention=False,
    )
    vae.save_pretrained(root / "vae", safe_serialization=True)
    return root


@pytest.fixture(scope="module")
def vae(vae_dir) -> VideoVAE:
    return VideoVAE.from_pretrained(vae_dir, subfolder="vae", tiling=None)


def _video(frames: int = 5, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1


def test_loads_config_and_weights_from_disk(vae_dir, vae):
    assert list((vae_dir / "vae").glob("*.safetensors"))
    assert (vae.latent_channels, vae.temporal_compression, vae.spatial_compression) == (4, 4, 8)
    assert vae.scaling_factor == SCALE and vae.shift_factor == 0.0
    assert vae.dtype == torch.float32 and vae.device.type == "cpu"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VideoVAE.from_pretrained(vae_dir / "nowhere")


def test_latent_shape_and_size_checks(vae):
    assert vae.latent_shape(61, 480, 768) == (4, 16, 60, 96)
    assert vae.latent_shape(1, 8, 8) == (4, 1, 1, 1)
    with pytest.raises(ValueError, match="got 60"):
        vae.latent_shape(60, 480, 768)
    with pytest.raises(ValueError, match="484x768"):
        vae.latent_shape(61, 484, 768)
    with pytest.raises(ValueError, match="got 8"):
        vae.encode(_video(frames=8))


def test_encode_shape_and_scaling_applied(vae):
    video = _video(frames=9)
    latents = vae.encode(video)
    assert latents.shape == (1, 4, 3, 2, 2)
    raw = vae.vae.encode(video).latent_dist.mode()
    torch.testing.assert_close(latents, raw * SCALE)


def test_posterior_sampling_uses_the_generator(vae):
    video = _video()
    a = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(1))
    b = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(1))
    c = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, vae.encode(video))


def test_decode_inverts_the_scaling_and_returns_clamped_pixels(vae):
    latents = torch.randn(2, 4, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    video = vae.decode(latents)
    assert video.shape == (2, 3, 5, 16, 24) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    raw = vae.vae.decode(latents / SCALE).sample.clamp(-1, 1)
    torch.testing.assert_close(video, raw)
    frames = vae.decode_to_uint8(latents)
    assert frames.shape == (2, 5, 16, 24, 3) and frames.dtype == torch.uint8
    expected = ((raw + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)  # [-1, 1] -> 0..255, last
    assert torch.equal(frames, expected)
    with pytest.raises(ValueError, match=r"\(B, 4, F, H, W\)"):
        vae.decode(torch.zeros(1, 3, 2, 2, 2))


def test_uint8_frames_round_trip_through_the_converters(vae):
    frames = torch.randint(
        0, 256, (5, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    x = video_to_model_input(frames)
    assert x.shape == (1, 3, 5, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(video_to_uint8(x)[0], frames)
    assert torch.equal(video_to_uint8(x[0]), frames)
    # uint8 input encodes like the equivalent float input
    torch.testing.assert_close(vae.encode(frames), vae.encode(x))
    with pytest.raises(ValueError, match=r"\(5, 16, 16\)"):
        video_to_model_input(frames[..., 0])


@pytest.fixture(scope="module")
def local_vae(vae_dir) -> VideoVAE:
    """The saved VAE with its GroupNorms removed. A random network's per-tile GroupNorm statistics differ
    wildly from the whole frame's (a trained VAE's do not), which would hide what tiling itself does; without
    them the decoder is local and tiled results must match untiled ones up to seam blending."""
    vae = VideoVAE.from_pretrained(vae_dir, subfolder="vae", tiling=None)

    def strip(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, torch.nn.GroupNorm):
                setattr(module, name, torch.nn.Identity())
            else:
                strip(child)

    strip(vae.vae)
    return vae


TINY_TILES = TilingConfig(sample_height=32, sample_width=32, stride_height=16, stride_width=16)


def _closeness(untiled: torch.Tensor, tiled: torch.Tensor, unrelated: torch.Tensor) -> float:
    """Tiled-vs-untiled error relative to the gap between two unrelated inputs' outputs."""
    return ((untiled - tiled).abs().mean() / (untiled - unrelated).abs().mean()).item()


def test_tiled_decode_is_close_to_untiled(local_vae):
    g = torch.Generator().manual_seed(0)
    latents, other = torch.randn(2, 1, 4, 2, 6, 6, generator=g)
    local_vae.set_tiling(None)
    untiled, unrelated = local_vae.decode(latents), local_vae.decode(other)
    local_vae.set_tiling(TINY_TILES)
    assert local_vae.vae.use_tiling and local_vae.vae.tile_sample_min_height == 32
    tiled = local_vae.decode(latents)
    local_vae.set_tiling(None)
    assert tiled.shape == untiled.shape == (1, 3, 5, 48, 48)
    # tiling really split the work (small differences near seams) ...
    assert not torch.equal(tiled, untiled)
    # ... yet the result is far closer to the untiled decode than to anything else
    assert _closeness(untiled, tiled, unrelated) < 0.35


def test_tiled_encode_is_close_to_untiled(local_vae):
    video, other = _video(size=48, seed=1), _video(size=48, seed=2)
    local_vae.set_tiling(None)
    untiled, unrelated = local_vae.encode(video), local_vae.encode(other)
    local_vae.set_tiling(TINY_TILES)
    tiled = local_vae.encode(video)
    local_vae.set_tiling(None)
    assert tiled.shape == untiled.shape == (1, 4, 2, 6, 6)
    assert not torch.equal(tiled, untiled)
    assert _closeness(untiled, tiled, unrelated) < 0.35


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"sample_height": 20}, "size 20"),
        ({"stride_width": 256}, "stride 256"),
        ({"stride_frames": 6}, "stride 6"),
    ],
)
def test_tiling_config_is_checked(vae, kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        vae.set_tiling(TilingConfig(**kwargs))


def test_numpy_frames_encode_like_tensors(vae):
    """retake.video reads numpy uint8 frames; a flipped view (negative strides) included."""
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    torch.testing.assert_close(vae.encode(frames), vae.encode(torch.from_numpy(frames)))
    flipped = frames[..., ::-1]
    torch.testing.assert_close(vae.encode(flipped), vae.encode(torch.from_numpy(flipped.copy())))
    with pytest.raises(ValueError, match=r"video must be a torch\.Tensor or numpy array, got list"):
        vae.encode(list(frames))


def test_float_video_outside_minus_one_to_one_is_refused(vae):
    """A [0, 255] float video used to encode silently, to latents of a blown-out video."""
    video = _video()
    with pytest.raises(ValueError, match=r"float video must be in \[-1, 1\], got values in \[0\.0\d+, 255\]"):
        vae.encode((video + 1) * 127.5)
    with pytest.raises(ValueError, match=r"got values in \[nan, nan\]"):
        vae.encode(torch.where(video > 0.9, float("nan"), video))
    # bfloat16 rounding of an in-range video stays within the tolerance
    vae.encode((video * 1.005).clamp(-1.005, 1.005))


def test_nan_latents_are_named_as_the_input_and_float32_is_not_blamed_on_float16(vae):
    latents = torch.zeros(1, 4, 2, 2, 2)
    latents[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="latents passed to decode hold NaN or inf"):
        vae.decode(latents)
    broken = VideoVAE(copy.deepcopy(vae.vae), tiling=None)
    with torch.no_grad():
        broken.vae.decoder.conv_out.conv.bias.fill_(float("inf"))  # finite input, non-finite output
    with pytest.raises(VAEError, match=r"VAE decoded NaN or inf values in torch\.float32") as error:
        broken.decode(torch.zeros(1, 4, 2, 2, 2))
    assert "float16" not in str(error.value)
