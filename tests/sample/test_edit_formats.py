"""`retake edit` on the kinds of files users bring: refused ones fail in one line naming the file before the
model loads; rotated, variable-rate and very short ones are edited upright, at their own rate, or refused."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from retake.cli import main
from retake.demo import EDITOR
from retake.video import probe, read


def encode(path: Path, frames: np.ndarray, *, rotation: int = 0, pts: list[int] | None = None) -> Path:
    """H.264 frames (F, H, W, 3) at 25 fps (or at `pts` milliseconds), shown turned `rotation` degrees."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if pts is not None:
            stream.time_base = Fraction(1, 1000)
        stream.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def edit(src: Path, out: Path, *extra: str, model: Path = EDITOR) -> None:
    command = ["edit", str(src), "make it red", "-o", str(out), "--model", str(model), "--steps", "1"]
    main([*command, "--no-progress", *extra])


def test_unusable_sources_are_refused_in_one_line_before_the_model_loads(tmp_path: Path, capsys) -> None:
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "notes.mp4").write_text("not a video\n")
    recording = encode(tmp_path / "recording.mp4", frames(10))  # its index (moov) is written last
    (tmp_path / "cut.mp4").write_bytes(recording.read_bytes()[: recording.stat().st_size // 2])
    cases = [
        ("folder.mp4", "folder.mp4: is a directory"),
        ("notes.mp4", "notes.mp4: not a readable media file"),
        ("cut.mp4", "cut.mp4: an MP4/MOV file without its index"),
    ]
    for name, reason in cases:
        with pytest.raises(SystemExit) as stop:  # the bundle does not exist: the source is checked first
            edit(tmp_path / name, tmp_path / "out.mp4", model=tmp_path / "no-bundle")
        err = capsys.readouterr().err
        assert stop.value.code == 2 and reason in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.mp4").exists()


def test_a_source_too_short_for_the_frames_asked_is_named(tmp_path: Path, capsys) -> None:
    source = encode(tmp_path / "two frames.mp4", frames(2))
    with pytest.raises(SystemExit):
        edit(source, tmp_path / "out.mp4", "--frames", "5", "--size", "16")
    assert f"{source}: frames=5 is more than the source's 2 frames" in capsys.readouterr().err
    edit(source, tmp_path / "out.mp4", "--size", "16")  # by default the frames it has: one (4k+1)
    assert probe(tmp_path / "out.mp4").frame_count == 1


def test_a_rotated_phone_video_is_edited_upright(tmp_path: Path) -> None:
    source = encode(tmp_path / "phone.mp4", frames(5, 32, 48), rotation=90)  # shown 32 wide, 48 high
    edit(source, tmp_path / "out.mp4", "--frames", "5", "--size", "48x32")
    info = probe(tmp_path / "out.mp4")
    assert (info.height, info.width, info.frame_count, info.fps, info.rotation) == (48, 32, 5, 25.0, 0)


def test_a_variable_rate_matroska_source_is_edited_at_its_real_rate(tmp_path: Path) -> None:
    """The mkv states 25 fps but holds frames 40 to 120 ms apart: the edit keeps the clip's real duration."""
    pts = [0, 40, 80, 160, 200, 320, 360]
    source = encode(tmp_path / "recording.mkv", frames(len(pts)), pts=pts)
    edit(source, tmp_path / "out.mp4", "--frames", "5", "--size", "16")
    shown = read(source, max_frames=5).fps  # 5 frames over 0.24 s
    assert shown == pytest.approx(5 / 0.24)
    assert probe(tmp_path / "out.mp4").fps == pytest.approx(shown, rel=1e-3)
