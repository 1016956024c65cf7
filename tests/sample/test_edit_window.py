"""`retake edit --fps/--start`: which stretch of the source the model's fixed number of frames covers."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from retake.cli import main
from retake.demo import EDITOR
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
