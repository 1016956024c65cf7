"""`probe` and `read` on the kinds of files users bring: other codecs, containers, pixel formats, rotations,
odd and tiny sizes, extreme rates, start offsets, one-frame files, variable rates in Matroska, single images,
and MP4s cut before their index. Every variant is encoded here, small, from one marked picture."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from retake.video import NotMediaError, Video, probe, read, write

MARK = (255, 0, 0)  # a red block at the stored top-left: where it ends up shows the orientation


def picture(height: int = 48, width: int = 80) -> np.ndarray:
    """(H, W, 3): a grey ramp with the red block in the top-left eighth."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.linspace(40, 200, width, dtype=np.uint8)[None, :, None]
    image[: max(1, height // 4), : max(1, width // 4)] = MARK
    return image


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    rotation: int | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Frames (F, H, W, 3) as one video stream; the container follows the suffix. rotation: clockwise
    degrees a player turns the picture; pts: timestamps in `time_base` (a variable rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if time_base is not None:
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises its own "unknown codec" error
        return False
    return True


def displayed(frames: np.ndarray, rotation: int) -> np.ndarray:
    return np.rot90(frames, k=-rotation // 90, axes=(1, 2))  # turned clockwise, as a player shows it


# (file name, encode options, the rotation a player applies, the largest mean error allowed)
VARIANTS = [
    ("rot90.mp4", {"rotation": 90}, 90, 6),
    ("rot180.mov", {"rotation": 180}, 180, 6),
    ("rot270.mp4", {"rotation": 270}, 270, 6),
    ("bframes.mp4", {"options": {"bf": "3"}}, 0, 6),
    ("ten_bit.mp4", {"pix_fmt": "yuv420p10le"}, 0, 6),
    ("full_range.mp4", {"pix_fmt": "yuvj420p"}, 0, 6),
    ("yuv444.mkv", {"pix_fmt": "yuv444p"}, 0, 6),
    ("vp9.webm", {"codec": "libvpx-vp9", "options": {"deadline": "realtime"}}, 0, 8),
    ("mpeg4.avi", {"codec": "mpeg4"}, 0, 10),
    ("png.mov", {"codec": "png", "pix_fmt": "rgb24"}, 0, 1),
    (
        "hevc_rot90.mp4",
        {"codec": "libx265", "rotation": 90, "options": {"x265-params": "log-level=none"}},
        90,
        8,
    ),
    ("av1.mkv", {"codec": "libsvtav1", "options": {"preset": "12"}}, 0, 8),
]


@pytest.mark.parametrize(("name", "options", "rotation", "tolerance"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_a_variant_reads_upright_with_its_colours_count_and_rate(
    tmp_path: Path, name: str, options: dict, rotation: int, tolerance: float
) -> None:
    codec = options.get("codec", "libx264")
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    source = np.stack([picture()] * 6)  # (6, 48, 80, 3)
    path = encode(tmp_path / name, source, **options)
    expected = displayed(source, rotation)
    info = probe(path)
    assert (info.height, info.width, info.frame_count, info.fps, info.rotation) == (
        *expected.shape[1:3],
        6,
        25.0,
        rotation,
    )
    clip = read(path)
    assert clip.frames.shape == expected.shape and clip.fps == 25.0
    assert np.abs(clip.frames.astype(float) - expected).mean() < tolerance
    small = read(path, size=(24, 24), fps=50)  # resized and resampled: each frame shown twice
    assert small.frames.shape == (12, 24, 24, 3)


@pytest.mark.parametrize(("height", "width"), [(9, 17), (8, 8), (33, 47)])
def test_odd_and_tiny_sizes(tmp_path: Path, height: int, width: int) -> None:
    source = np.stack([picture(height, width)] * 3)
    path = encode(tmp_path / "small.mkv", source, codec="ffv1", pix_fmt="yuv444p")
    assert (probe(path).height, probe(path).width) == (height, width)
    assert np.abs(read(path).frames.astype(int) - source).max() <= 2  # lossless, up to the YUV round trip
    assert read(path, size=(32, 48)).frames.shape == (3, 32, 48, 3)


def test_extreme_rates_and_a_start_offset(tmp_path: Path) -> None:
    frames = np.stack([picture()] * 12)
    fast = encode(tmp_path / "fast.mp4", frames, rate=120)
    assert (probe(fast).fps, read(fast, fps=30).num_frames) == (120.0, 3)  # 0.1 s at 30 fps
    slow = encode(tmp_path / "slow.mp4", frames[:3], rate=1)
    assert (probe(slow).duration, read(slow, fps=2).num_frames) == (3.0, 6)
    late = encode(tmp_path / "late.mkv", frames, pts=[125 + i for i in range(12)], time_base=Fraction(1, 25))
    assert read(late, start_time=0.2).num_frames == 7  # times count from the stream's first frame


@pytest.mark.parametrize("name", ["one.mkv", "one.webm", "one.mp4"])
def test_a_one_frame_video_resampled_keeps_its_frame(tmp_path: Path, name: str) -> None:
    """Without a container index the only frame lasts one frame at the nominal rate: resampling it used to
    give no frame at all ("start_time=None is past the end")."""
    codec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
    path = encode(tmp_path / name, picture()[None], codec=codec)
    for fps in (1, 10, 25):
        assert read(path, fps=fps, size=(16, 16)).num_frames == 1
    long_frame = encode(tmp_path / f"slow_{name}", picture()[None], codec=codec, rate=1)  # lasts 1 s
    assert read(long_frame, fps=10).num_frames == 10


def test_a_single_image_is_a_one_frame_video_at_any_range(tmp_path: Path) -> None:
    """FFmpeg's image2 demuxer loses its only packet on a seek and refuses one past it (EPERM): read
    decodes from the start instead of reporting no frames or a bare "Operation not permitted"."""
    path = tmp_path / "still.jpg"
    # Detailed enough (noise) that FFmpeg takes it for image2, as it does real photos, not jpeg_pipe.
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(path)
    with av.open(str(path)) as container:
        assert container.format.name == "image2"
    for kwargs in ({}, {"start": 0}, {"start": 0, "end": 1}, {"start_time": 0.0}, {"fps": 5}):
        assert read(path, **kwargs).num_frames == 1, kwargs
    with pytest.raises(ValueError, match=r"start_time=0\.5 is past the end of .*still\.jpg"):
        read(path, start_time=0.5)


def test_a_variable_rate_matroska_file_reads_at_its_real_rate(tmp_path: Path) -> None:
    """Matroska states a default frame duration (25 fps here) that a variable-rate recording does not keep:
    the rate of a native read comes from the frames' timestamps, as probe's does."""
    steps = [40, 40, 80, 40, 120, 40, 40, 40, 200, 40, 40]  # ms between frames
    pts = [0, *np.cumsum(steps).tolist()]
    frames = np.stack([picture()] * len(pts))
    path = encode(tmp_path / "vfr.mkv", frames, pts=pts, time_base=Fraction(1, 1000))
    info = probe(path)
    assert info.variable_fps and info.fps == pytest.approx(12 / 0.76)  # 12 frames, the last lasting 40 ms
    assert read(path).fps == pytest.approx(info.fps)
    assert read(path, max_frames=4).fps == pytest.approx(4 / 0.24)  # the rate of the frames returned
    constant = encode(tmp_path / "cfr.mkv", frames)
    assert read(constant).fps == 25.0 and read(constant, max_frames=3).fps == 25.0


def test_an_mp4_cut_before_its_index_says_so(tmp_path: Path) -> None:
    """An mp4 whose index (moov) comes last, cut short: FFmpeg only says "Invalid data found"."""
    path = encode(tmp_path / "recording.mp4", np.stack([picture()] * 10))  # PyAV writes moov at the end
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for function in (probe, read):
        with pytest.raises(NotMediaError, match=r"cut\.mp4: an MP4/MOV file without its index"):
            function(cut)
    text = tmp_path / "notes.mp4"
    text.write_text("ftyp is not enough\n")
    with pytest.raises(NotMediaError, match="not a readable media file"):
        probe(text)
    faststart = write(Video(np.stack([picture()] * 4), fps=25), tmp_path / "fast.mp4")  # moov first
    assert probe(faststart).frame_count == 4


def test_paths_with_spaces_and_unicode(tmp_path: Path) -> None:
    folder = tmp_path / "a folder ü"
    folder.mkdir()
    path = encode(folder / "clip 视频.mp4", np.stack([picture()] * 2))
    assert probe(path).frame_count == 2 and read(path).num_frames == 2


@pytest.mark.parametrize("rate", [30, 60, 120])
def test_a_few_frames_of_a_matroska_file_keep_its_stated_rate(tmp_path: Path, rate: int) -> None:
    """Millisecond timestamps put 2 or 3 frames at 60 fps 2-4% off their rate: rounding, not a wrong rate."""
    clip = encode(tmp_path / "fast.mkv", np.stack([picture()] * 12), rate=rate)
    for count in (2, 3, 8, 12):
        assert read(clip, max_frames=count).fps == rate


def test_a_demuxer_that_refuses_to_seek_still_gives_the_frames_asked(tmp_path: Path, monkeypatch) -> None:
    import retake.video as video_module

    frames = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)])
    clip = encode(tmp_path / "one_keyframe.mp4", frames, options={"g": "1000"})
    expected = read(clip, start=10, end=13).frames
    monkeypatch.setattr(video_module, "_seek", lambda *args: False)  # as a demuxer that cannot seek
    refused = read(clip, start=10, end=13)
    np.testing.assert_array_equal(refused.frames, expected)
    assert abs(float(refused.frames[0].mean()) - 100) < 3


def test_a_heif_photo_is_not_called_a_video_cut_short(tmp_path: Path) -> None:
    # An 'ftyp' box of brand heic and a 'meta' box: the layout of an iPhone photo, which has no 'moov'.
    ftyp = (20).to_bytes(4, "big") + b"ftypheic" + (0).to_bytes(4, "big") + b"mif1"
    meta = (16).to_bytes(4, "big") + b"meta" + bytes(8)
    photo = tmp_path / "IMG_0001.heic"
    photo.write_bytes(ftyp + meta)
    with pytest.raises(NotMediaError) as error:
        read(photo)
    assert "without its index" not in str(error.value)
