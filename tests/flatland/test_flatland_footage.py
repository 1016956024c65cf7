"""Raw footage: hard cuts, in-scene events, the ground-truth sidecar, byte-identical files per seed."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from retake.flatland import vision
from retake.flatland.footage import footage_video, make_footage
from retake.flatland.truth import FootageTruth


@pytest.fixture(scope="module")
def clips() -> list[tuple[np.ndarray, FootageTruth]]:
    return [footage_video(12, 64, 12, seed=seed) for seed in range(4)]


def test_scenes_cover_the_video_and_cuts_are_hard(clips) -> None:
    for frames, truth in clips:
        assert len(frames) == truth.num_frames == 144 == len(truth.frames)
        spans = [(s.start, s.end) for s in truth.scenes]
        assert spans[0][0] == 0 and spans[-1][1] == truth.num_frames
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert truth.cuts == [s.start for s in truth.scenes[1:]] and len(truth.cuts) >= 1
        step = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # (F-1,)
        cut_steps = step[[c - 1 for c in truth.cuts]]
        inside = np.delete(step, [c - 1 for c in truth.cuts])
        assert cut_steps.min() > 3 * np.percentile(inside, 99)  # every cut stands out from motion
        for a, b in itertools.pairwise(truth.scenes):
            assert a.scene.background.colour != b.scene.background.colour
            assert a.scene.background.pattern != b.scene.background.pattern


def test_scene_of(clips) -> None:
    _, truth = clips[0]
    cut = truth.cuts[0]
    assert truth.scene_of(0) == 0 and truth.scene_of(cut - 1) == 0 and truth.scene_of(cut) == 1
    assert truth.scene_of(truth.num_frames - 1) == len(truth.scenes) - 1
    assert all(truth.frames[f].scene == truth.scene_of(f) for f in range(truth.num_frames))
    with pytest.raises(ValueError, match="outside"):
        truth.scene_of(truth.num_frames)


def test_events_happen_and_show_in_the_truth(clips) -> None:
    kinds = Counter(e["kind"] for _, truth in clips for e in truth.events)
    assert {"enter", "leave", "stop", "recolour"} <= kinds.keys()
    for _, truth in clips:
        for event in truth.events:
            f, obj = event["frame"], event["object"]
            states = {o.id: o for o in truth.frames[f].objects}
            before = {o.id: o for o in truth.frames[f - 1].objects}
            if event["kind"] == "enter":
                assert obj in states and obj not in before
            elif event["kind"] == "recolour":
                assert states[obj].colour == event["colour"] != before[obj].colour
            elif event["kind"] == "stop" and f + 1 < truth.num_frames:
                after = {o.id: o for o in truth.frames[f + 1].objects}
                assert (after[obj].x, after[obj].y) == (states[obj].x, states[obj].y)


def test_visible_flags_match_the_pixels(clips) -> None:
    frames, truth = clips[1]
    labels = vision.colour_labels(frames)
    for f in range(0, truth.num_frames, 7):
        for obj in truth.frames[f].objects:
            pixels = (labels[f] == vision.colour_index(obj.colour)).sum()
            if obj.area > 30:
                assert pixels > 0.4 * obj.area, (f, obj)
            if not obj.visible:
                assert obj.area == 0.0


def test_sidecar_round_trip_and_byte_identical_files(tmp_path: Path) -> None:
    paths = make_footage(tmp_path / "a", videos=2, seconds=3, size=(40, 56), fps=10, seed=5, progress=False)
    make_footage(tmp_path / "b", videos=2, seconds=3, size=(40, 56), fps=10, seed=5, progress=False)
    make_footage(tmp_path / "c", videos=1, seconds=3, size=(40, 56), fps=10, seed=6, progress=False)
    assert [p.name for p in paths] == ["footage_0000.mp4", "footage_0001.mp4"]
    for name in ("footage_0000.mp4", "footage_0000.json", "footage_0001.mp4", "footage_0001.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "footage_0000.mp4").read_bytes() != (
        tmp_path / "c" / "footage_0000.mp4"
    ).read_bytes()
    truth = FootageTruth.load(tmp_path / "a" / "footage_0001.json")
    _, fresh = footage_video(3, (40, 56), 10, seed=truth.seed or 0)
    assert truth.size == (40, 56) and truth.cuts == fresh.cuts and truth.events == fresh.events
    assert truth.scenes == fresh.scenes
    assert [o.id for o in truth.frames[-1].objects] == [o.id for o in fresh.frames[-1].objects]
    with pytest.raises(FileNotFoundError):
        FootageTruth.load(tmp_path / "missing.json")


def test_footage_of_other_settings_is_refused_unless_overwritten_and_a_rerun_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "footage"
    settings = {"seconds": 1, "size": 32, "fps": 8, "progress": False}
    make_footage(out, videos=2, seed=0, **settings)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "footage_0001.json").unlink()  # a run killed before video 1's sidecar
    make_footage(out, videos=2, seed=0, **settings)  # the same settings: continued, video 1 redone
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(FileExistsError, match="videos: 2 -> 1; pass --overwrite"):
        make_footage(out, videos=1, seed=0, **settings)  # would leave a stale footage_0001 to be curated
    make_footage(out, videos=1, seed=3, overwrite=True, **settings)
    assert sorted(p.name for p in out.iterdir()) == ["footage_0000.json", "footage_0000.mp4", "run.json"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"does not write \(notes\.txt\)"):
        make_footage(out, videos=1, seed=4, overwrite=True, **settings)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"seconds": math.inf}, "seconds must be a finite number > 0, got inf"),
        ({"seconds": math.nan}, "seconds must be a finite number > 0, got nan"),
        ({"fps": math.inf}, "fps must be a finite number > 0, got inf"),
        ({"seconds": 0}, "seconds must be a finite number > 0, got 0"),
        ({"size": (61, 96)}, r"even sides .* got 61x96"),  # the writer would pad the video, not the truth
    ],
)
def test_bad_footage_settings_are_refused_before_anything_is_written(
    tmp_path: Path, options, problem
) -> None:
    settings = {"videos": 1, "seconds": 1.0, "fps": 8.0, "size": 32} | options
    with pytest.raises(ValueError, match=problem):
        make_footage(tmp_path / "out", progress=False, **settings)
    assert not (tmp_path / "out").exists()
    if "size" not in options:  # in memory, an odd size is fine: nothing pads it
        with pytest.raises(ValueError, match=problem):
            footage_video(settings["seconds"], fps=settings["fps"], seed=0)


def test_each_rendered_scene_reports_its_frames_for_progress() -> None:
    heard: list[int] = []
    frames, truth = footage_video(9.0, 32, 8, seed=4, on_scene=heard.append)
    # One report per scene, in order, of exactly its length: a bar counting them ends at the video's length.
    assert heard == [span.end - span.start for span in truth.scenes] and len(heard) > 1
    assert sum(heard) == len(frames) == 72


def test_the_footage_bar_counts_frames_to_its_total_on_a_new_and_a_resumed_run(tmp_path, monkeypatch) -> None:
    from rich.progress import Progress

    import retake.flatland.footage as footage_module

    bars: list[dict] = []

    class Recorded(Progress):
        def add_task(self, description, total=None, **kwargs):
            bars.append({"total": total, "done": 0, "steps": 0})
            return super().add_task(description, total=total, **kwargs)

        def advance(self, task_id, advance=1):
            bars[-1]["done"] += advance
            bars[-1]["steps"] += 1
            super().advance(task_id, advance)

    monkeypatch.setattr(footage_module, "Progress", Recorded)
    make_footage(tmp_path, videos=2, seconds=9, size=32, fps=8, seed=1, progress=False)
    make_footage(tmp_path, videos=2, seconds=9, size=32, fps=8, seed=1, progress=False)  # both found done
    assert [(b["total"], b["done"]) for b in bars] == [(144, 144), (144, 144)]
    assert bars[0]["steps"] > 2 and bars[1]["steps"] == 2  # scene by scene when rendering; a video at a time
