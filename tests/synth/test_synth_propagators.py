"""Learnt and oracle propagators: a retake bundle with its first latent frame pinned to the edited frame, a
diffusers image-to-video pipeline, and the Flatland oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tiny_diffusers import save_wan_i2v

from retake.flatland.edits import Edit
from retake.sample.pipeline import EditPipeline
from retake.synth.flatland import read_source
from retake.synth.propagate import Request, make_propagator
from retake.synth.propagate.model import anchored_latents
from retake.synth.recipes import PropagationConfig
from retake.video import Video, read

RNG = np.random.default_rng(0)
SOURCE = RNG.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
FIRST = RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8)


def test_the_model_pins_latent_frame_zero_to_the_edited_frame(tiny_bundle: Path) -> None:
    pipeline = EditPipeline.from_pretrained(tiny_bundle, vae_tiling=None)
    latents = anchored_latents(pipeline, Video(SOURCE, fps=8), "add a hat", FIRST, seed=1)
    config = pipeline.defaults.with_overrides(frames=1)
    pinned = pipeline.encode_source(Video(FIRST[None], fps=8), config)  # (1, C, 1, 4, 4)
    assert latents.shape == (1, 4, 2, 4, 4)  # 5 frames, 32 px through the 4x time, 8x space VAE
    torch.testing.assert_close(latents[:, :, :1], pinned.float(), atol=1e-5, rtol=0)
    again = anchored_latents(pipeline, Video(SOURCE, fps=8), "add a hat", FIRST, seed=1)
    other = anchored_latents(pipeline, Video(SOURCE, fps=8), "add a hat", 255 - FIRST, seed=1)
    assert torch.equal(again, latents)
    # the pinned frame steers the others (weakly: a random tiny model is near its zero-ish init)
    assert (other[:, :, 1:] - latents[:, :, 1:]).abs().mean() > 1e-5


def test_the_model_propagator_returns_the_source_shape_starting_at_the_edit(tiny_bundle: Path) -> None:
    propagator = make_propagator(PropagationConfig(name="model", path=str(tiny_bundle), steps=2))
    source = SOURCE[:, :30, :28]  # off the model grid
    first = FIRST[:30, :28]
    clip = propagator.propagate(Request(source, first, "add a hat", 8.0, seed=2))
    assert clip.shape == source.shape and clip.dtype == np.uint8
    assert np.array_equal(clip[0], first)
    again = propagator.propagate(Request(source, first, "add a hat", 8.0, seed=2))
    assert np.array_equal(clip, again)
    other = propagator.propagate(Request(source, first, "add a hat", 8.0, seed=3))
    assert np.array_equal(other[0], first) and not np.array_equal(other[1:], clip[1:])  # the seed is used


def test_a_diffusers_image_to_video_pipeline_propagates(tmp_path: Path) -> None:
    path = save_wan_i2v(tmp_path / "i2v")
    propagator = make_propagator(PropagationConfig(name="diffusers", path=str(path), steps=2, guidance=3.0))
    clip = propagator.propagate(Request(SOURCE, FIRST, "add a hat", 8.0, seed=0))
    assert clip.shape == SOURCE.shape and np.array_equal(clip[0], FIRST)
    assert clip[1:].std() > 1  # generated frames, not a constant fill
    assert np.array_equal(clip, propagator.propagate(Request(SOURCE, FIRST, "add a hat", 8.0, seed=0)))


def test_the_flatland_oracle_carries_the_shown_share_of_the_edit(flatland_sources: Path) -> None:
    path = sorted(flatland_sources.glob("*.mp4"))[1]
    source = read(path).frames
    sidecar = read_source(path)
    edit, _ = sidecar.edits[0]
    propagator = make_propagator(PropagationConfig(name="flatland"))
    full = propagator.propagate(
        Request(
            source,
            _first(path, source, edit, 1.0),
            "",
            8.0,
            0,
            path,
            edit.to_json(),
            tuple(range(len(source))),
        )
    )
    half = propagator.propagate(
        Request(
            source,
            _first(path, source, edit, 0.5),
            "",
            8.0,
            0,
            path,
            edit.to_json(),
            tuple(range(len(source))),
        )
    )
    change_full = full[-1].astype(float) - source[-1]
    change_half = half[-1].astype(float) - source[-1]
    assert np.abs(change_full).max() > 50
    assert np.abs(change_half - change_full / 2).mean() < 0.5


def _first(path: Path, source: np.ndarray, edit: Edit, opacity: float) -> np.ndarray:
    from retake.synth.flatland import apply_residual, edit_change

    change = edit_change(source[:1], read_source(path).scene, edit, (0,))
    return apply_residual(source[:1], change, opacity)[0]
