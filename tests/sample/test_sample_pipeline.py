"""EditPipeline end to end on a real clip with tiny random parts: shapes, fps, seeding, conditioning of each
guidance branch, the one-way source cache, request checks and dtype/device loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retake.flow import Step
from retake.sample.config import EditConfig
from retake.sample.pipeline import EditPipeline, branch_prompts, resolve_dtype
from retake.video import Video


@pytest.fixture(scope="module")
def loaded(bundle_dir) -> EditPipeline:
    """The tiny bundle, loaded back from disk."""
    return EditPipeline.from_pretrained(bundle_dir)


@pytest.fixture(scope="module")
def edited(loaded, clip) -> Video:
    return loaded.edit(clip, "make it snow", seed=1, progress=False)


def _final_latents(pipe: EditPipeline, video: Video, **kwargs) -> torch.Tensor:
    steps: list[Step] = []
    pipe.edit(video, "make it snow", progress=False, callback=steps.append, **kwargs)
    return steps[-1].x_next


def _record_calls(pipe: EditPipeline, monkeypatch) -> list[dict]:
    """Replace the transformer's forward with a recorder of its keyword arguments (calls still go through)."""
    calls: list[dict] = []
    forward = pipe.transformer.forward

    def recording(**kwargs):
        calls.append(kwargs)
        return forward(**kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", recording)
    return calls


def test_edit_from_a_saved_bundle_has_the_grid_shape_and_source_fps(tiny_defaults, loaded, clip, edited):
    assert loaded.defaults == tiny_defaults
    assert edited.frames.shape == (5, 32, 32, 3) and edited.frames.dtype == np.uint8
    assert edited.fps == clip.fps == 8.0
    assert edited.frames.std() > 0  # decoded pixels, not a constant fill


def test_reloaded_bundle_edits_like_the_pipeline_that_saved_it(make_pipeline, clip, edited):
    original = make_pipeline().edit(clip, "make it snow", seed=1, progress=False)
    # Same weights; safetensors loading aligns tensors differently, which moves float rounding slightly.
    assert np.abs(original.frames.astype(int) - edited.frames).max() <= 1


def test_same_seed_same_output_different_seed_differs(loaded, clip, edited):
    again = loaded.edit(clip, "make it snow", seed=1, progress=False)
    other = loaded.edit(clip, "make it snow", seed=2, progress=False)
    assert np.array_equal(again.frames, edited.frames)
    assert np.abs(other.frames.astype(int) - edited.frames).mean() > 1.0


def test_frames_default_to_the_source_length_and_size_rounds_down(tiny_defaults, make_pipeline, clip):
    pipe = make_pipeline(defaults=tiny_defaults.with_overrides(frames=61, steps=1))
    out = pipe.edit(clip, "make it snow", size=(40, 50), progress=False)
    assert out.frames.shape == (13, 32, 48, 3)  # 16 source frames -> 13 = 4*3+1; 40x50 -> 32x48 (grid 16)
    resolved = pipe.check_inputs(clip, "x", frames=8, size=(33, 47), steps=3, guidance=0.0)
    assert (resolved.frames, resolved.size, resolved.steps, resolved.text_scale) == (5, (32, 32), 3, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 0}, "frames must be >= 1, got 0"),
        ({"frames": 17}, "frames=17 is more than the source's 16 frames"),
        ({"size": (8, 32)}, "size 8x32 is smaller than this model's grid of 16"),
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"guidance": -1.0}, "got -1.0"),
        ({"instruction": "   "}, "instruction must be a non-empty string, got '   '"),
        ({"seed": 2**32}, "seed must be in 0..4294967295, got 4294967296"),  # would repeat seed 0's noise
        ({"seed": -1}, "seed must be in 0..4294967295, got -1"),
        # wrong types, which used to reach the tokenizer, torch or a slice and fail there (or not at all)
        ({"instruction": ["make it snow"]}, r"instruction must be a str, got list: \['make it snow'\]"),
        ({"instruction": b"make it snow"}, "instruction must be a str, got bytes"),
        ({"seed": None}, "seed must be an integer, got None"),
        ({"seed": 1.5}, r"seed must be an integer, got 1\.5"),
        ({"steps": 2.5}, r"steps must be an integer, got 2\.5"),
        ({"frames": 5.5}, r"frames must be an integer, got 5\.5"),
        ({"size": (32, 32, 3)}, r"size must be \(height, width\) or one int for a square"),
        ({"guidance": "3"}, "must be a number, got '3'"),
    ],
)
def test_impossible_requests_raise_a_value_error_naming_the_value(loaded, clip, kwargs, match):
    instruction = kwargs.pop("instruction", "make it snow")
    with pytest.raises(ValueError, match=match):
        loaded.edit(clip, instruction, progress=False, **kwargs)


def test_one_int_size_is_a_square_as_on_the_command_line(loaded, clip):
    assert loaded.check_inputs(clip, "make it snow", size=48).size == (48, 48)


def test_short_source_is_refused(make_pipeline, clip):
    pipe = make_pipeline(patch_size_t=2)  # 2 latent frames per token: at least 5 frames
    short = Video(clip.frames[:4], fps=clip.fps)
    with pytest.raises(ValueError, match="source has 4 frames, fewer than this model's minimum of 5"):
        pipe.edit(short, "make it snow", progress=False)


def test_branch_prompts_mapping():
    assert branch_prompts(("full", "no_text", "none"), "add a hat", "low quality") == {
        "full": "add a hat",
        "no_text": "low quality",
        "none": "",
    }


@pytest.mark.parametrize("conditioning", ["sequence", "channel"])
def test_each_guidance_branch_sees_its_prompt_and_source(
    tiny_defaults, make_pipeline, clip, monkeypatch, conditioning
):
    """3-way guidance: full = (instruction, source), no_text = (negative, source), none = ("", no source)."""
    defaults = tiny_defaults.with_overrides(steps=1, video_scale=1.2, negative_prompt="blurry")
    pipe = make_pipeline(defaults=defaults, conditioning=conditioning)
    calls = _record_calls(pipe, monkeypatch)
    out = pipe.edit(clip, "make it snow", progress=False)
    assert out.frames.shape == (5, 32, 32, 3)
    assert len(calls) == 3  # one step, three branches, in the order ("full", "no_text", "none")
    full, no_text, none = calls
    texts = pipe.text_encoder.encode(["make it snow", "blurry", ""])
    for call, row in zip(calls, range(3), strict=True):
        torch.testing.assert_close(call["pooled_projections"], texts.pooled[row : row + 1])
    assert full["source"].shape == (1, pipe.vae.latent_channels, 2, 4, 4)
    assert no_text["source"] is full["source"]  # encoded once, shared
    assert "source" not in none and "source_cache" not in none


@pytest.mark.parametrize("conditioning", ["sequence", "channel"])
def test_the_source_video_changes_the_edit(tiny_defaults, make_pipeline, clip, other_clip, conditioning):
    pipe = make_pipeline(defaults=tiny_defaults.with_overrides(steps=1), conditioning=conditioning)
    a = _final_latents(pipe, clip, seed=0)
    b = _final_latents(pipe, other_clip, seed=0)
    assert a.shape == (1, pipe.vae.latent_channels, 2, 4, 4)
    assert (a - b).abs().mean() > 1e-3


def test_one_way_cache_is_built_once_and_matches_recomputing_the_source(
    tiny_defaults, make_pipeline, clip, monkeypatch
):
    pipe = make_pipeline(attention="one-way")
    builds = []
    build = pipe.transformer.build_source_cache
    monkeypatch.setattr(
        pipe.transformer, "build_source_cache", lambda *a, **k: builds.append(1) or build(*a, **k)
    )
    calls = _record_calls(pipe, monkeypatch)
    cached = _final_latents(pipe, clip, seed=4)
    assert len(builds) == 1 and len(calls) == 2 * tiny_defaults.steps  # text CFG: two branches per step
    assert all("source_cache" in c and "source" not in c for c in calls)
    pipe.cache_source = False
    recomputed = _final_latents(pipe, clip, seed=4)
    assert len(builds) == 1 and all("source" in c for c in calls[2 * tiny_defaults.steps :])
    torch.testing.assert_close(cached, recomputed, atol=1e-5, rtol=1e-5)


def test_parts_that_do_not_fit_are_refused(make_transformer, minilm, tiny_vae):
    with pytest.raises(ValueError, match="in_channels is 8 but the VAE latent_channels is 4"):
        EditPipeline(make_transformer(in_channels=8), tiny_vae, minilm)
    with pytest.raises(ValueError, match="text_embed_dim is 32 but the text encoder token width is 384"):
        EditPipeline(make_transformer((32, 384)), tiny_vae, minilm)
    with pytest.raises(ValueError, match="conditioning 'none'"):
        EditPipeline(make_transformer(conditioning="none"), tiny_vae, minilm)


def test_from_pretrained_takes_dtype_and_device(bundle_dir, clip):
    pipe = EditPipeline.from_pretrained(bundle_dir, device="cpu", dtype="bfloat16")
    assert pipe.dtype == pipe.vae.dtype == torch.bfloat16 and pipe.device.type == "cpu"
    assert pipe.text_encoder.encode(["x"]).tokens.dtype == torch.bfloat16
    out = pipe.edit(clip, "make it snow", steps=1, frames=1, size=(16, 16), progress=False)
    assert out.frames.shape == (1, 16, 16, 3) and out.frames.std() > 0
    with pytest.raises(ValueError, match="'int8'"):
        EditPipeline.from_pretrained(bundle_dir, dtype="int8")


def test_dtype_takes_torch_dtypes_and_their_printed_names_but_only_floating_ones():
    assert resolve_dtype("torch.bfloat16") == resolve_dtype(torch.bfloat16) == torch.bfloat16  # str(dtype)
    # An integer torch dtype used to reach diffusers, whose error names neither the argument nor retake's.
    with pytest.raises(ValueError, match=r"floating torch dtype .* got torch\.int8"):
        resolve_dtype(torch.int8)


def test_frames_given_as_an_array_are_refused_saying_how_to_wrap_them(loaded, clip):
    with pytest.raises(
        ValueError, match=r"wrap frames in Video\(frames, fps\)\), got shape \(16, 512, 512, 3\)"
    ):
        loaded.edit(clip.frames, "make it snow", progress=False)


def test_progress_bar_and_config_defaults_untouched(tiny_defaults, loaded, clip, capsys):
    loaded.edit(clip, "make it snow", steps=1, progress=True)
    captured = capsys.readouterr()
    assert "denoising" in captured.out + captured.err
    assert loaded.defaults == tiny_defaults  # per-call overrides never leak into the defaults
    assert EditConfig().steps == 20


def test_a_source_prior_model_starts_sampling_at_the_source_latents_plus_the_same_noise(
    tiny_defaults, make_pipeline, monkeypatch
):
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    video = Video(frames, fps=8.0)  # synthetic, so this runs without the shared clips
    starts = {}
    for prior in ("noise", "source"):
        pipe = make_pipeline(
            defaults=tiny_defaults.with_overrides(steps=1), conditioning="channel", prior=prior
        )
        # A zero velocity leaves the state where it started: the final latents are the start point.
        monkeypatch.setattr(
            pipe.transformer, "forward", lambda hidden_states, **_: torch.zeros_like(hidden_states)
        )
        starts[prior] = _final_latents(pipe, video, seed=3)
    source = pipe.encode_source(video, pipe.check_inputs(video, "x"))
    torch.testing.assert_close(starts["source"], starts["noise"] + source)
    assert (
        starts["noise"] - source
    ).abs().mean() > 0.1  # the noise prior's start knows nothing of the source


def test_float16_keeps_the_vae_in_float32_so_an_edit_is_not_black():
    """The shipped Flatland VAE's activations pass float16's 65504: decoded in float16 they are NaN, which
    would be written as black frames. So the VAE refuses such output, and a float16 pipeline keeps it in float32."""
    from retake.demo import CLIPS, EDITOR
    from retake.model.vae import VAEError, VideoVAE
    from retake.video import read

    half_vae = VideoVAE.from_pretrained(EDITOR / "vae", dtype=torch.float16, tiling=None)
    with pytest.raises(VAEError, match=r"NaN or inf values in torch\.float16.*bfloat16 or float32"):
        half_vae.decode(torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(0)))

    clip = read(CLIPS / "recolour.source.mp4")
    edits = {}
    for dtype in ("float16", "float32"):
        pipe = EditPipeline.from_pretrained(EDITOR, dtype=dtype)
        assert pipe.vae.dtype == torch.float32 and pipe.dtype == getattr(torch, dtype)
        edits[dtype] = pipe.edit(clip, "make it red", steps=2, frames=5, seed=0, progress=False).frames
    error = (edits["float16"].astype(np.float64) - edits["float32"]) ** 2
    assert (
        edits["float16"].max() > 0 and 10 * np.log10(255**2 / error.mean()) > 30
    )  # the float32 edit, closely
