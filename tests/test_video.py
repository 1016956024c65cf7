"""retake.video on the real sample clips (../shared/data/videos) and on broken files made here."""

from __future__ import annotations

import math
import pickle
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from retake import video
from retake.errors import RetakeError
from retake.video import (
    ENCODER_THREADS,
    CorruptStreamError,
    MissingFileError,
    NoFramesError,
    NotMediaError,
    NoVideoStreamError,
    UnwritableOutputError,
    Video,
    VideoError,
    check_output,
    probe,
    read,
    resize_cover_crop,
    write,
    write_gif,
)

CLIPS = (
    "anyv2v_ballet.mp4",
    "anyv2v_man-walking.mp4",
    "icve_glasses.mp4",
    "icve_kid.mp4",
    "scenedetect_fades.mp4",
    "scenedetect_goldeneye-vfr-drop3.mp4",
    "tokenflow_wolf.mp4",
    "tokenflow_woman-running.mp4",
)
VFR_CLIP = "scenedetect_goldeneye-vfr-drop3.mp4"
PORTRAIT_CLIPS = ("icve_glasses.mp4", "icve_kid.mp4")
SMALL = (136, 320)  # the VFR clip (544x1280) at a quarter size: the same frames, 16 times less to compare


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------
def readme_table(shared_data: Path) -> dict[str, dict]:
    """Rows of the README table: name -> width, height, frames, fps (None if variable), fps_approx."""
    rows = {}
    pattern = re.compile(r"^\|\s*videos/(\S+)\s*\|\s*(\d+)x(\d+)\s*\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|")
    for line in (shared_data / "README.md").read_text().splitlines():
        match = pattern.match(line)
        if match:
            name, width, height, frames, fps = match.groups()
            variable = fps.startswith("variable")
            approx = float(re.search(r"~?([\d.]+)", fps).group(1))
            rows[name] = dict(
                width=int(width), height=int(height), frames=int(frames), variable=variable, fps=approx
            )
    return rows


def moving_pattern(frames: int, height: int, width: int) -> np.ndarray:
    """A smooth, moving colour pattern (F, H, W, 3) uint8 that H.264 encodes well."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = 128 + 100 * np.sin(2 * np.pi * (x + 2 * t) / max(width, 8))
    green = 128 + 100 * np.cos(2 * np.pi * (y + t) / max(height, 8))
    blue = 128 + 60 * np.sin(2 * np.pi * (x + y + 3 * t) / max(width + height, 8))
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse) if mse > 0 else math.inf


def packet_times(path: Path) -> tuple[np.ndarray, Fraction]:
    """Sorted presentation timestamps straight from PyAV (an oracle independent of retake.video)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        return np.asarray(stamps), stream.time_base


@pytest.fixture(scope="module")
def goldeneye(shared_videos: Path) -> tuple[Path, Video]:
    path = shared_videos / VFR_CLIP
    return path, read(path, size=SMALL)


@pytest.fixture
def clip_100(tmp_path: Path) -> tuple[Path, Video]:
    """A 100-frame 25 fps mp4 written by retake.video.write."""
    source = Video(moving_pattern(100, 48, 64), fps=25)
    return write(source, tmp_path / "clip.mp4"), source


# ----------------------------------------------------------------------------------------------------------
# probe and read on the real clips
# ----------------------------------------------------------------------------------------------------------
def test_readme_table_lists_every_clip(shared_data: Path) -> None:
    on_disk = {p.name for p in (shared_data / "videos").glob("*.mp4")}
    assert set(readme_table(shared_data)) == on_disk == set(CLIPS)


@pytest.mark.parametrize("name", CLIPS)
def test_probe_matches_readme_table(shared_data: Path, name: str) -> None:
    expected = readme_table(shared_data)[name]
    info = probe(shared_data / "videos" / name)
    assert (info.width, info.height, info.frame_count) == (
        expected["width"],
        expected["height"],
        expected["frames"],
    )
    assert info.variable_fps == expected["variable"]
    if expected["variable"]:
        assert info.fps == pytest.approx(expected["fps"], abs=0.5)
    else:
        assert info.fps == expected["fps"]
    assert info.duration == pytest.approx(info.frame_count / info.fps)
    assert info.codec == ("mpeg4" if name == "scenedetect_fades.mp4" else "h264")
    assert "mp4" in info.container.split(",")
    assert info.rotation == 0 and not info.has_audio


@pytest.mark.parametrize("name", CLIPS)
def test_read_whole_clip_matches_probe(shared_videos: Path, name: str) -> None:
    path = shared_videos / name
    info = probe(path)
    first = read(path, max_frames=1)
    assert first.frames.shape == (1, info.height, info.width, 3) and first.frames.dtype == np.uint8
    whole = read(path, size=(16, 16))  # every frame decoded, kept small
    assert whole.num_frames == info.frame_count and whole.decode_errors == 0
    assert whole.fps == pytest.approx(info.fps)


@pytest.mark.parametrize("name", PORTRAIT_CLIPS)
def test_portrait_clips_stay_portrait(shared_videos: Path, name: str) -> None:
    info = probe(shared_videos / name)
    assert info.height > info.width
    clip = read(shared_videos / name, max_frames=2)
    assert clip.height == info.height and clip.width == info.width


def test_vfr_clip_resampled_by_timestamps(goldeneye: tuple[Path, Video]) -> None:
    path, native = goldeneye
    info = probe(path)
    stamps, time_base = packet_times(path)
    seconds = (stamps - stamps[0]) * float(time_base)
    out = read(path, fps=24, size=SMALL)
    # Documented count: every instant k/24 before the end of the stream.
    assert out.num_frames == math.ceil(info.duration * 24) == 240 and out.fps == 24
    # Rule: instant k/24 shows the last source frame at or before it.
    chosen = [int(np.searchsorted(seconds, k / 24 + 1e-9, side="right")) - 1 for k in range(out.num_frames)]
    assert np.all(np.diff(chosen) >= 0)  # time runs forward
    for k, index in enumerate(chosen):
        assert np.array_equal(out.frames[k], native.frames[index]), (
            f"output {k} should be source frame {index}"
        )


def test_vfr_clip_at_its_base_rate_repeats_the_dropped_frames(goldeneye: tuple[Path, Video]) -> None:
    path, native = goldeneye
    out = read(path, fps=24000 / 1001, size=SMALL)  # the rate before every third frame was dropped
    assert out.num_frames == 239  # 9.968 s at 23.976 fps
    repeats = sum(np.array_equal(a, b) for a, b in zip(out.frames[:-1], out.frames[1:], strict=True))
    assert repeats == out.num_frames - native.num_frames  # each dropped slot holds the frame before it


def test_frame_range_matches_whole_read(goldeneye: tuple[Path, Video]) -> None:
    path, native = goldeneye
    part = read(path, start=150, end=157, size=SMALL)
    assert np.array_equal(part.frames, native.frames[150:157])
    tail = read(path, start=155, size=SMALL)
    assert np.array_equal(tail.frames, native.frames[155:])


def test_time_range_on_mpeg4_clip(shared_videos: Path) -> None:
    path = shared_videos / "scenedetect_fades.mp4"  # 25 fps: [2.0 s, 2.4 s) holds frames 50..59
    whole = read(path, end=60)
    part = read(path, start_time=2.0, end_time=2.4)
    assert np.array_equal(part.frames, whole.frames[50:60])
    resampled = read(path, start_time=2.0, end_time=3.0, fps=5)
    assert np.array_equal(resampled.frames, read(path, start=50, end=75).frames[::5])


def test_read_seeks_and_stops_early(goldeneye: tuple[Path, Video], monkeypatch: pytest.MonkeyPatch) -> None:
    path, native = goldeneye  # keyframes at 0, 60 and 140
    decoded = []
    real_decode = video._decode

    def counting_decode(*args):
        for frame in real_decode(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video, "_decode", counting_decode)
    part = read(path, start=150, end=152, size=SMALL)
    assert np.array_equal(part.frames, native.frames[150:152])
    # From the keyframe at 140 to the frame that ends the range, not from frame 0.
    assert len(decoded) <= 152 - 140 + 1
    decoded.clear()
    assert read(path, max_frames=3).num_frames == 3
    assert len(decoded) <= 4  # the frame that ends the range may be decoded, nothing more


def test_read_size_is_cover_crop_of_native(shared_videos: Path) -> None:
    path = shared_videos / VFR_CLIP
    native = read(path, end=4)
    small = read(path, end=4, size=(96, 64))  # landscape source, portrait target
    assert small.frames.shape == (4, 96, 64, 3)
    # read scales inside swscale (in YUV, then converts), so only interpolation and chroma rounding differ.
    reference = resize_cover_crop(native.frames, (96, 64)).astype(np.int16)
    diff = np.abs(small.frames.astype(np.int16) - reference)
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 16


def test_skip_loop_filter_stays_close_to_the_exact_decode(goldeneye: tuple[Path, Video]) -> None:
    path, exact = goldeneye
    fast = read(path, size=SMALL, skip_loop_filter=True)
    assert fast.frames.shape == exact.frames.shape
    # The deblocking really is skipped (the frames change), and what that costs stays below x264's own noise.
    assert 38 < psnr(fast.frames, exact.frames) < 80


def test_skip_loop_filter_on_a_coarse_h264_clip(tmp_path: Path) -> None:
    """Heavy quantisation (crf 40) makes x264 deblock hard; skipping it shows, and drifts only a little."""
    rng = np.random.default_rng(0)
    source = moving_pattern(20, 64, 96)
    source = np.clip(source + rng.integers(-40, 40, source.shape), 0, 255).astype(np.uint8)
    path = write(Video(source, fps=10), tmp_path / "coarse.mp4", crf=40)
    exact, fast = read(path), read(path, skip_loop_filter=True)
    assert fast.frames.shape == exact.frames.shape == source.shape
    assert psnr(fast.frames, exact.frames) < 60  # deblocking did work on these frames
    assert psnr(fast.frames, source) > psnr(exact.frames, source) - 1.5  # and skipping it costs little


def three_bars() -> np.ndarray:
    """(64, 96, 3): saturated red, green and blue bars, where a wrong colour matrix or range shows most."""
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, :32], image[:, 32:64], image[:, 64:] = (220, 30, 40), (30, 200, 60), (40, 50, 210)
    return image


def write_coded(
    path: Path, image: np.ndarray, codec: str, pix_fmt: str, colorspace: str | None = None
) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], pix_fmt
        if colorspace is not None:
            stream.codec_context.colorspace = av.video.reformatter.Colorspace[colorspace]
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame.reformat(format=pix_fmt, dst_colorspace=colorspace)))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
@pytest.mark.parametrize("colorspace", ["ITU709", "ITU601"])
def test_scaled_read_converts_colours_as_the_native_read(
    tmp_path: Path, pix_fmt: str, colorspace: str
) -> None:
    path = tmp_path / "bars.mp4"
    write_coded(path, three_bars(), "libx264", pix_fmt, colorspace)
    native = read(path).frames[0].astype(float)  # (64, 96, 3)
    small = read(path, size=(32, 48)).frames[0].astype(float)  # scaled, then converted
    for bar in range(3):  # the middle of each bar: no edge blur, only the colour conversion matters
        expected = native[:, 32 * bar + 8 : 32 * bar + 24].mean(axis=(0, 1))
        got = small[:, 16 * bar + 4 : 16 * bar + 12].mean(axis=(0, 1))
        assert np.abs(got - expected).max() < 1.5, (bar, got, expected)


@pytest.mark.parametrize(("codec", "pix_fmt"), [("libx264", "yuv444p"), ("png", "rgb24")])
def test_scaled_read_of_other_pixel_formats(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    """4:4:4 video scales in its own format; RGB video (not scalable in place) takes the fused call."""
    path = tmp_path / f"bars_{pix_fmt}.mov"
    write_coded(path, three_bars(), codec, pix_fmt)
    small = read(path, size=(33, 47)).frames  # odd sizes: the cover size is odd too
    assert small.shape == (3, 33, 47, 3)
    reference = resize_cover_crop(read(path).frames, (33, 47)).astype(float)
    assert np.abs(small.astype(float) - reference).mean() < 3.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(start=2, start_time=1.0), "not both"),
        (dict(start=5, end=5), "end must be > start"),
        (dict(end_time=0.0), "end_time must be > start_time"),
        (dict(fps=0), "fps must be"),
        (dict(size=(0, 10)), "size must be"),
        (dict(max_frames=0), "max_frames must be"),
        (dict(start=10_000), "start=10000 is past"),
        (dict(start_time=60.0), "start_time=60.0 is past"),
        (dict(start=2.5), r"start must be an integer, got 2\.5"),
        (dict(start=True), "start must be an integer, got True"),
        (dict(end=3.5), r"end must be an integer, got 3\.5"),
        (dict(max_frames=2.5), "max_frames must be an integer"),
        (dict(start_time=math.nan), "start_time must be finite"),
        (dict(end_time=math.inf), "end_time must be finite"),
        (dict(size=(64.5, 64)), "size must be"),
        (dict(size=(32, 32, 3)), "size must be"),
    ],
)
def test_read_rejects_bad_arguments(shared_videos: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read(shared_videos / "anyv2v_ballet.mp4", **kwargs)


# ----------------------------------------------------------------------------------------------------------
# resize
# ----------------------------------------------------------------------------------------------------------
def test_resize_cover_crop_keeps_the_centre() -> None:
    frames = np.zeros((2, 100, 300, 3), np.uint8)
    frames[:, :, :100] = (255, 0, 0)  # red | green | blue thirds
    frames[:, :, 100:200] = (0, 255, 0)
    frames[:, :, 200:] = (0, 0, 255)
    out = resize_cover_crop(frames, (50, 50))  # square target: only the green centre survives
    assert out.shape == (2, 50, 50, 3) and out.dtype == np.uint8
    assert np.all(out == (0, 255, 0))
    tall = resize_cover_crop(frames, (300, 100))  # 1:3 portrait crop of the centre, enlarged 3x
    assert tall.shape == (2, 300, 100, 3) and np.all(tall[:, :, 5:-5] == (0, 255, 0))


def test_resize_cover_crop_handles_masks_and_identity() -> None:
    masks = np.zeros((1, 40, 40, 1), np.float32)
    masks[:, 10:30, 10:30] = 1.0
    out = resize_cover_crop(masks, (20, 20))
    assert out.shape == (1, 20, 20, 1) and out.dtype == np.float32
    assert out[0, 10, 10, 0] == 1.0 and out[0, 0, 0, 0] == 0.0
    assert resize_cover_crop(masks, (40, 40)) is masks
    with pytest.raises(ValueError, match="size must be"):
        resize_cover_crop(masks, (20, -1))


# ----------------------------------------------------------------------------------------------------------
# write
# ----------------------------------------------------------------------------------------------------------
def test_write_roundtrip_h264_yuv420p(clip_100: tuple[Path, Video]) -> None:
    path, source = clip_100
    info = probe(path)
    assert (info.codec, info.width, info.height, info.frame_count, info.fps) == ("h264", 64, 48, 100, 25.0)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    back = read(path)
    assert back.frames.shape == source.frames.shape and back.fps == 25.0
    assert psnr(back.frames, source.frames) > 35
    assert not list(path.parent.glob(".*partial*"))  # the temporary file is gone


def test_write_pads_odd_sizes_and_keeps_odd_rates(tmp_path: Path) -> None:
    source = Video(moving_pattern(6, 33, 45), fps=30000 / 1001)
    info = probe(write(source, tmp_path / "odd.mp4"))
    assert (info.width, info.height) == (46, 34)  # padded by one column and one row
    assert info.fps == pytest.approx(30000 / 1001)
    back = read(tmp_path / "odd.mp4").frames
    aligned = psnr(back[:, :33, :45], source.frames)
    assert (
        aligned > 30 and aligned > psnr(back[:, 1:, 1:], source.frames) + 3
    )  # padded at the end, not the start
    assert psnr(back[:, 33], back[:, 32]) > 30  # the padding repeats the last row


@pytest.mark.parametrize("size", [(4, 6), (6, 10)])  # H/2 even and odd: chroma planes (do not) fill rows
def test_rgb_to_i420_is_bt601_limited_range_with_averaged_chroma(size: tuple[int, int]) -> None:
    height, width = size
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (255, 0, 0)
    image[:, width // 2 :] = (0, 0, 255)  # W/2 is odd: the edge cuts through one column of 2x2 blocks
    planes = video.rgb_to_i420(image)
    assert planes.shape == (height * 3 // 2, width) and planes.dtype == np.uint8
    y = planes[:height]
    chroma = planes.reshape(-1)[height * width :]
    u, v = (
        chroma[: chroma.size // 2].reshape(height // 2, width // 2),
        chroma[chroma.size // 2 :].reshape(height // 2, width // 2),
    )
    # BT.601 studio swing: red is (Y, U, V) = (81, 90, 240), blue (41, 240, 110).
    assert np.all(np.abs(y[:, 0].astype(int) - 81) <= 1) and np.all(np.abs(y[:, -1].astype(int) - 41) <= 1)
    assert abs(int(u[0, 0]) - 90) <= 1 and abs(int(v[0, 0]) - 240) <= 1
    assert abs(int(u[0, -1]) - 240) <= 1 and abs(int(v[0, -1]) - 110) <= 1
    # The 2x2 blocks straddling the edge get the mean of red and blue, not one of them.
    middle = width // 4
    assert abs(int(u[0, middle]) - 165) <= 1 and abs(int(v[0, middle]) - 175) <= 1
    # What the decoder makes of it is the colour we wrote.
    back = av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24")
    assert np.abs(back[:, 0].astype(int) - (255, 0, 0)).max() <= 3


def test_rgb_to_i420_rejects_what_4_2_0_cannot_hold() -> None:
    with pytest.raises(ValueError, match=r"even-sized.*\(5, 4, 3\)"):
        video.rgb_to_i420(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        video.rgb_to_i420(np.zeros((4, 4, 3), np.float32))


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    clip = Video(moving_pattern(2, 8, 8), fps=10)
    with pytest.raises(ValueError, match="write_gif"):
        write(clip, tmp_path / "x.gif")
    with pytest.raises(ValueError, match="crf"):
        write(clip, tmp_path / "x.mp4", crf=60)
    with pytest.raises(ValueError, match="preset"):
        write(clip, tmp_path / "x.mp4", preset="turbo")
    with pytest.raises(ValueError, match="no frames"):
        write(Video(np.zeros((0, 8, 8, 3), np.uint8), fps=10), tmp_path / "x.mp4")
    for writer, name in ((write, "x.mp4"), (write_gif, "x.gif")):
        with pytest.raises(ValueError, match=r"must be a retake\.video\.Video .* got shape \(2, 8, 8, 3\)"):
            writer(clip.frames, tmp_path / name)
    for name in ("x.mp4", "noext"):
        with pytest.raises(ValueError, match=r"write_gif\(\) makes \.gif files"):
            write_gif(clip, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_read_takes_whole_float_sizes(shared_videos: Path) -> None:
    path = shared_videos / "anyv2v_ballet.mp4"
    frames = read(path, size=(32.0, 48.0), max_frames=2).frames
    assert frames.shape == (2, 32, 48, 3)
    np.testing.assert_array_equal(frames, read(path, size=(32, 48), max_frames=2).frames)
    for bad in ((32.5, 48), (0, 48), (True, 48)):  # a fraction, no pixels, a bool: refused naming the size
        with pytest.raises(ValueError, match=re.escape(f"two positive integers, got {bad!r}")):
            read(path, size=bad, max_frames=2)


def test_resize_cover_crop_names_what_it_cannot_resize() -> None:
    with pytest.raises(ValueError, match="uint8 or float32, got float16"):
        resize_cover_crop(np.zeros((1, 4, 4, 3), np.float16), (2, 2))
    with pytest.raises(ValueError, match=r"a numpy array .* got a list"):
        resize_cover_crop([[[[0, 0, 0]]]], (2, 2))
    # OpenCV resizes at most 4 channels; 5 used to fail with its assertion
    with pytest.raises(ValueError, match=r"1 to 4 channels .* got shape \(1, 4, 4, 5\)"):
        resize_cover_crop(np.zeros((1, 4, 4, 5), np.uint8), (2, 2))
    assert resize_cover_crop(np.zeros((1, 4, 4, 4), np.uint8), (2, 2)).shape == (1, 2, 2, 4)
    many = np.zeros((1, 4, 4, 5), np.uint8)
    assert resize_cover_crop(many, (4, 4)) is many  # nothing to resize: any channel count


def test_a_gif_of_a_very_slow_video_holds_each_frame_as_long_as_gif_can(tmp_path: Path) -> None:
    path = write_gif(Video(moving_pattern(2, 8, 8), fps=0.001), tmp_path / "slow.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.info["duration"] == 655350


def test_check_output_says_why_a_video_cannot_be_written_there_before_any_work(tmp_path: Path) -> None:
    fine = tmp_path / "new" / "deeper" / "edit.MP4"
    assert check_output(fine) == fine and not (tmp_path / "new").exists()  # checks, creates nothing
    assert check_output(tmp_path / "preview.gif").suffix == ".gif"
    (tmp_path / "taken.mp4").mkdir()
    (tmp_path / "notes.txt").write_text("")
    for path, reason in [
        (tmp_path / "edit.avi", "must end in .mp4 or .gif, not '.avi'"),
        (tmp_path / "edit", "not 'no extension'"),
        (tmp_path / "taken.mp4", "is a folder; give a file name such as"),
        (tmp_path / "notes.txt" / "edit.mp4", "notes.txt is a file"),
    ]:
        with pytest.raises(UnwritableOutputError, match=reason) as caught:
            check_output(path)
        assert caught.value.path == path


@pytest.mark.parametrize("name", ["taken.mp4", "taken.gif"])
def test_a_refused_write_names_the_output_and_leaves_no_partial_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()  # the final rename cannot replace a folder
    writer = write_gif if name.endswith(".gif") else write
    with pytest.raises(UnwritableOutputError, match=f"{name}: cannot write it"):
        writer(Video(moving_pattern(2, 8, 8), fps=10), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_write_gif(tmp_path: Path) -> None:
    clip = Video(moving_pattern(12, 60, 90), fps=12)
    path = write_gif(clip, tmp_path / "report" / "clip.gif", max_size=45)
    with Image.open(path) as gif:
        assert gif.size == (45, 30) and gif.n_frames == 12
        delays = []
        for i in range(gif.n_frames):
            gif.seek(i)
            delays.append(gif.info["duration"])
        assert gif.info.get("loop") == 0
    assert sum(delays) == pytest.approx(1000, abs=10)  # 12 frames at 12 fps last one second


def test_video_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Video(np.zeros((1, 4, 4, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        Video(np.zeros((4, 4, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match="fps"):
        Video(np.zeros((1, 4, 4, 3), np.uint8), fps=0)
    clip = Video(np.zeros((5, 4, 6, 3), np.uint8), fps=10)
    assert (clip.num_frames, clip.height, clip.width, clip.duration) == (5, 4, 6, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # These used to fail in math.isfinite or a comparison, as TypeErrors naming neither field nor value.
        (dict(fps="24"), "Video.fps must be a finite number > 0, got '24'"),
        (dict(fps=None), "Video.fps must be a finite number > 0, got None"),
        (dict(fps=True), "Video.fps must be a finite number > 0, got True"),
        (dict(decode_errors=None), "Video.decode_errors must be an integer, got None"),
        # Float frames, as a model or a notebook makes them, are told how to become uint8.
        (dict(frames=np.zeros((1, 4, 4, 3))), re.escape("float64 (floats in [0, 1]: (frames * 255).round()")),
    ],
)
def test_video_names_a_field_of_the_wrong_kind(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Video(**{"frames": np.zeros((1, 4, 4, 3), np.uint8), "fps": 10, **kwargs})
    assert Video(np.zeros((1, 4, 4, 3), np.uint8), fps=np.float32(10), decode_errors=np.int64(2)).fps == 10.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda src, out, clip: read(src, fps="24"), "fps must be a finite number > 0, got '24'"),
        (lambda src, out, clip: read(src, fps=True), "fps must be a finite number > 0, got True"),
        (
            lambda src, out, clip: write(clip, out / "x.mp4", crf="20"),
            "crf must be a number in 0..51, got '20'",
        ),
        (
            lambda src, out, clip: write(clip, out / "x.mp4", crf=None),
            "crf must be a number in 0..51, got None",
        ),
        (
            lambda src, out, clip: write(clip, out / "x.mp4", threads=1.5),
            r"threads must be an integer, got 1\.5",
        ),
        (lambda src, out, clip: write_gif(clip, out / "x.gif", max_size="64"), "max_size must be an integer"),
        (lambda src, out, clip: write_gif(clip, out / "x.gif", max_size=0), "max_size must be >= 1, got 0"),
    ],
)
def test_io_arguments_of_the_wrong_kind_are_value_errors_naming_them(
    shared_videos: Path, tmp_path: Path, call, message: str
) -> None:
    """A str, None or bool where a number or a count belongs used to be a TypeError from a comparison, or be
    taken (fps=True as 1 fps; threads=1.5 went to x264 as given)."""
    clip = Video(moving_pattern(2, 8, 8), fps=10)
    with pytest.raises(ValueError, match=message):
        call(shared_videos / "anyv2v_ballet.mp4", tmp_path, clip)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------
# rotation, audio
# ----------------------------------------------------------------------------------------------------------
def _write_rotated(path: Path) -> Path:
    """A 64x32 stored clip that displays as 32x64 (a phone's "rotate=90"), a red block at the stored top-left."""
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # PyAV counts counter-clockwise
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_rotated_file_is_read_as_displayed(tmp_path: Path) -> None:
    path = _write_rotated(tmp_path / "phone.mp4")
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    clip = read(path)
    assert clip.frames.shape == (3, 64, 32, 3)
    # Turned 90 degrees clockwise, the top-left corner of the stored picture is at the top-right.
    assert clip.frames[0, :6, -6:, 0].min() > 200 and clip.frames[0, -6:, :6, 0].max() < 50


def test_probe_finds_the_first_frame_when_no_keyframe_is_flagged(tmp_path: Path, monkeypatch) -> None:
    path = _write_rotated(tmp_path / "phone.mp4")
    # What a keyframes-only decode gives on a stream whose muxer flags no keyframe: nothing.
    monkeypatch.setattr(video, "_first_decoded", lambda stream, packet: None)
    info = probe(path)
    assert (info.width, info.height, info.rotation, info.frame_count) == (32, 64, 90, 3)


def test_probe_sees_audio(tmp_path: Path) -> None:
    path = tmp_path / "with_audio.mp4"
    with av.open(str(path), "w") as container:
        picture = container.add_stream("libx264", rate=10)
        picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        for i in range(5):
            container.mux(picture.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8))))
        container.mux(picture.encode(None))
        container.mux(sound.encode(sine_frame(seconds=0.5)))
        container.mux(sound.encode(None))
    info = probe(path)
    assert info.has_audio and info.frame_count == 5


def sine_frame(seconds: float, rate: int = 16000) -> av.AudioFrame:
    samples = np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate).astype(np.float32)[None]
    frame = av.AudioFrame.from_ndarray(0.3 * samples, format="fltp", layout="mono")  # (1, samples)
    frame.sample_rate = rate
    return frame


def test_raw_stream_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "raw.h264"  # an elementary stream: no container timestamps, no seeking
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(12):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8))))
        container.mux(stream.encode(None))
    info = probe(path)
    assert (info.frame_count, info.fps, info.duration) == (12, 10.0, 1.2)
    whole = read(path)
    assert whole.num_frames == 12 and whole.fps == 10.0
    assert np.array_equal(read(path, start=3, end=6).frames, whole.frames[3:6])
    assert np.array_equal(read(path, start_time=0.5).frames, whole.frames[5:])
    assert np.array_equal(read(path, fps=5).frames, whole.frames[::2])


def test_variable_rate_rule() -> None:
    # 30 fps in a 1/1000 time base: steps alternate 33/34 ms from rounding, which is not variable.
    assert not video._variable_rate(np.round(np.arange(60) * 1000 / 30).astype(np.int64))
    # A time base of 1/fps has no rounding: one doubled step is a dropped frame.
    assert video._variable_rate(np.array([0, 1, 2, 4, 5, 6]))
    assert not video._variable_rate(np.arange(10))


# ----------------------------------------------------------------------------------------------------------
# broken files
# ----------------------------------------------------------------------------------------------------------
def make_broken(kind: str, tmp_path: Path) -> Path:
    """Files that are not usable videos, one per failure a user can meet."""
    if kind == "missing":
        return tmp_path / "nowhere.mp4"
    if kind == "zero_bytes":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
    elif kind == "text":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n" * 20)
    elif kind == "directory":
        path = tmp_path / "folder.mp4"
        path.mkdir()
    elif kind == "audio_only":
        path = tmp_path / "tone.m4a"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            container.mux(stream.encode(sine_frame(seconds=1.0)))
            container.mux(stream.encode(None))
    elif kind == "scrambled":  # a valid container whose video packets are noise
        path = write(Video(moving_pattern(10, 32, 32), fps=10), tmp_path / "scrambled.mp4")
        data = bytearray(path.read_bytes())
        start = data.find(b"mdat") + 4
        data[start:] = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("kind", "error", "reason"),
    [
        ("missing", MissingFileError, "not found"),
        ("zero_bytes", NotMediaError, "empty"),
        ("text", NotMediaError, "not a readable media file"),
        ("directory", NotMediaError, "directory"),
        ("audio_only", NoVideoStreamError, "no video stream"),
        ("scrambled", NoFramesError, "no frame decodes"),
    ],
)
def test_broken_files_raise_one_error_family(tmp_path: Path, kind: str, error: type, reason: str) -> None:
    path = make_broken(kind, tmp_path)
    for function in (probe, read):
        with pytest.raises(error, match=reason) as caught:
            function(path)
        assert isinstance(caught.value, VideoError) and isinstance(caught.value, RetakeError)
        assert str(caught.value).startswith(f"{path}: ")
    if kind == "missing":
        assert isinstance(caught.value, FileNotFoundError)


def test_mp4_cut_in_half(clip_100: tuple[Path, Video]) -> None:
    path, source = clip_100
    data = path.read_bytes()
    cut = path.with_name("cut.mp4")
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptStreamError, match=r"cut\.mp4: truncated or corrupt") as caught:
        read(cut)
    assert 0 < caught.value.decoded < 100 and caught.value.failed > 0
    partial = read(cut, allow_partial=True)
    assert partial.num_frames == caught.value.decoded and partial.decode_errors == caught.value.failed
    assert partial.num_frames + partial.decode_errors >= 50  # the missing half is counted
    assert psnr(partial.frames, source.frames[: partial.num_frames]) > 30  # and what is returned is right
    assert read(cut, max_frames=10).decode_errors == 0  # stopping before the damage sees none
    assert probe(cut).frame_count < 100  # probe reports the frames actually present


def test_errors_survive_pickling(tmp_path: Path) -> None:
    error = CorruptStreamError(tmp_path / "a.mp4", "truncated", decoded=3, failed=4)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.decoded, copy.failed) == (str(error), 3, 4)
    assert str(pickle.loads(pickle.dumps(NotMediaError(tmp_path / "b.mp4", "empty")))).endswith(
        "b.mp4: empty"
    )


def test_write_bytes_do_not_depend_on_the_core_count(tmp_path: Path) -> None:
    # x264 picks its thread count from the cores unless told; retake fixes it, so the default must equal an
    # explicit count and differ from nothing else the machine decides.
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(12, 256, 256, 3), dtype=np.uint8)
    video = Video(frames=frames, fps=24.0)
    default = write(video, tmp_path / "default.mp4").read_bytes()
    explicit = write(video, tmp_path / "explicit.mp4", threads=1).read_bytes()
    assert default == explicit
    # One thread: with four (and the macroblock tree still on; the two causes were not separated) the same
    # frames gave 3 different files in 8 writes on a busy machine, which no test here can provoke on demand.
    assert ENCODER_THREADS == 1
    with pytest.raises(ValueError, match="threads"):
        write(video, tmp_path / "bad.mp4", threads=0)


def test_decoder_threads_do_not_change_the_frames(tmp_path: Path) -> None:
    path = write(Video(moving_pattern(12, 32, 48), fps=25), tmp_path / "clip.mp4")
    default = read(path).frames
    try:
        video.set_decoder_threads(1)
        assert video.decoder_threads() == 1
        assert np.array_equal(read(path).frames, default)
        with pytest.raises(ValueError, match="-1"):
            video.set_decoder_threads(-1)
    finally:
        video.set_decoder_threads(0)
