"""`retake curate` on the kinds of files users bring: a phone video shown rotated, a variable-rate Matroska
recording, other containers and pixel formats, and files that cannot be used (each one error row naming it)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from data_synth import shot

from retake import video
from retake.data.recipes import get_recipe
from retake.data.runner import curate
from retake.data.shards import iter_shard, read_manifest

# Small and fast: 64 px analysis and output, clips of 9 frames at 12 fps.
CONFIG = get_recipe("icve-pretrain").replace(
    clip_frames=9, output_short_side=64, analysis_short_side=64, min_scene_frames=8, shard_size=8, seed=1
)


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    pts_ms: list[int] | None = None,
) -> Path:
    """Frames (F, H, W, 3) at 24 fps (or at `pts_ms`), shown turned `rotation` degrees clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts_ms is not None:
            stream.time_base = Fraction(1, 1000)
        stream.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """(input folder, dataset folder, the stored frames every good input holds): 72 frames (3 s at 24 fps) of
    one sliding shot, 64x96, with a red block at the stored top-left."""
    root = tmp_path_factory.mktemp("formats")
    inputs = root / "in"
    inputs.mkdir()
    frames = shot(np.random.default_rng(0), 72, (64, 96), speed=2)
    frames[:, :12, :12] = (255, 0, 0)
    encode(inputs / "phone.mp4", frames, rotation=90)
    encode(inputs / "full range.mov", frames, pix_fmt="yuvj420p")
    encode(inputs / "ten_bit.mkv", frames, pix_fmt="yuv420p10le")
    encode(inputs / "web.webm", frames, codec="libvpx-vp9")
    # A screen recording: 24 fps stated, frames 80 ms apart (12.5 fps), so 5.8 s long.
    encode(inputs / "recording.mkv", frames, pts_ms=[80 * i for i in range(72)])
    recording = encode(inputs / "moov_last.mp4", frames)  # PyAV writes the index last
    (inputs / "cut.mp4").write_bytes(recording.read_bytes()[: recording.stat().st_size // 2])
    (inputs / "empty.mp4").write_bytes(b"")
    curate(inputs, root / "out", CONFIG, workers=1, progress=False)
    return inputs, root / "out", frames


def rows_by_video(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in read_manifest(out).to_pylist():
        rows.setdefault(row["source_video"], []).append(row)
    return rows


def test_unusable_files_are_error_rows_that_say_why(curated) -> None:
    inputs, out, _ = curated
    rows = rows_by_video(out)
    assert [(r["status"], r["stage"]) for r in rows["cut.mp4"]] == [("error", "probe")]
    assert rows["cut.mp4"][0]["detail"] == f"{inputs / 'cut.mp4'}: an MP4/MOV file without its index " + (
        "(no 'moov' box): cut short, or still being written"
    )
    assert rows["empty.mp4"][0]["detail"].endswith("empty.mp4: file is empty (0 bytes)")


def test_every_good_variant_gives_pairs_of_upright_clips(curated) -> None:
    _, out, frames = curated
    rows = rows_by_video(out)
    for name in ("phone.mp4", "full range.mov", "ten_bit.mkv", "web.webm", "moov_last.mp4", "recording.mkv"):
        assert rows[name] and all(r["status"] == "ok" for r in rows[name]), rows[name]
    sizes = {r["source_video"]: (r["height"], r["width"]) for r in read_manifest(out).to_pylist()}
    assert sizes["phone.mp4"] == (96, 64) and sizes["web.webm"] == (64, 96)
    for tar in sorted((out / "shards").glob("*.tar")):
        for key, files in iter_shard(tar):
            row = next(r for r in read_manifest(out).to_pylist() if r["pair_id"] == key)
            clip = _decode(files["src.mp4"], tar.parent / f"{key}.mp4")
            rotation = 90 if row["source_video"] == "phone.mp4" else 0
            shown = np.rot90(frames[row["src_frames"]], k=-rotation // 90, axes=(1, 2))
            expected = video.resize_cover_crop(shown, clip.shape[1:3]).astype(float)
            assert np.abs(clip - expected).mean() < 12, row["source_video"]  # upright, colours kept


def test_a_recording_whose_stated_rate_is_wrong_is_clipped_at_its_real_rate(curated) -> None:
    """The mkv states 24 fps but holds 12.5 a second: 12 fps clips take nearly every frame, not every second one."""
    _, out, _ = curated
    rows = [r for r in read_manifest(out).to_pylist() if r["source_video"] == "recording.mkv"]
    assert rows[0]["fps"] == pytest.approx(12.5, rel=0.01)
    for row in rows:
        assert np.diff(row["src_frames"]).max() <= 2 and row["src_frames"][-1] - row["src_frames"][0] < 10


def _decode(data: bytes, path: Path) -> np.ndarray:
    path.write_bytes(data)
    try:
        return video.read(path).frames.astype(float)
    finally:
        path.unlink()
