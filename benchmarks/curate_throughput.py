"""Throughput of the curation pipeline: source frames analysed per second by the whole pipeline (probe,
decode, scene split, motion, clips, pairs, H.264 encode, shard writing) against bare PyAV decoding of the same
files with the same number of worker processes, as ratios from one run.

Each round times bare decoding and then the pipeline on a small and on a large input set, and gives two
ratios:
- whole run: frames over wall time of the large run, start-up included;
- steady state: the extra frames of the large run over its extra seconds. Fixed costs of a job (starting
  the process pool or the Ray actors, Ray Data's planning: about 2-4 s per job here) cancel out, which is the
  rate a job over a million videos runs at. The goal (>= 0.7) is about that rate.
On a shared machine one round's ratio can be off by 0.2 either way (the load of other tenants changes between
the runs), so the result is the median over `--rounds`, with the range.

The reference is the fastest bare PyAV loop (one reused swscale context per file), in the pipeline's worker
set-up (`retake.data.executors.init_worker`), on whichever decoder threading is faster in that round: the
pipeline's (each worker's share of the cores) or FFmpeg's own. The textbook `frame.to_ndarray("rgb24")` loop,
which sets swscale up again for every frame, is timed once for comparison.
The reference decodes exactly; the pipeline's recipe skips H.264's deblocking filter (`skip_loop_filter`), a
sixth less decoding work. So each round also gives the ratios against bare decoding with the pipeline's own
decoder settings: what everything beyond decoding costs.
With fast decoding, everything else the pipeline must do per analysed frame (scene detection, H.264-encoding
the written clips) weighs almost as much as the decoding itself.

    .venv/bin/python benchmarks/curate_throughput.py [--inputs DIR] [--copies 4] [--scale 4] [--rounds 3]
        [--workers 2] [--no-ray]

Inputs are the videos in `--inputs` (default: the real sample clips of ../shared/data/videos), each linked
`--copies` times (the large set: `--copies * --scale` times) into a temporary folder (symlinks, nothing is
copied). For Ray, Ray itself is started before the clock starts (a cluster is up before a job runs); each
job's actor start-up is timed.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from retake import video
from retake.data.executors import init_worker, threads_per_worker
from retake.data.pipeline import build_stages
from retake.data.recipes import get_recipe
from retake.data.records import Meta, make_sample
from retake.data.runner import curate, list_inputs
from retake.data.shards import TarSink
from retake.data.writers import NoneWriter

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def bare_decode(path: str, threads: int = 0, skip_loop_filter: bool = False) -> int:
    """Decode every frame to RGB at native size, as cheaply as PyAV allows (one reused swscale context;
    `frame.to_ndarray` would build one per frame and run 2.5x slower), on `threads` decoder threads (0: FFmpeg
    takes one per core); `skip_loop_filter` skips the deblocking as the pipeline's recipe does."""
    reformatter = VideoReformatter()
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        frames = (reformatter.reformat(f, format="rgb24").to_ndarray() for f in container.decode(stream))
        return sum(1 for _ in frames)


def naive_decode(path: str) -> int:
    """The textbook loop: `to_ndarray` builds a swscale context for every frame."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24") is not None)


@dataclass(frozen=True)
class Timing:
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def steady_fps(small: Timing, large: Timing) -> float:
    """Frames per second of the work the large run has on top of the small one: fixed costs cancel."""
    return (large.frames - small.frames) / max(large.seconds - small.seconds, 1e-9)


def bare_run(paths: list[Path], workers: int, decode=bare_decode) -> Timing:
    start = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    # The pipeline's worker set-up, so the two differ only in the work done.
    share = threads_per_worker(workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(share,)) as pool:
        frames = sum(pool.map(decode, [str(p) for p in paths]))
    return Timing(frames, time.perf_counter() - start)


def bare_decoders(workers: int) -> dict[str, Callable[[str], int]]:
    """Bare (exact) decoding on the pipeline's decoder threads (each worker's share of the cores) and on
    FFmpeg's own (one per core in every worker). The reference is whichever is faster."""
    return {
        "share": functools.partial(bare_decode, threads=threads_per_worker(workers)),
        "ffmpeg": bare_decode,
    }


def same_decoder(workers: int) -> Callable[[str], int]:
    """Bare decoding with the pipeline's own decoder settings (no deblocking when the recipe skips it): the
    ratio against it counts only the pipeline's work beyond decoding."""
    skip = get_recipe("icve-pretrain").skip_loop_filter
    return functools.partial(bare_decode, threads=threads_per_worker(workers), skip_loop_filter=skip)


def pipeline_run(folder: Path, out: Path, executor: str, workers: int) -> Timing:
    """Source frames analysed by one curation run, and its wall time."""
    config = get_recipe("icve-pretrain").replace(shard_size=2)
    start = time.perf_counter()
    result = curate(folder, out, config, executor=executor, workers=workers, progress=False)
    return Timing(result.stats["frames_analysed"], time.perf_counter() - start)


def stage_seconds(paths: list[Path], tmp: Path) -> tuple[dict[str, float], float]:
    """In this process, one video at a time: seconds spent in each stage, and in bare decoding."""
    config = get_recipe("icve-pretrain")
    init_worker()  # as every pipeline worker does
    sink = TarSink(tmp / "profile.tar")
    stages = build_stages(config, NoneWriter(), sink, "profile")
    spent: dict[str, float] = dict.fromkeys((s.name for s in stages), 0.0)
    bare = 0.0
    for path in paths:
        start = time.perf_counter()
        bare_decode(str(path), threads=video.decoder_threads())
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


def link_inputs(folder: Path, sources: list[Path], copies: int) -> list[Path]:
    paths = []
    for k, source in enumerate(sources):  # k: videos of two subfolders may share a name
        for i in range(copies):
            link = folder / f"{source.stem}_{k}_{i}{source.suffix}"
            link.symlink_to(source.resolve())
            paths.append(link)
    return paths


@dataclass(frozen=True)
class Ratios:
    whole: float  # large run, start-up included
    steady: float  # large minus small: fixed costs cancel
    whole_same: float  # the same two against bare decoding with the pipeline's decoder settings
    steady_same: float


def measure_round(sets: dict[str, list[Path]], tmp: Path, executor: str, workers: int, tag: str) -> Ratios:
    """Bare decoding and the pipeline on the small then the large set, each bare run right before its
    pipeline run, so a change in the machine's load between them skews one round, not the ratio's trend."""
    decoders = bare_decoders(workers)
    bare: dict[str, dict[str, Timing]] = {mode: {} for mode in decoders}
    same: dict[str, Timing] = {}
    pipe = {}
    for name, paths in sets.items():
        for mode, decode in decoders.items():
            bare[mode][name] = bare_run(paths, workers, decode)
        same[name] = bare_run(paths, workers, same_decoder(workers))
        pipe[name] = pipeline_run(tmp / name, tmp / f"out-{executor}-{name}-{tag}", executor, workers)
    pipe_steady = steady_fps(pipe["small"], pipe["large"])
    return Ratios(
        pipe["large"].fps / max(b["large"].fps for b in bare.values()),
        pipe_steady / max(steady_fps(b["small"], b["large"]) for b in bare.values()),
        pipe["large"].fps / same["large"].fps,
        pipe_steady / steady_fps(same["small"], same["large"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="links to each clip in the small input set")
    parser.add_argument("--scale", type=int, default=4, help="the large set has this many times more")
    parser.add_argument("--rounds", type=int, default=3, help="repeats; the median ratio is the result")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument(
        "--inputs",
        type=Path,
        default=VIDEOS,
        help="videos to run on, as `retake curate` takes them: a folder, a list file or one file (default: "
        "the sample clips)",
    )
    args = parser.parse_args()
    try:
        sources = [path for path, _ in list_inputs(args.inputs)]
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"{exc} (the sample clips live in ../shared/data)") from exc
    if args.copies < 1 or args.scale < 2 or args.rounds < 1:
        raise SystemExit(
            f"need --copies >= 1, --scale >= 2, --rounds >= 1; got {args.copies}, {args.scale}, {args.rounds}"
        )
    with tempfile.TemporaryDirectory(prefix="curate-bench-") as tmp:
        sets = {}
        for name, copies in (("small", args.copies), ("large", args.copies * args.scale)):
            (Path(tmp) / name).mkdir()
            sets[name] = link_inputs(Path(tmp) / name, sources, copies)
        print(
            f"{len(sources)} videos of {args.inputs} linked {args.copies}x (small set) and {args.copies * args.scale}x "
            f"(large set), {args.workers} workers, {args.rounds} rounds"
        )
        bare = {
            mode: bare_run(sets["large"], args.workers, d) for mode, d in bare_decoders(args.workers).items()
        }
        naive = bare_run(sets["large"], args.workers, naive_decode)
        print(
            f"bare PyAV decode: {bare['share'].fps:.0f} frames/s on {threads_per_worker(args.workers)} decoder "
            f"thread(s) per worker, {bare['ffmpeg'].fps:.0f} on FFmpeg's own (textbook to_ndarray loop: "
            f"{naive.fps:.0f})"
        )
        executors = ["local"] + ([] if args.no_ray else ["ray"])
        if "ray" in executors:
            import ray

            ray.init(
                num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False
            )
        results: dict[str, list[Ratios]] = {e: [] for e in executors}
        for r in range(args.rounds):
            for executor in executors:
                ratios = measure_round(sets, Path(tmp), executor, args.workers, f"r{r}")
                results[executor].append(ratios)
                print(
                    f"  round {r + 1} {executor}: whole run {ratios.whole:.2f}, steady state {ratios.steady:.2f}"
                    f" (against the pipeline's decoder settings: {ratios.whole_same:.2f}, "
                    f"{ratios.steady_same:.2f})"
                )
        if "ray" in executors:
            ray.shutdown()
        for executor, rounds in results.items():
            for label, keys in (
                ("bare decode", ("whole", "steady")),
                ("bare decode, same settings", ("whole_same", "steady_same")),
            ):
                whole, steady = ([getattr(x, k) for x in rounds] for k in keys)
                print(
                    f"pipeline ({executor}) / {label}, median of {len(rounds)} rounds: whole run "
                    f"{statistics.median(whole):.2f} ({min(whole):.2f}-{max(whole):.2f}), steady state "
                    f"{statistics.median(steady):.2f} ({min(steady):.2f}-{max(steady):.2f}) (goal >= 0.70)"
                )
        spent, bare_s = stage_seconds(sources, Path(tmp))
        total = sum(spent.values())
        print(f"where the time goes (one process, the {len(sources)} videos once):")
        print(
            f"  bare decode {bare_s:.2f} s | pipeline {total:.2f} s = "
            + ", ".join(f"{name} {sec:.2f}" for name, sec in spent.items() if sec >= 0.005)
        )


if __name__ == "__main__":
    main()
