"""Throughput of the curation pipeline: source frames analysed per second by the whole pipeline (probe,
decode, scene split, motion, clips, pairs, clip re-read, H.264 encode, shard writing) against bare PyAV
decoding of the same files with the same number of worker processes, as a ratio from one run.

Two bare baselines are timed: the fastest PyAV loop (one reused swscale context per file, the goal's
reference) and the textbook `frame.to_ndarray("rgb24")` loop, which sets swscale up again for every frame and
is about 2.5x slower here. With fast decoding, everything else the pipeline must do per analysed frame
(scene detection, and above all H.264-encoding the written clips: about a quarter of the analysed frames on
these short clips) weighs as much as the decoding itself.

    .venv/bin/python benchmarks/curate_throughput.py [--copies 4] [--workers 2] [--no-ray]

Inputs are the real sample clips of ../shared/data/videos, each linked `--copies` times into a temporary
folder (symlinks, nothing is copied) so there is enough work for the workers. Goal: ratio >= 0.7.
For Ray, Ray itself is started before the clock starts (a cluster is up before a job runs); the actors'
start-up is timed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from retake.data.pipeline import build_stages
from retake.data.recipes import get_recipe
from retake.data.records import Meta, make_sample
from retake.data.runner import curate
from retake.data.shards import TarSink
from retake.data.writers import NoneWriter

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def bare_decode(path: str) -> int:
    """Decode every frame to RGB at native size, as cheaply as PyAV allows (one reused swscale context;
    `frame.to_ndarray` would build one per frame and run 2.5x slower)."""
    reformatter = VideoReformatter()
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = (reformatter.reformat(f, format="rgb24").to_ndarray() for f in container.decode(stream))
        return sum(1 for _ in frames)


def naive_decode(path: str) -> int:
    """The textbook loop: `to_ndarray` builds a swscale context for every frame."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24") is not None)


def bare_fps(paths: list[Path], workers: int, decode=bare_decode) -> tuple[float, int]:
    start = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        frames = sum(pool.map(decode, [str(p) for p in paths]))
    return frames / (time.perf_counter() - start), frames


def busy_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat); None elsewhere."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def pipeline_fps(folder: Path, out: Path, executor: str, workers: int) -> tuple[float, dict, float | None]:
    """(frames analysed per second, the run's stats, share of the machine's CPU time that was busy)."""
    config = get_recipe("icve-pretrain").replace(shard_size=2)
    before, start = busy_ticks(), time.perf_counter()
    result = curate(folder, out, config, executor=executor, workers=workers, progress=False)
    seconds, after = time.perf_counter() - start, busy_ticks()
    busy = None if before is None or after is None else (after[0] - before[0]) / (after[1] - before[1])
    return result.stats["frames_analysed"] / seconds, result.stats, busy


def stage_seconds(paths: list[Path], tmp: Path) -> tuple[dict[str, float], float]:
    """In this process, one video at a time: seconds spent in each stage, and in bare decoding."""
    config = get_recipe("icve-pretrain")
    sink = TarSink(tmp / "profile.tar")
    stages = build_stages(config, NoneWriter(), sink, "profile")
    spent: dict[str, float] = dict.fromkeys((s.name for s in stages), 0.0)
    bare = 0.0
    for path in paths:
        start = time.perf_counter()
        bare_decode(str(path))
        bare += time.perf_counter() - start
        sample, meta = make_sample(path, path.name, 0), Meta()
        for stage in stages:
            start = time.perf_counter()
            sample, meta, error = stage(sample, meta)
            spent[stage.name] += time.perf_counter() - start
            if error is not None:
                break
    sink.abort()
    return spent, bare


def link_inputs(folder: Path, copies: int) -> list[Path]:
    paths = []
    for source in sorted(VIDEOS.glob("*.mp4")):
        for i in range(copies):
            link = folder / f"{source.stem}_{i}.mp4"
            link.symlink_to(source)
            paths.append(link)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # 4 links to each clip: enough shards that Ray's actor start-up (seconds) is spread as over a real job
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        raise SystemExit(f"sample videos not found at {VIDEOS}")
    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        paths = link_inputs(inputs, args.copies)
        print(
            f"{len(paths)} videos ({args.copies} links to each of {len(paths) // args.copies} sample clips), {args.workers} workers"
        )
        bare, frames = bare_fps(paths, args.workers)
        naive, _ = bare_fps(paths, args.workers, naive_decode)
        print(
            f"bare PyAV decode: {frames} frames, {bare:.0f} frames/s (textbook to_ndarray loop: {naive:.0f})"
        )
        executors = ["local"] + ([] if args.no_ray else ["ray"])
        for executor in executors:
            if executor == "ray":
                import ray

                ray.init(
                    num_cpus=args.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            fps, stats, busy = pipeline_fps(inputs, Path(tmp) / f"out-{executor}", executor, args.workers)
            print(
                f"pipeline ({executor}): {stats['frames_analysed']} frames analysed, {fps:.0f} frames/s, "
                f"{stats['pairs_ok']} pairs -> ratio {fps / bare:.2f} (goal >= 0.70); "
                f"{fps / naive:.2f} against the textbook loop"
                + ("" if busy is None else f"; CPUs busy {busy:.0%} of the run (all load on the machine)")
            )
        if not args.no_ray:
            ray.shutdown()
        spent, bare_s = stage_seconds(sorted(VIDEOS.glob("*.mp4")), Path(tmp))
        total = sum(spent.values())
        print(f"where the time goes (one process, the {len(list(VIDEOS.glob('*.mp4')))} clips once):")
        print(
            f"  bare decode {bare_s:.2f} s | pipeline {total:.2f} s = "
            + ", ".join(f"{name} {sec:.2f}" for name, sec in spent.items() if sec >= 0.005)
        )


if __name__ == "__main__":
    main()
