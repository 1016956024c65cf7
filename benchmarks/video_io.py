"""Frames/s of `retake.video.read` against bare PyAV decoding of the same clips, in one run.

Both sides decode every frame of each real sample clip (../shared/data/videos) at native size into RGB uint8
arrays. The bare side is the fastest plain PyAV loop (threaded decoding, one reused `VideoReformatter` to
rgb24, the arrays left in a list); `read` also assembles one (F, H, W, 3) array. The naive loop
(`frame.to_ndarray("rgb24")`, which builds a swscale context per frame) is timed too, for reference. Each clip is timed REPEATS times, alternating
the two sides so that machine load hits both alike, and the best time of each counts. Prints per-clip
frames/s and the overall ratio read / bare (goal >= 0.8).

Usage: .venv/bin/python benchmarks/video_io.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from retake.video import read

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
REPEATS = 5


def bare_pyav(path: Path) -> int:
    """Decode every frame to RGB with plain PyAV as fast as it goes; returns the frame count."""
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [reformatter.reformat(f, format="rgb24").to_ndarray() for f in container.decode(stream)]
    return len(frames)


def naive_pyav(path: Path) -> int:
    """The textbook loop: `to_ndarray` sets up swscale again for every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return len(frames)


def retake_read(path: Path) -> int:
    return read(path).num_frames


def best_seconds(fns: list[Callable[[Path], int]], path: Path, repeats: int) -> list[float]:
    """Best wall time of each function on `path`, the functions taking turns; all must see the same frames."""
    times: list[list[float]] = [[] for _ in fns]
    counts = set()
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            start = time.perf_counter()
            counts.add(fn(path))
            record.append(time.perf_counter() - start)
    if len(counts) != 1:
        raise RuntimeError(f"{path.name}: the sides decoded different frame counts {sorted(counts)}")
    return [min(record) for record in times]


def run(videos: Path, repeats: int) -> float:
    """Print the table and return the overall ratio (frames/s of read over that of bare PyAV, all clips)."""
    clips = sorted(videos.glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no .mp4 clips in {videos}")
    print(
        f"{'clip':38s} {'frames':>6s} {'W x H':>9s} {'naive fps':>9s} {'bare fps':>9s} {'read fps':>9s} "
        f"{'ratio':>6s}"
    )
    total_bare = total_read = total_naive = 0.0
    for clip in clips:
        t_naive, t_bare, t_read = best_seconds([naive_pyav, bare_pyav, retake_read], clip, repeats)
        first = read(clip, max_frames=1)
        count = retake_read(clip)
        total_bare += t_bare
        total_read += t_read
        total_naive += t_naive
        print(
            f"{clip.name:38s} {count:6d} {first.width:4d}x{first.height:<4d} {count / t_naive:9.1f} "
            f"{count / t_bare:9.1f} "
            f"{count / t_read:9.1f} {t_bare / t_read:6.2f}"
        )
    ratio = total_bare / total_read  # the same frames on both sides: the time ratio is the frames/s ratio
    print(f"overall: read decodes at {ratio:.2f}x the frames/s of bare PyAV (goal >= 0.8)")
    print(f"         and at {total_naive / total_read:.2f}x the frames/s of the naive to_ndarray loop")
    return ratio


if __name__ == "__main__":
    run(VIDEOS, REPEATS)
