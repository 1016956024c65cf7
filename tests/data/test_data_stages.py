"""The pure stages on synthetic frames: scene split, motion, clips, pairing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from data_synth import fade_through_black, shot

from retake.data.records import Clip, Meta, Scene, make_sample
from retake.data.stages import MotionScore, PairClips, SceneSplit, SplitClips


def _sample(frames: np.ndarray, name: str = "v.mp4"):
    return replace(make_sample(Path(name), name, 0), frames=frames)


def _split() -> SceneSplit:
    return SceneSplit(content_threshold=27.0, fade_threshold=12.0, min_scene_frames=15, margin_frames=2)


def test_scene_split_finds_hard_cuts_and_fades_and_trims_the_dark() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (shot(rng, 40, (64, 96), 2, i) for i in range(3))
    frames = np.concatenate([fade_through_black(a, b, 8), c])  # a | fade | b | hard cut | c
    _, meta, error = _split()(_sample(frames), Meta(analysis_fps=24.0))
    assert error is None
    hard_cut = 40 + 8 + 40
    assert len(meta.cuts) == 2 and abs(meta.cuts[0] - 44) <= 3 and meta.cuts[1] == hard_cut
    for scene in meta.scenes:  # no trimmed scene holds a black frame
        assert frames[scene.start : scene.end].reshape(scene.num_frames, -1).mean(axis=1).min() >= 12
    assert [s.index for s in meta.scenes] == [0, 1, 2]
    assert meta.scenes[1].end <= hard_cut - 2 and meta.scenes[2].start == hard_cut + 2


def test_motion_keeps_moving_scenes_and_drops_still_ones() -> None:
    rng = np.random.default_rng(1)
    frames = np.concatenate([shot(rng, 30, (64, 96), 3), shot(rng, 30, (64, 96), 0)])
    scenes = (Scene(0, 0, 30), Scene(1, 30, 60))
    stage = MotionScore(flow_max_side=64, samples=4, min_motion=0.0005, target_fps=12.0)
    _, meta, _ = stage(_sample(frames), Meta(analysis_fps=24.0, scenes=scenes))
    assert [s.index for s in meta.scenes] == [0]
    # 3 px/frame, two native frames per target-fps step: 6 px of a 96x64 frame's 115 px diagonal.
    assert abs(meta.scenes[0].motion - 6 / np.hypot(64, 96)) < 0.01
    assert meta.drops[0].reason == "low_motion" and meta.drops[0].count == 1


def test_clips_tile_scenes_at_the_target_fps_without_overlap_or_leaving_the_scene() -> None:
    stage = SplitClips(clip_frames=17, target_fps=12.0)
    scenes = (Scene(0, 5, 100), Scene(1, 100, 130))
    _, meta, _ = stage(_sample(np.zeros((130, 4, 4, 3), np.uint8)), Meta(analysis_fps=25.0, scenes=scenes))
    assert meta.clip_fps == 12.0
    first = [c for c in meta.clips if c.scene == 0]
    assert len(first) == 2 and not [c for c in meta.clips if c.scene == 1]  # 30 frames < one clip at 12 fps
    for clip in first:
        assert len(clip.frames) == 17 and clip.start == clip.frames[0] and clip.end == clip.frames[-1] + 1
        assert clip.start >= 5 and clip.end <= 100
        assert [f - clip.start for f in clip.frames] == [round(i * 25 / 12) for i in range(17)]
    assert first[0].end <= first[1].start
    slow = SplitClips(clip_frames=5, target_fps=30.0).tile(Scene(0, 0, 10), 1.0, 0)  # no upsampling
    assert [c.frames for c in slow] == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]


def _clips(n: int) -> tuple[Clip, ...]:
    return tuple(Clip(i, 0, 20 * i, 20 * i + 17, tuple(range(20 * i, 20 * i + 17))) for i in range(n))


def test_pairing_is_seeded_per_video_and_honours_directions() -> None:
    meta = Meta(scenes=(Scene(0, 0, 200),), clips=_clips(5))
    stage = PairClips(pairs_per_scene=3, both_directions=True)
    _, one, _ = stage(_sample(None, "a.mp4"), meta)
    _, again, _ = stage(_sample(None, "a.mp4"), meta)
    assert one.pairs == again.pairs and len(one.pairs) == 3
    assert all(p.src != p.tgt and p.src.scene == p.tgt.scene == 0 for p in one.pairs)
    draws = {
        tuple((p.src.index, p.tgt.index) for p in stage(_sample(None, f"{i}.mp4"), meta)[1].pairs)
        for i in range(40)
    }
    assert len(draws) > 10  # other videos, other pairs
    assert any(p[0] > p[1] for d in draws for p in d)  # backwards in time happens
    forward = PairClips(pairs_per_scene=10, both_directions=False)
    _, fwd, _ = forward(_sample(None, "a.mp4"), meta)
    assert len(fwd.pairs) == 10 and all(p.src.index < p.tgt.index for p in fwd.pairs)


def test_pairing_drops_scenes_with_one_clip() -> None:
    meta = Meta(
        scenes=(Scene(0, 0, 20), Scene(1, 20, 200)),
        clips=(_clips(1)[0], *(replace(c, scene=1) for c in _clips(4)[1:])),
    )
    _, out, _ = PairClips(pairs_per_scene=2, both_directions=True)(_sample(None), meta)
    assert {p.scene for p in out.pairs} == {1}
    assert out.drops[0].reason == "too_few_clips" and out.drops[0].count == 1
