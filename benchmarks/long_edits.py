"""Editing clips longer than the model's window: passes pinned to the end of the previous one (the default
overlap) against independent passes (overlap 0), measured on Flatland pairs in the same run.

    .venv/bin/python benchmarks/long_edits.py [--frames 41] [--per-kind 2] [--model BUNDLE] [--steps 20]

Each sample is a seeded Flatland pair of `--frames` frames (longer than the editor's window: 17 for the
shipped flatland-s editor), edited with `retake.sample.windows.edit_windows` once per overlap. Per overlap
it prints, summed over the samples:
- seam jump: mean |frame k - frame k-1| over the frames where one pass's kept frames start, divided by the
  same over every other pair of neighbouring frames. A pass that makes its own version of the edit (another
  colour, a shape moved) jumps at the seam: > 1. The ground-truth target's own ratio is printed beside it
  (objects move, so it is not exactly 1);
- the Flatland oracle judge's verdict on the whole clip (the edit must hold in every frame) and PSNR (dB)
  against the ground-truth target;
- seconds per clip.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from retake.demo import EDITOR
from retake.eval.psnr import psnr
from retake.flatland.edits import EDIT_KINDS
from retake.flatland.judge import judge
from retake.flatland.pairs import PairSample, make_pair
from retake.sample.pipeline import EditPipeline
from retake.sample.windows import default_overlap, edit_windows, plan_windows
from retake.video import Video


@dataclass
class Tally:
    seam: list[float]  # seam jump ratio per sample
    truth_seam: list[float]  # the target's own ratio at the same frames
    passed: int = 0
    psnr: float = 0.0
    seconds: float = 0.0


def seam_ratio(frames: np.ndarray, seams: list[int]) -> float:
    """Mean neighbour change at `seams` (frame k vs k - 1) over the mean everywhere else."""
    steps = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # (F - 1,)
    at = np.zeros(len(steps), bool)
    at[[k - 1 for k in seams]] = True
    return float(steps[at].mean() / max(steps[~at].mean(), 1e-6))


def samples(kinds: list[str], per_kind: int, frames: int, seed: int) -> list[PairSample]:
    return [
        make_pair(kind, size=64, frames=frames, fps=8, seed=seed + 1000 * EDIT_KINDS.index(kind) + i)
        for i in range(per_kind)
        for kind in kinds
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=41, help="frames per Flatland clip")
    parser.add_argument("--per-kind", type=int, default=2, help="samples per edit kind")
    parser.add_argument("--model", default=str(EDITOR), help="editor bundle (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the bundle's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overlaps", default="0,default", help="comma-separated overlaps to compare ('default': the default)"
    )
    parser.add_argument(
        "--kinds", default=",".join(EDIT_KINDS), help="comma-separated edit kinds (default: all)"
    )
    args = parser.parse_args()

    pipeline = EditPipeline.from_pretrained(args.model, vae_tiling=None)
    window = pipeline.defaults.frames
    default = default_overlap(window, pipeline.grid)
    overlaps = [default if o == "default" else int(o) for o in args.overlaps.split(",")]
    plan = {o: plan_windows(args.frames, window, o, pipeline.grid) for o in overlaps}
    seams = {o: [p.start + p.prefix for p in plan[o][1:]] for o in overlaps}
    tallies = {o: Tally([], []) for o in overlaps}
    pairs = samples(args.kinds.split(","), args.per_kind, args.frames, args.seed)
    for i, pair in enumerate(pairs):
        for overlap in overlaps:
            began = time.perf_counter()
            edited = edit_windows(
                pipeline,
                Video(pair.source, fps=pair.fps),
                pair.instruction,
                overlap=overlap,
                seed=args.seed + i,
                steps=args.steps,
                progress=False,
            ).frames
            tally = tallies[overlap]
            tally.seconds += time.perf_counter() - began
            tally.seam.append(seam_ratio(edited, seams[overlap]))
            tally.truth_seam.append(seam_ratio(pair.target, seams[overlap]))
            tally.passed += judge(pair.source, edited, pair.edit).success
            tally.psnr += psnr(pair.target, edited)
        print(f"{i + 1}/{len(pairs)} {pair.edit.kind}: {pair.instruction}", flush=True)

    n = len(pairs)
    print(f"\n{n} Flatland clips of {args.frames} frames, passes of {window} frames; {args.model}")
    print(
        f"{'overlap':>7s} {'passes':>6s} | {'seam jump':>9s} {'(target)':>8s} | {'judge':>7s} {'PSNR':>6s} | {'s/clip':>6s}"
    )
    for overlap, tally in tallies.items():
        print(
            f"{overlap:7d} {len(plan[overlap]):6d} | {np.mean(tally.seam):9.2f} {np.mean(tally.truth_seam):8.2f} | "
            f"{tally.passed:3d}/{n:<3d} {tally.psnr / n:6.2f} | {tally.seconds / n:6.1f}"
        )


if __name__ == "__main__":
    main()
