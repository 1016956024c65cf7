"""Found by auditing `retake edit --duration` on real and odd videos: saved passes of other weights, what an
interrupted edit says, cut files, and the wording of one-frame passes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from interrupt import Stop, stopping_after
from retake.sample.pass_store import passes_folder
from retake.sample.pipeline import EditPipeline, edit_file, read_for_edit
from retake.video import CorruptStreamError, Video, read, write

OPTIONS = dict(size=32, duration=math.inf, steps=1, seed=5, progress=False)


def test_saved_passes_of_other_weights_at_the_same_path_are_not_continued(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    src, out = shared_videos / "anyv2v_ballet.mp4", tmp_path / "out.mp4"  # 16 frames: 4 passes of 5
    with pytest.raises(Stop):
        edit_file(
            EditPipeline.from_pretrained(bundle), src, out, "add a hat", callback=stopping_after(2), **OPTIONS
        )
    retrained = EditPipeline.from_pretrained(bundle)  # trained on, and saved over the same bundle
    with torch.no_grad():
        next(retrained.transformer.parameters()).mul_(1.5)
    retrained.save_pretrained(bundle, overwrite=True)
    retrained = EditPipeline.from_pretrained(bundle)
    notes: list[str] = []
    edit_file(retrained, src, out, "add a hat", note=notes.append, **OPTIONS)
    fresh = edit_file(retrained, src, tmp_path / "fresh.mp4", "add a hat", **OPTIONS)
    assert any("starting over: the 2 saved passes" in n and "model.files." in n for n in notes), notes
    np.testing.assert_array_equal(read(out).frames, read(fresh).frames)


def test_an_interrupted_edit_says_where_its_passes_are_and_that_a_rerun_continues(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)
    out, notes = tmp_path / "out.mp4", []
    with pytest.raises(Stop):
        edit_file(
            pipeline,
            shared_videos / "anyv2v_ballet.mp4",
            out,
            "add a hat",
            callback=stopping_after(1),
            note=notes.append,
            **OPTIONS,
        )
    assert notes[-1] == (
        f"the edit stopped with 1 finished pass saved in {passes_folder(out)}: the same command continues "
        "from them (delete the folder to drop them)"
    )
    notes.clear()
    edit_file(pipeline, shared_videos / "anyv2v_ballet.mp4", out, "add a hat", note=notes.append, **OPTIONS)
    assert f"continuing an interrupted edit: 1 pass was saved in {passes_folder(out)}" in notes


def test_one_frame_passes_are_worded_in_the_singular(
    bundle_dir: Path, shared_videos: Path, tmp_path: Path
) -> None:
    pipeline = EditPipeline.from_pretrained(bundle_dir, vae_tiling=None)
    notes: list[str] = []
    src = shared_videos / "anyv2v_ballet.mp4"
    options = OPTIONS | dict(duration=0.25, frames=1, overlap=0)  # 2 frames at 8 fps
    edit_file(pipeline, src, tmp_path / "out.mp4", "add a hat", note=notes.append, **options)
    assert "editing 2 frames in 2 passes of up to 1 frame, each continuing nothing" in notes[-1]


def test_a_cut_file_is_refused_naming_the_duration_that_decodes(
    make_pipeline, shared_videos: Path, tmp_path: Path
) -> None:
    whole = write(read(shared_videos / "tokenflow_wolf.mp4", size=(32, 32)), tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"  # the index at the front names 40 frames; the second half of the data is gone
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    pipeline = make_pipeline()
    with pytest.raises(CorruptStreamError, match=r"a duration of at most [\d.]+ s edits the part") as error:
        read_for_edit(pipeline, cut, size=32, duration=math.inf)
    assert "allow_partial" not in str(error.value)  # a Python argument, not something a command can pass
    seconds = float(str(error.value).split("a duration of at most ")[1].split(" s ")[0])
    video = read_for_edit(pipeline, cut, size=32, duration=seconds)
    assert isinstance(video, Video) and 0 < video.num_frames == error.value.decoded


def test_a_duration_far_past_the_end_reads_only_what_is_there(make_pipeline, shared_videos: Path) -> None:
    # read preallocated for the whole asked window: an hour of a 2 s clip was a MemoryError (or gigabytes)
    src = shared_videos / "tokenflow_wolf.mp4"  # 2 s
    video = read_for_edit(make_pipeline(), src, size=32, fps=1000, duration=1e9)
    assert (video.num_frames, video.fps) == (2000, 1000)


def test_a_one_frame_source_is_worded_in_the_singular(make_pipeline, shared_videos: Path, tmp_path) -> None:
    one = write(read(shared_videos / "tokenflow_wolf.mp4", size=(32, 32), max_frames=1), tmp_path / "one.mp4")
    notes: list[str] = []
    read_for_edit(make_pipeline(), one, size=32, note=notes.append)
    assert notes == ["editing 1 frame, not the default 5 frames: the source has 1"]
