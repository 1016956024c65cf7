"""First-frame propagation on the real sample clips: the `flow` propagator against the naive baseline (the
edited first frame held for the whole clip), measured in the same run.

    .venv/bin/python benchmarks/propagation.py [--size 256] [--frames 13] [--flatland 36]

For every edited first frame of ../shared/data/edited_first_frames (man-walking: hat, red clothes, astronaut;
ballet: Van Gogh style) it prints:
- warp error (grey levels) of the edited clip along the source's optical flow: lower = moves like the
  source; the source's own warp error is the reference a perfect edit would score about;
- PSNR (dB) against the source outside the edited region (the frame-0 edit carried by the source's motion,
  see retake.synth.propagate.score), and frame 0's own PSNR there: the image editor's colour drift, a ceiling
  for any propagation; n/a for a global edit (nothing outside);
- seconds the flow propagation took.

With --flatland N it also propagates the oracle's edited first frame of N Flatland sources (all edit kinds
in turn) with `flow`, the naive baseline and the oracle (re-rendering), and prints the share of clips the
Flatland oracle judge passes, per edit kind.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from retake import video
from retake.eval.psnr import psnr
from retake.flatland.judge import judge
from retake.opticalflow import FlowConfig, video_flow
from retake.synth.flatland import apply_residual, edit_change, read_source, write_sources
from retake.synth.image_editors import EditSpec, PrecomputedEditor
from retake.synth.propagate import Request
from retake.synth.propagate.flow import propagate_flow, repeat_first
from retake.synth.propagate.oracle import FlatlandPropagator
from retake.synth.propagate.score import edit_region, score_propagation
from retake.synth.recipes import PropagationConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MIN_OUTSIDE = 0.05  # below this share of pixels, PSNR outside the edit says nothing


def _db(value: float, share: float) -> str:
    return f"{value:6.2f}" if share >= MIN_OUTSIDE and np.isfinite(value) else "   n/a"


def real_clips(size: int, frames: int) -> None:
    editor = PrecomputedEditor(DATA / "edited_first_frames")
    print(f"{size}x{size}, {frames} frames; warp error (lower is better), PSNR outside the edit")
    header = f"{'clip':20s} {'edit':28s} | {'warp: flow':>10s} {'naive':>6s} {'source':>6s} |"
    print(f"{header} {'PSNR: flow':>10s} {'naive':>6s} {'frame0':>6s} {'share':>5s} | {'s':>5s}")
    for folder in sorted((DATA / "edited_first_frames").iterdir()):
        source = video.read(DATA / "videos" / f"{folder.name}.mp4", size=(size, size)).frames[:frames]
        flow = video_flow(source, FlowConfig())
        for png in sorted(folder.glob("*.png")):
            spec = EditSpec("", {"file": png.name})
            edited = editor.candidates(source[0], spec, path=Path(f"{folder.name}.mp4"), seed=0)[0].image
            started = time.perf_counter()
            result = propagate_flow(source, edited, PropagationConfig())
            seconds = time.perf_counter() - started
            region = edit_region(source, edited)
            ours = score_propagation(source, result.video, region, flow)
            naive = score_propagation(source, repeat_first(source, edited), region, flow)
            own = score_propagation(source, source, region, flow)
            drift = psnr(source[:1], edited[None], where=~region[:1]) if (~region[0]).any() else float("nan")
            share = ours.outside_share
            print(
                f"{folder.name:20s} {png.stem:28s} | {ours.warp_error:10.2f} {naive.warp_error:6.2f} "
                f"{own.warp_error:6.2f} | {_db(ours.psnr_outside, share):>10s} {_db(naive.psnr_outside, share)} "
                f"{_db(drift, share)} {share:5.2f} | {seconds:5.2f}"
            )


def flatland(count: int) -> None:
    """Oracle judge pass rates of each propagator on Flatland sources (64 px, 17 frames)."""
    passed: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_sources(tmp, n=count, seed=11, progress=False):
            source = video.read(path).frames
            edit, _ = read_source(path).edits[0]
            first = apply_residual(source[:1], edit_change(source[:1], read_source(path).scene, edit, (0,)))[
                0
            ]
            request = Request(source, first, "", 8.0, 0, path, edit.to_json(), tuple(range(len(source))))
            clips = {
                "flow": propagate_flow(source, first, PropagationConfig()).video,
                "naive": repeat_first(source, first),
                "oracle": FlatlandPropagator().propagate(request),
            }
            for name, clip in clips.items():
                passed[name][edit.kind].append(bool(judge(source, clip, edit)))
    kinds = sorted(passed["flow"])
    print(f"\nFlatland, {count} sources: share passing the oracle judge")
    print(f"{'propagator':10s} {'all':>5s} " + " ".join(f"{k:>10s}" for k in kinds))
    for name, by_kind in passed.items():
        total = [v for values in by_kind.values() for v in values]
        cells = " ".join(f"{np.mean(by_kind[k]):10.0%}" for k in kinds)
        print(f"{name:10s} {np.mean(total):5.0%} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square frame side the clips are read at")
    parser.add_argument("--frames", type=int, default=13, help="frames from the start (the clips have 16)")
    parser.add_argument("--flatland", type=int, default=0, help="also judge N Flatland sources (0: skip)")
    args = parser.parse_args()
    real_clips(args.size, args.frames)
    if args.flatland:
        flatland(args.flatland)


if __name__ == "__main__":
    main()
