"""Editing more frames than the model takes: overlapping passes, each pinned to the end of the one before
(`retake.sample.windows`, `EditPipeline.edit(prefix=...)`, `retake edit --duration/--overlap`)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from interrupt import Stop, stopping_after
from retake.checks import derive_seed
from retake.cli import main
from retake.sample.config import EditConfig
from retake.sample.grid import ModelGrid
from retake.sample.pass_store import PassStore, PassStoreError, passes_folder
from retake.sample.pipeline import EditPipeline, edit_file
from retake.sample.windows import check_overlap, default_overlap, edit_windows, plan_windows
from retake.video import Video, probe, read

# 9 frames -> 3 latent frames: room for a 5-frame (2 latent frames) overlap and one new latent frame a pass.
NINE = EditConfig(steps=2, shift=3.0, text_scale=3.0, frames=9, height=32, width=32)
GRIDS = [ModelGrid(16, 4), ModelGrid(16, 4, latent_frames_multiple=2), ModelGrid(16, 1)]


@pytest.fixture(scope="module")
def nine(make_pipeline) -> EditPipeline:
    return make_pipeline(NINE)


def valid_windows(grid: ModelGrid) -> list[int]:
    return sorted({grid.round_frames(n) for n in range(1, 34)} - {0})


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_a_plan_edits_every_frame_once_in_grid_clips_sharing_the_overlap(grid: ModelGrid) -> None:
    for window in valid_windows(grid):
        overlaps = [o for o in range(window) if o == 0 or o % grid.temporal == 1 % grid.temporal]
        for overlap in overlaps:
            for total in range(1, 70):
                plan = plan_windows(total, window, overlap, grid)
                kept = [(p.start + p.prefix, p.end) for p in plan]
                assert kept[0][0] == 0 and kept[-1][1] == total  # every frame, once, in order
                assert all(a[1] == b[0] for a, b in itertools.pairwise(kept))
                assert all(grid.round_frames(p.frames) == p.frames <= window for p in plan)
                assert [p.prefix for p in plan] == [0] + [overlap] * (len(plan) - 1)
                assert all(p.pad == 0 for p in plan[:-1])
                last = plan[-1]  # the shortest grid clip holding what is left
                assert last.frames == grid.round_frames_up(last.end - last.start)
                assert (len(plan) == 1) == (total <= window)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_rounding_up_gives_the_smallest_valid_frame_count(grid: ModelGrid) -> None:
    valid = valid_windows(grid)
    for frames in range(1, 30):
        assert grid.round_frames_up(frames) == min(v for v in valid if v >= frames)


def test_the_default_overlap_is_about_a_quarter_and_at_least_two_latent_frames() -> None:
    grid = ModelGrid(16, 4)
    # 61 (ICVE) -> 4 of 16 latent frames; 17 (Flatland) and 9 -> 2; 5 -> 1 (one new a pass); 1 -> none
    got = {window: default_overlap(window, grid) for window in (61, 49, 17, 9, 5, 1)}
    assert got == {61: 13, 49: 9, 17: 5, 9: 5, 5: 1, 1: 0}
    for window, overlap in got.items():
        assert check_overlap(overlap, window, grid) == overlap


@pytest.mark.parametrize(
    ("window", "overlap", "reason"),
    [
        (6, 1, "window must be a frame count this model takes (4k + 1"),
        (17, 3, "overlap must be 0 or 4m + 1 frames, fewer than the 17 of a pass; got 3"),
        (17, 17, "got 17"),
        (17, -1, "overlap must be >= 0, got -1"),
    ],
)
def test_a_bad_pass_length_or_overlap_is_refused_naming_it(window: int, overlap: int, reason: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        plan_windows(40, window, overlap, ModelGrid(16, 4))
    assert reason in str(error.value)


def test_a_prefix_pins_the_first_latent_frames_and_steers_the_rest(nine: EditPipeline, clip: Video) -> None:
    video = Video(clip.frames[:9], fps=clip.fps)
    prefix = clip.frames[4:9][:, ::-1].copy()  # 5 frames (2 latent frames) that are not the source's start
    pinned = nine.edit_latents(video, "add a hat", size=32, prefix=prefix, seed=3, progress=False)
    free = nine.edit_latents(video, "add a hat", size=32, seed=3, progress=False)
    expected = nine.encode_prefix(prefix, NINE)  # (1, C, 2, 4, 4)
    assert pinned.shape == free.shape == (1, 4, 3, 4, 4)
    torch.testing.assert_close(pinned[:, :, :2], expected, atol=1e-5, rtol=0)
    assert (pinned[:, :, 2:] - free[:, :, 2:]).abs().mean() > 1e-5  # the model sees the pinned frames


THIRTEEN = NINE.with_overrides(frames=13)


@pytest.mark.parametrize(
    ("overrides", "sampler"),
    [
        ({"conditioning": "channel"}, {"video_guidance": 1.5}),  # InsViE's 3-way guidance
        ({"conditioning": "channel", "prior": "source"}, {}),  # sampling starts at source + noise
        ({"attention": "one-way"}, {}),  # the source K/V cache
        ({"patch_size_t": 2}, {}),  # 2 latent frames a token
        ({}, {"guidance": 1.0}),  # no guidance: one branch
    ],
    ids=["3-way", "source-prior", "one-way", "patch-t-2", "no-cfg"],
)
def test_the_prefix_is_pinned_under_every_model_and_guidance(make_pipeline, clip, overrides, sampler) -> None:
    pipeline = make_pipeline(THIRTEEN, **overrides)
    video = Video(clip.frames[:13], fps=clip.fps)
    prefix = clip.frames[8:13][:, ::-1].copy()
    latents = pipeline.edit_latents(video, "add a hat", size=32, prefix=prefix, progress=False, **sampler)
    assert latents.shape[2] == 4
    expected = pipeline.encode_prefix(prefix, THIRTEEN)
    torch.testing.assert_close(latents[:, :, :2], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (np.zeros((4, 32, 32, 3), np.uint8), "prefix must have 4m + 1 frames, at most the edit's 9; got 4"),
        (np.zeros((13, 32, 32, 3), np.uint8), "got 13"),
        (np.zeros((5, 32, 32, 3), np.float32), "prefix must be uint8 frames (K, H, W, 3), got float32"),
        ([np.zeros((32, 32, 3), np.uint8)], "got list"),
        # other channel counts used to be resized as pictures and fail in the VAE without naming the prefix
        (
            np.zeros((5, 32, 32, 4), np.uint8),
            "prefix must be uint8 frames (K, H, W, 3), got uint8 (5, 32, 32, 4)",
        ),
        (np.zeros((5, 3, 32, 32), np.uint8), "got uint8 (5, 3, 32, 32)"),
    ],
)
def test_a_bad_prefix_is_refused_naming_it(nine: EditPipeline, clip: Video, prefix, reason: str) -> None:
    with pytest.raises(ValueError) as error:
        nine.edit(Video(clip.frames[:9], fps=8), "add a hat", size=32, prefix=prefix, progress=False)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("video", "options", "reason"),
    [
        # an array used to fail as an AttributeError (no num_frames), the keywords of one edit as a TypeError
        (np.zeros((9, 32, 32, 3), np.uint8), {}, r"wrap frames in Video\(frames, fps\)\), got shape \(9, 32"),
        (Video(np.zeros((0, 32, 32, 3), np.uint8), fps=8), {}, "video has no frames to edit"),
        (None, {"frames": 5}, "frames per pass as window=, not frames=5"),
        (None, {"prefix": np.zeros((5, 32, 32, 3), np.uint8)}, "edit_windows takes no prefix"),
        (None, {"window": 0}, "window must be >= 1, got 0"),
        (None, {"window": 9.0}, r"window must be an integer, got 9\.0"),
    ],
)
def test_edit_windows_refuses_what_it_cannot_edit_naming_it(nine, clip, video, options, reason) -> None:
    video = Video(clip.frames[:12], fps=8) if video is None else video
    with pytest.raises(ValueError, match=reason):
        edit_windows(nine, video, "add a hat", size=32, progress=False, **options)


def test_a_video_within_one_pass_is_edited_exactly_as_edit_does(nine: EditPipeline, clip: Video) -> None:
    video = Video(clip.frames[:9], fps=clip.fps)
    one = nine.edit(video, "add a hat", size=32, seed=7, progress=False)
    passes = edit_windows(nine, video, "add a hat", size=32, seed=7, progress=False)
    np.testing.assert_array_equal(passes.frames, one.frames)


def test_passes_cover_the_video_and_each_continues_the_end_of_the_last(
    nine: EditPipeline, clip: Video, monkeypatch
) -> None:
    calls: list[dict] = []
    real_edit = EditPipeline.edit

    def spy(self, video, instruction, **options):
        result = real_edit(self, video, instruction, **options)
        calls.append({"source": video.frames, "result": result.frames, **options})
        return result

    monkeypatch.setattr(EditPipeline, "edit", spy)
    steps: list[int] = []
    out = edit_windows(
        nine, clip, "add a hat", size=32, seed=7, progress=False, callback=lambda s: steps.append(s.index)
    )
    plan = plan_windows(16, 9, 5, nine.grid)  # [0, 9), [4, 13), [8, 16) + one repeated frame
    assert [(p.start, p.frames, p.pad) for p in plan] == [(0, 9, 0), (4, 9, 0), (8, 9, 1)]
    assert out.frames.shape == (16, 32, 32, 3) and out.fps == clip.fps
    assert len(calls) == 3 and steps == [0, 1] * 3
    assert [c["seed"] for c in calls] == [7, derive_seed(7, 1), derive_seed(7, 2)]
    assert calls[0]["prefix"] is None
    for call, p in zip(calls, plan, strict=True):
        if p.prefix:  # the frames already edited there, as the output keeps them
            np.testing.assert_array_equal(call["prefix"], out.frames[p.start : p.start + p.prefix])
        np.testing.assert_array_equal(
            call["result"][p.prefix : p.frames - p.pad], out.frames[p.start + p.prefix : p.end]
        )
    last = calls[-1]["source"]  # the last pass's source: frames 8-15 and frame 15 again
    np.testing.assert_array_equal(last[-2], last[-1])


def test_edit_file_with_a_duration_edits_the_whole_stretch_and_says_how(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)  # 5-frame passes
    src = shared_videos / "tokenflow_wolf.mp4"  # 40 frames at 20 fps: 2 s
    notes: list[str] = []
    options = dict(size=32, fps=10, steps=1, progress=False, note=notes.append)
    one = edit_file(pipeline, src, tmp_path / "one.mp4", "add a hat", duration=1.0, **options)
    assert (probe(one).frame_count, probe(one).fps) == (10, 10.0)
    assert "editing 10 frames in 3 passes of up to 5 frames, each continuing the last 1 frame of" in notes[-1]
    notes.clear()
    whole = edit_file(
        pipeline, src, tmp_path / "all.mp4", "add a hat", duration=math.inf, start=0.5, **options
    )
    assert probe(whole).frame_count == 15  # 1.5 s left at 10 fps
    notes.clear()
    edit_file(pipeline, src, tmp_path / "long.mp4", "add a hat", duration=5, overlap=0, **options)
    assert "editing 2.00 s, not 5: the source ends 2.00 s after 0 s" in notes
    assert "each continuing nothing of the one before" in notes[-1]


def test_an_overlap_without_a_duration_is_refused(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)
    with pytest.raises(ValueError, match="overlap=5 needs a duration: one pass has nothing to overlap"):
        edit_file(pipeline, shared_videos / "anyv2v_ballet.mp4", tmp_path / "o.mp4", "add a hat", overlap=5)


def run_edit(bundle: Path, src: Path, out: Path, *extra: str) -> None:
    main(["edit", str(src), "make it red", "-o", str(out), "--model", str(bundle), "--no-progress", *extra])


def test_the_command_edits_all_of_a_clip_with_duration_all(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out.mp4"
    run_edit(bundle_dir, shared_videos / "anyv2v_ballet.mp4", out, "--duration", "all", "--steps", "1")
    assert probe(out).frame_count == 16  # all of it, in passes of 5
    assert "in 4 passes of up to 5 frames, each continuing the last 1 frame of" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("--duration", "soon"), "--duration must be seconds or 'all', got 'soon'"),
        (("--duration", "0"), "duration must be > 0, got 0.0"),
        (("--overlap", "1"), "--overlap 1 needs --duration"),
        (("--duration", "all", "--overlap", "3"), "overlap must be 0 or 4m + 1 frames, fewer than the 5"),
        (("--duration", "all", "--overlap", "5"), "got 5"),
        (("--duration", "all", "--frames", "0"), "frames must be >= 1, got 0"),
    ],
)
def test_bad_passes_are_refused_in_one_line_before_the_weights_load(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path, capsys, monkeypatch, extra, reason
) -> None:
    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded before the request was checked")

    monkeypatch.setattr(EditPipeline, "from_pretrained", no_loading)
    with pytest.raises(SystemExit) as stop:
        run_edit(bundle_dir, shared_videos / "anyv2v_ballet.mp4", tmp_path / "out.mp4", *extra)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and reason in err and len(err.strip().splitlines()) == 1, err


def test_an_interrupted_long_edit_continues_from_its_saved_passes_to_the_same_frames(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)  # 5-frame passes of 2 steps
    src = shared_videos / "anyv2v_ballet.mp4"  # 16 frames: 4 passes
    options = dict(size=32, duration=math.inf, steps=2, seed=5, progress=False)
    straight = edit_file(pipeline, src, tmp_path / "straight.mp4", "add a hat", **options)
    out = tmp_path / "out.mp4"
    with pytest.raises(Stop):  # killed in the third pass, after two were saved
        edit_file(pipeline, src, out, "add a hat", callback=stopping_after(5), **options)
    folder = passes_folder(out)
    assert sorted(p.name for p in folder.iterdir()) == [
        "pass_00000.safetensors",
        "pass_00001.safetensors",
        "request.json",
    ]
    notes: list[str] = []
    edited_passes: list[int] = []
    real_edit = EditPipeline.edit
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EditPipeline, "edit", lambda *a, **k: edited_passes.append(1) or real_edit(*a, **k))
        edit_file(pipeline, src, out, "add a hat", note=notes.append, **options)
    assert len(edited_passes) == 2  # only the two passes not saved
    assert any(f"continuing an interrupted edit: 2 passes were saved in {folder}" in n for n in notes)
    np.testing.assert_array_equal(read(out).frames, read(straight).frames)
    assert not folder.exists()  # removed once the output is whole


def test_numpy_numbers_in_a_long_edit_are_saved_with_its_passes_as_the_same_python_ones(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    """A seed drawn with numpy, or a guidance from an array, used to stop a long edit with a TypeError from
    the JSON encoder of its saved request; a rerun with plain numbers continues those passes."""
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)
    src, out = shared_videos / "anyv2v_ballet.mp4", tmp_path / "out.mp4"
    plain = dict(size=32, duration=math.inf, steps=1, seed=5, guidance=2.5, progress=False)
    as_numpy = plain | dict(size=np.int64(32), steps=np.int64(1), seed=np.uint32(5))
    as_numpy |= dict(guidance=np.float32(2.5), duration=np.float64(math.inf))
    with pytest.raises(Stop):  # killed in the second pass, after one was saved
        edit_file(pipeline, src, out, "add a hat", callback=stopping_after(1), **as_numpy)
    notes: list[str] = []
    edit_file(pipeline, src, out, "add a hat", note=notes.append, **plain)
    assert any("continuing an interrupted edit: 1 pass was saved" in n for n in notes), notes
    straight = edit_file(pipeline, src, tmp_path / "straight.mp4", "add a hat", **plain)
    np.testing.assert_array_equal(read(out).frames, read(straight).frames)


def test_saved_passes_of_another_request_are_discarded_saying_what_changed(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)
    src, out = shared_videos / "anyv2v_ballet.mp4", tmp_path / "out.mp4"
    options = dict(size=32, duration=math.inf, steps=1, progress=False)
    with pytest.raises(Stop):
        edit_file(pipeline, src, out, "add a hat", seed=1, callback=stopping_after(2), **options)
    notes: list[str] = []
    edit_file(pipeline, src, out, "add a hat", seed=2, note=notes.append, **options)
    fresh = edit_file(pipeline, src, tmp_path / "fresh.mp4", "add a hat", seed=2, **options)
    assert any("starting over: the 2 saved passes" in n and "request.seed: 1 -> 2" in n for n in notes), notes
    np.testing.assert_array_equal(read(out).frames, read(fresh).frames)


def test_a_damaged_saved_pass_is_named_with_the_way_out(tmp_path: Path) -> None:
    store = PassStore(tmp_path / "passes", {"a": 1})
    assert store.open() == 0
    store.save(0, np.zeros((3, 8, 8, 3), np.uint8))
    assert PassStore(tmp_path / "passes", {"a": 1}).open() == 1
    with pytest.raises(PassStoreError, match=r"not the 4 frames of its pass; delete .* to start over"):
        store.load(0, 4)
    store.path(0).write_bytes(b"cut short")
    with pytest.raises(PassStoreError, match="cannot be read"):
        store.load(0, 3)
