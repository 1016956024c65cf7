"""`retake edit --fps/--start`: which stretch of the source the model's fixed number of frames covers."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from retake.cli import main
from retake.demo import CLIPS, EDITOR
from retake.sample.pipeline import EditPipeline
from retake.video import probe, read


def ramp(path: Path, count: int, fps: int) -> Path:
    """`count` flat grey frames at `fps`, frame i of level 20 + 2i: a frame's level says which it is."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(count):
            image = np.full((32, 32, 3), 20 + 2 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def edit(src: Path, out: Path, *extra: str, model: Path = EDITOR) -> None:
    command = ["edit", str(src), "make it red", "-o", str(out), "--model", str(model), "--steps", "1"]
    main([*command, "--no-progress", "--size", "16", *extra])


def test_fps_and_start_choose_the_stretch_of_the_source_edited(tmp_path: Path, monkeypatch) -> None:
    # The model is replaced by one that returns what it is given, so the output shows which frames were read.
    monkeypatch.setattr(EditPipeline, "edit", lambda self, video, instruction, **options: video)
    source = ramp(tmp_path / "phone.mp4", 60, fps=60)
    edit(source, tmp_path / "out.mp4", "--frames", "5", "--fps", "20", "--start", "0.5")
    info = probe(tmp_path / "out.mp4")
    assert (info.frame_count, info.fps) == (5, 20.0)
    levels = read(tmp_path / "out.mp4").frames.mean(axis=(1, 2, 3))
    expected = [20 + 2 * (30 + 3 * k) for k in range(5)]  # 0.5 s in at 60 fps, then every third frame
    np.testing.assert_allclose(levels, expected, atol=2)


def test_a_bad_window_is_refused_in_one_line_before_the_model_loads(tmp_path: Path, capsys) -> None:
    source = ramp(tmp_path / "clip.mp4", 10, fps=10)  # 1 s long
    cases = [
        (("--fps", "0"), "fps must be > 0, got 0.0"),
        (("--fps", "nan"), "fps must be finite"),
        (("--start", "-1"), "start must be >= 0, got -1.0"),
        (("--start", "1"), "--start 1 s is past the end of"),
    ]
    for extra, reason in cases:
        with pytest.raises(SystemExit) as stop:  # the bundle does not exist: the window is checked first
            edit(source, tmp_path / "out.mp4", *extra, model=tmp_path / "no-bundle")
        err = capsys.readouterr().err
        assert stop.value.code == 2 and reason in err and len(err.strip().splitlines()) == 1, err


def clip(path: Path, count: int, height: int, width: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(count):
            image = np.full((height, width, 3), 20 + 2 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]


def test_without_a_size_a_source_keeps_its_shape_and_the_note_says_so(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(EditPipeline, "edit", lambda self, video, instruction, **options: video)
    source = clip(tmp_path / "portrait.mp4", 5, 48, 32)  # the shipped bundle edits 64x64 by default
    main(["edit", str(source), "x", "-o", str(tmp_path / "out.mp4"), "--model", str(EDITOR), "--no-progress"])
    info = probe(tmp_path / "out.mp4")
    assert (info.height, info.width) == (72, 48)  # about 64 * 64 pixels, 1.5 times as high as wide, on 8 px
    assert notes(capsys) == [
        "note: editing at 72x48: about the bundle's 64x64 pixels, in the source's shape",
        "note: editing 5 frames, not the default 17 frames: the source has 5",
    ]


def test_a_size_or_frame_count_off_the_grid_and_a_crop_are_told(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(EditPipeline, "edit", lambda self, video, instruction, **options: video)
    source = clip(tmp_path / "wide.mp4", 10, 32, 48)
    edit(source, tmp_path / "out.mp4", "--size", "50", "--frames", "8")  # `edit` asks --size 16 first
    assert notes(capsys) == [
        "note: size 50x50 rounded down to 48x48 (multiples of 8 px)",
        "note: the source (32x48) is cropped to the shape of 48x48: 33% of its width is cut off",
        "note: editing 5 frames, not frames=8: this model takes 4k + 1 frames",
    ]
    edit(source, tmp_path / "out.mp4")
    assert notes(capsys) == [
        "note: the source (32x48) is cropped to the shape of 16x16: 33% of its width is cut off",
        "note: editing 9 frames, not the default 17 frames: the source has 10 and this model takes 4k + 1 frames",
    ]


def test_a_source_short_after_start_and_resampling_says_so(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(EditPipeline, "edit", lambda self, video, instruction, **options: video)
    source = clip(tmp_path / "short.mp4", 20, 32, 32)  # 2 s at 10 fps
    edit(source, tmp_path / "out.mp4", "--start", "1", "--fps", "5")  # 1 s left: 5 frames at 5 fps
    assert notes(capsys) == [
        "note: editing 5 frames, not the default 17 frames: the source has 5 from 1 s at 5 fps"
    ]
    assert probe(tmp_path / "out.mp4").frame_count == 5


def test_a_panorama_without_a_size_is_cropped_and_the_note_says_how_much(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(EditPipeline, "edit", lambda self, video, instruction, **options: video)
    source = clip(tmp_path / "strip.mp4", 5, 8, 2000)  # 250 times as wide as high
    main(["edit", str(source), "x", "-o", str(tmp_path / "out.mp4"), "--model", str(EDITOR), "--no-progress"])
    assert notes(capsys)[:2] == [  # at most twice the bundle's 64 x 64 pixels
        "note: editing at 8x1024: about the bundle's 64x64 pixels, in the source's shape",
        "note: the source (8x2000) is cropped to the shape of 8x1024: 49% of its width is cut off",
    ]


def test_a_request_longer_than_the_window_names_the_window(tmp_path: Path, capsys) -> None:
    source = clip(tmp_path / "short.mp4", 20, 32, 32)  # 2 s at 10 fps
    with pytest.raises(SystemExit):
        edit(source, tmp_path / "out.mp4", "--start", "1.5", "--fps", "8", "--frames", "9")
    assert "frames=9 is more than the source's 4 frames from 1.5 s at 8 fps" in capsys.readouterr().err


def test_a_start_past_the_end_is_named_as_edit_file_calls_it(tmp_path: Path) -> None:
    from retake.sample.pipeline import edit_file

    source = ramp(tmp_path / "short.mp4", 10, fps=10)  # 1 s long
    pipeline = EditPipeline.from_pretrained(EDITOR)
    for duration in (None, 2.0):
        with pytest.raises(
            ValueError, match=r"start=1\.5 s is past the end of .*short\.mp4 \(1\.00 s long\)"
        ):
            edit_file(
                pipeline, source, tmp_path / "out.mp4", "x", start=1.5, duration=duration, progress=False
            )
    assert not (tmp_path / "out.mp4").exists()


def test_a_callback_that_cannot_be_called_is_refused_before_any_encoding(monkeypatch) -> None:
    from retake.video import read

    pipeline = EditPipeline.from_pretrained(EDITOR)
    encoded = []
    monkeypatch.setattr(EditPipeline, "encode_text", lambda self, prompts: encoded.append(prompts))
    with pytest.raises(ValueError, match="callback must be a function of a Step, got 3"):
        pipeline.edit(read(CLIPS / "recolour.source.mp4"), "x", callback=3, progress=False)
    assert encoded == []
