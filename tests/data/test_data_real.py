"""Scene split and clipping on the real sample clips (../shared/data/videos), checked against PySceneDetect's
own detection on the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scenedetect import ContentDetector, ThresholdDetector, detect

from retake import video
from retake.data.pipeline import build_stages
from retake.data.recipes import get_recipe
from retake.data.records import Meta, Sample, make_sample
from retake.data.shards import TarSink
from retake.data.stages import Decode, MotionScore, Probe, SceneSplit, SplitClips
from retake.data.writers import NoneWriter
from retake.eval.psnr import psnr

CONFIG = get_recipe("icve-pretrain")


def _analyse(path: Path) -> tuple[Sample, Meta]:
    """The pipeline's analysis pass (probe, decode, scene split, motion with no threshold, clips)."""
    stages = [
        Probe(),
        Decode(
            analysis_short_side=CONFIG.analysis_short_side,
            output_short_side=CONFIG.output_short_side,
            keep_budget_mb=CONFIG.keep_budget_mb,
            skip_loop_filter=CONFIG.skip_loop_filter,  # the recipe's decoding, so the checks see what it does
        ),
        SceneSplit(
            content_threshold=CONFIG.content_threshold,
            fade_threshold=CONFIG.fade_threshold,
            min_scene_frames=CONFIG.min_scene_frames,
            margin_frames=CONFIG.scene_margin_frames,
        ),
        MotionScore(
            flow_max_side=CONFIG.flow_max_side, samples=4, min_motion=0.0, target_fps=CONFIG.target_fps
        ),
        SplitClips(clip_frames=CONFIG.clip_frames, target_fps=CONFIG.target_fps),
    ]
    sample, meta = make_sample(path, path.name, 0), Meta()
    for stage in stages:
        sample, meta, error = stage(sample, meta)
        assert error is None, error
    return sample, meta


def _run_to_write(config, path: Path, tar: Path) -> tuple[Sample, Sample, Meta]:
    """The pipeline's stages before `write` on one video: (the sample right after decode, the final sample,
    the final meta)."""
    sink = TarSink(tar)
    stages = build_stages(config, NoneWriter(), sink, "s")
    sample, meta = make_sample(path, path.name, 0), Meta()
    for stage in stages[: [s.name for s in stages].index("write")]:
        sample, meta, error = stage(sample, meta)
        assert error is None, error
        if stage.name == "decode":
            decoded = sample
    sink.abort()
    return decoded, sample, meta


def _assert_clips_inside(meta: Meta, cuts: list[int]) -> None:
    bounds = [0, *cuts, meta.frames_analysed]
    for clip in meta.clips:
        first, last = np.searchsorted(bounds, [clip.start, clip.end - 1], side="right") - 1
        assert first == last, f"clip {clip} crosses a cut in {cuts}"


def test_goldeneye_cuts_match_pyscenedetect_and_no_clip_crosses_one(shared_videos: Path) -> None:
    path = shared_videos / "scenedetect_goldeneye-vfr-drop3.mp4"
    # PySceneDetect numbers decoded frames with its OpenCV backend (the PyAV one numbers by timestamp on
    # this variable-rate file); retake decodes every frame too, so the numbers are comparable.
    theirs = [start.frame_num for start, _ in detect(str(path), ContentDetector())][1:]
    _, meta = _analyse(path)
    # Tolerance of one frame: retake analyses 226x96 frames, PySceneDetect downscales to 256x109.
    assert len(theirs) == len(meta.cuts) == 2
    assert all(abs(a - b) <= 1 for a, b in zip(meta.cuts, theirs, strict=True)), (meta.cuts, theirs)
    assert len(meta.scenes) == 3 and meta.clips
    _assert_clips_inside(meta, theirs)
    _assert_clips_inside(meta, list(meta.cuts))


def test_fades_clip_splits_at_its_fades(shared_videos: Path) -> None:
    path = shared_videos / "scenedetect_fades.mp4"
    theirs = [start.frame_num for start, _ in detect(str(path), ThresholdDetector())][1:]
    sample, meta = _analyse(path)
    assert list(meta.cuts) == theirs == [84, 167]
    assert len(meta.scenes) == 3
    for scene in meta.scenes:  # each scene is one shot, the black of the fades trimmed away
        brightness = sample.frames[scene.start : scene.end].reshape(scene.num_frames, -1).mean(axis=1)
        assert brightness.min() >= CONFIG.fade_threshold
    _assert_clips_inside(meta, theirs)
    assert {c.scene for c in meta.clips} == {0, 1, 2}


@pytest.mark.parametrize("name", ["icve_kid.mp4", "tokenflow_woman-running.mp4"])
def test_single_shot_clips_have_no_cut_and_score_motion(shared_videos: Path, name: str) -> None:
    _, meta = _analyse(shared_videos / name)
    assert meta.cuts == () and len(meta.scenes) == 1
    assert meta.scenes[0].motion > CONFIG.min_motion  # people moving: kept by the default threshold
    assert len(meta.clips) >= 2


@pytest.mark.parametrize("name", ["scenedetect_goldeneye-vfr-drop3.mp4", "icve_kid.mp4"])
def test_kept_and_reread_videos_give_the_same_analysis_and_clips(
    shared_videos: Path, tmp_path: Path, name: str
) -> None:
    """A video decoded once (output-size frames kept) and one too long to keep (analysis frames only, clips
    read again) must find the same scenes and pairs and cut the same clips."""
    results = []
    for budget in (1e6, 0.0):  # MB: everything fits / nothing fits
        config = CONFIG.replace(keep_budget_mb=budget)
        decoded, sample, meta = _run_to_write(config, shared_videos / name, tmp_path / f"{budget}.tar")
        assert (decoded.full is not None) == (budget > 0)  # the path this budget must take
        results.append((sample, meta))
    (kept, kept_meta), (reread, reread_meta) = results
    # analysis frames: downscaled from output-size frames vs scaled straight to analysis size while decoding
    assert kept.frames.shape == reread.frames.shape
    assert psnr(kept.frames, reread.frames) > 30.0
    assert [(s.start, s.end) for s in kept_meta.scenes] == [(s.start, s.end) for s in reread_meta.scenes]
    for a, b in zip(kept_meta.scenes, reread_meta.scenes, strict=True):
        assert a.motion == pytest.approx(b.motion, rel=0.1)
    assert [(p.src.frames, p.tgt.frames) for p in kept_meta.pairs] == [
        (p.src.frames, p.tgt.frames) for p in reread_meta.pairs
    ]
    assert kept.clips.keys() == reread.clips.keys() and kept.clips
    for index, clip in kept.clips.items():
        other = reread.clips[index]
        assert clip.shape == other.shape and min(clip.shape[1:3]) == CONFIG.output_short_side
        # scaled in one step while decoding vs scaled to output size then cover-cropped: close, not equal
        assert psnr(clip, other) > 30.0, (index, psnr(clip, other))


def test_recipe_decoding_mode_reaches_both_reads(shared_videos: Path, tmp_path: Path) -> None:
    """`skip_loop_filter` governs the analysis decode and the second read of a long video's clips alike."""
    path = shared_videos / "icve_kid.mp4"
    seen = {}
    for flag in (True, False):
        config = CONFIG.replace(keep_budget_mb=0.0, skip_loop_filter=flag)  # 0: the clips are read again
        decoded, sample, meta = _run_to_write(config, path, tmp_path / f"{flag}.tar")
        analysis = decoded.frames
        index, clip = next(iter(sample.clips.items()))
        frames = next(c for p in meta.pairs for c in (p.src, p.tgt) if c.index == index).frames
        direct = video.read(
            path, start=frames[0], end=frames[-1] + 1, size=clip.shape[1:3], skip_loop_filter=flag
        )
        np.testing.assert_array_equal(clip, direct.frames[np.asarray(frames) - frames[0]])
        np.testing.assert_array_equal(
            analysis, video.read(path, size=analysis.shape[1:3], skip_loop_filter=flag).frames
        )
        seen[flag] = analysis
    assert not np.array_equal(seen[True], seen[False])  # the flag changed the decoding
