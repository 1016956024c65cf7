"""Run an editor over a benchmark: edit every sample, score it, aggregate per edit kind and overall.

Per sample: the Flatland oracle judge's verdict (success + reason) on the pixels, and `evaluate_edit`'s
metrics with the ground-truth target as reference (PSNR/SSIM), the edit mask (preservation outside it) and
flow (flicker, warp error, motion fidelity); with a `VLMJudge`, its rubric scores too.

The run directory holds
    run.json        what is being run (benchmark fingerprint, editor, judge, config): a rerun must match it
    samples.jsonl   one scored sample per line, appended as it is done: a rerun skips what is there
    edits/<id>.mp4  the edited videos (for the report's GIFs)
so a stopped run continues where it stopped and ends with the same numbers as an uninterrupted one.

`run_seeds` scores a sampling editor under several editor seeds: one such run per seed in OUT/seed-<s>/, and
OUT/seeds.json with each seed's success count and the summary of all their samples pooled.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from rich.progress import track

from retake import files
from retake.checks import describe_changes
from retake.errors import RetakeError
from retake.eval.benchmark import Benchmark, BenchmarkSample
from retake.eval.editors import Editor
from retake.eval.metrics import EvalConfig, evaluate_edit
from retake.eval.vlm_judge import VLMJudge
from retake.flatland.judge import judge as oracle_judge
from retake.video import Video, VideoError, resize_cover_crop, write

FORMAT = "retake.eval.run/1"
RUN_FILE = "run.json"
RESULTS_FILE = "samples.jsonl"
EDITS_DIR = "edits"
SEEDS_FILE = "seeds.json"


class RunMismatchError(RetakeError):
    """The run directory holds a run of another benchmark, editor, judge or configuration."""


class NoUsableEditError(RetakeError):
    """Every sample a run scored errored (no usable edit): its numbers say nothing about the editor."""


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0  # the editor's seed for sample i (benchmark order) is seed + i
    limit: int | None = None  # score `limit` samples, every kind in turn (a smoke run); a later run continues
    edit_crf: int = 0  # x264 crf of the saved edits (0: as close to what the editor returned as 4:2:0 allows)
    confidence: float = 0.95  # of the success-rate (Wilson) intervals
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be None or >= 1, got {self.limit}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue this run (`limit` may change)."""
        return {k: v for k, v in asdict(self).items() if k != "limit"}


@dataclass
class RunResult:
    out_dir: Path
    header: dict[str, Any]  # run.json: benchmark, editor, judge, config
    rows: list[dict[str, Any]]  # scored samples in benchmark order
    summary: dict[str, Any]  # `aggregate(rows)`
    complete: bool  # every benchmark sample is scored

    def edit_path(self, sample_id: str) -> Path:
        return self.out_dir / EDITS_DIR / f"{sample_id}.mp4"

    def check_errors(self) -> str | None:
        """`check_errors` of this run's samples."""
        return check_errors(self.rows, str(self.out_dir / RESULTS_FILE))


def run_benchmark(
    benchmark: Benchmark,
    editor: Editor,
    out_dir: str | os.PathLike[str],
    config: RunConfig = RunConfig(),
    *,
    judge: VLMJudge | None = None,
    progress: bool = True,
) -> RunResult:
    """Edit and score the benchmark's samples not yet in `out_dir` (see the module docstring)."""
    out_dir = Path(out_dir)
    header = {
        "format": FORMAT,
        "benchmark": benchmark.describe(),
        "editor": editor.describe(),
        "judge": None if judge is None else judge.describe(),
        "config": config.identity(),
    }
    _start(out_dir, header)
    check = getattr(editor, "check", None)  # optional: an editor that can tell up front what it cannot edit
    picked = benchmark.pick(config.limit)
    if check is not None:
        check([benchmark.samples[i].id for i in picked])
    done = {row["id"]: row for row in read_rows(out_dir / RESULTS_FILE)}
    chosen = [(i, benchmark.samples[i]) for i in picked]
    todo = [(i, s) for i, s in chosen if s.id not in done]
    label = f"editing ({editor.describe().get('name', 'editor')})"
    with (out_dir / RESULTS_FILE).open("a") as results:
        for index, sample in track(todo, description=label, disable=not progress):
            row = _run_sample(sample, editor, config.seed + index, out_dir, config, judge)
            results.write(json.dumps(row, allow_nan=False) + "\n")
            results.flush()
            done[sample.id] = row
    rows = [done[s.id] for s in benchmark.samples if s.id in done]
    complete = len(rows) == len(benchmark.samples)
    summary = aggregate(rows, benchmark.config.kinds, config.confidence)
    return RunResult(out_dir, header, rows, summary, complete)


@dataclass
class SeedsResult:
    out_dir: Path
    runs: dict[int, RunResult]  # editor seed -> its run, in OUT/seed-<seed>/
    summary: dict[str, Any]  # `aggregate` of every run's samples together: n = samples x seeds

    def check_errors(self) -> str | None:
        """`check_errors` of every seed's samples together."""
        rows = [row for run in self.runs.values() for row in run.rows]
        return check_errors(rows, f"{self.out_dir}/seed-<s>/{RESULTS_FILE}")


def seed_dir(out_dir: str | os.PathLike[str], seed: int) -> Path:
    return Path(out_dir) / f"seed-{seed}"


def run_seeds(
    benchmark: Benchmark,
    editor: Editor,
    out_dir: str | os.PathLike[str],
    seeds: Sequence[int],
    config: RunConfig = RunConfig(),
    *,
    judge: VLMJudge | None = None,
    progress: bool = True,
) -> SeedsResult:
    """`run_benchmark` once per editor seed (`config.seed` is replaced by each), then OUT/seeds.json.

    A sampling editor's successes move between seeds; pooling the seeds puts more samples behind each rate.
    The pooled samples share their sources, so its Wilson interval is narrower than independent samples
    would warrant: compare two editors on the same seeds rather than reading the interval as exact.
    Each seed's folder is an ordinary run, so a stopped call resumes and one seed can be reported alone.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct integers, got {list(seeds)}")
    out_dir = Path(out_dir)
    files.remove_temporaries_of(out_dir / SEEDS_FILE)  # of a run killed while writing it
    if (out_dir / RUN_FILE).is_file():
        raise RunMismatchError(
            f"{out_dir} holds a single-seed run; use a new output folder for several seeds"
        )
    runs = {
        seed: run_benchmark(
            benchmark,
            editor,
            seed_dir(out_dir, seed),
            replace(config, seed=seed),
            judge=judge,
            progress=progress,
        )
        for seed in seeds
    }
    rows = [row for run in runs.values() for row in run.rows]
    summary = aggregate(rows, benchmark.config.kinds, config.confidence)
    record = {
        "format": FORMAT,
        "seeds": list(seeds),
        "per_seed": {
            str(seed): {
                "n": run.summary["overall"]["n"],
                "success": run.summary["overall"]["success"]["count"],
            }
            for seed, run in runs.items()
        },
        "summary": summary,
    }
    files.write_json(out_dir / SEEDS_FILE, record, allow_nan=False)
    return SeedsResult(out_dir, runs, summary)


def _start(out_dir: Path, header: dict[str, Any]) -> None:
    """Write run.json, or check that the one there describes the same run."""
    path = out_dir / RUN_FILE
    files.remove_temporaries_of(path)  # killed while writing it: the folder holds nothing else of the run
    if path.is_file():
        _remove_leftovers(out_dir)
        old = json.loads(path.read_text())
        changes = describe_changes({k: old.get(k) for k in header}, files.as_read_back(header))
        if changes:
            raise RunMismatchError(
                f"{out_dir} holds a run with other settings ({'; '.join(changes)}); use a new output folder"
            )
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty and holds no {RUN_FILE}; use a new output folder")
    files.write_json(path, header)


def _remove_leftovers(out_dir: Path) -> None:
    """Clear what writes killed outright left in a run's folder (and in the folders of the report that
    retake.eval.report writes beside the run): the rerun writes those files again."""
    for folder in (out_dir, out_dir / EDITS_DIR, out_dir / "gifs", out_dir / "plots"):
        files.remove_leftovers(folder)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The scored samples of a results file (`files.read_json_lines`: a line cut short by a crash is dropped,
    and the file rewritten without it, so that appending continues on a clean line)."""
    return files.read_json_lines(path, repair=True)


def check_errors(rows: Sequence[dict[str, Any]], where: str) -> str | None:
    """None when no scored sample errored; a warning with the first error when some did. Raises
    NoUsableEditError when all did: a 0% success rate then measures the setup (e.g. a frame count the
    editor cannot produce), not the editor, and must not pass for a result. `where` lists every error."""
    failed = [row for row in rows if "error" in row]
    if not failed:
        return None
    first = f"the first, {failed[0]['id']}: {failed[0]['error']}; every error is in {where}"
    if len(failed) == len(rows):
        raise NoUsableEditError(f"every sample errored ({len(rows)} of {len(rows)}); {first}")
    return f"{len(failed)} of {len(rows)} samples errored and count as failures; {first}"


class ShortEditError(ValueError):
    """The edited video has fewer frames than the source."""


def _run_sample(
    sample: BenchmarkSample,
    editor: Editor,
    seed: int,
    out_dir: Path,
    config: RunConfig,
    judge: VLMJudge | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sample.id,
        "kind": sample.kind,
        "instruction": sample.instruction,
        "seed": seed,
    }
    source = sample.source()
    started = time.perf_counter()
    try:
        edited = editor.edit(source, sample.instruction, seed=seed, sample_id=sample.id)
        row["edit_seconds"] = time.perf_counter() - started
        edited, row["notes"] = conform(edited, source)
    except (VideoError, ShortEditError) as exc:  # an unreadable or short edit fails this sample, not the run
        return row | {"success": False, "reason": f"no usable edit: {exc}", "error": str(exc), "metrics": {}}
    # Scored below as returned; the file goes through 4:2:0 chroma, so rescoring it (--videos) differs a little.
    write(edited, out_dir / EDITS_DIR / f"{sample.id}.mp4", crf=config.edit_crf)
    scored = score_sample(sample, source, edited, config.eval, judge)
    row["notes"] += unscored_motion(scored["metrics"], source, config.eval.min_motion)
    return row | scored


def conform(edited: Video, source: Video) -> tuple[Video, list[str]]:
    """The edit made comparable with the source, frame for frame: another frame rate resampled by time, extra
    frames cut, a different picture resized (cover, then centre crop). Returns it with notes on what was done;
    raises ShortEditError when frames are missing.

    An edit at another frame rate is resampled when it lasts as long as the source. One that does not, but
    has the frames, is paired one for one: editors that write every video at one fixed rate keep the frames
    and change only the label."""
    notes = []
    frames = edited.frames
    if not math.isclose(edited.fps, source.fps, rel_tol=1e-3):
        resampled = _resample_by_time(edited, source)
        if resampled is not None and len(frames) != source.num_frames:
            frames = resampled
            notes.append(f"resampled {len(edited.frames)} frames at {edited.fps:g} fps to {source.fps:g} fps")
        elif len(frames) >= source.num_frames:
            notes.append(
                f"paired one for one though the edit says {edited.fps:g} fps, the source {source.fps:g}"
            )
    if len(frames) < source.num_frames:
        raise ShortEditError(f"the edit has {len(frames)} frames, the source {source.num_frames}")
    if len(frames) > source.num_frames:
        notes.append(f"kept the first {source.num_frames} of {len(frames)} frames")
        frames = frames[: source.num_frames]
    if frames.shape[1:3] != source.frames.shape[1:3]:
        notes.append(f"resized {frames.shape[2]}x{frames.shape[1]} to {source.width}x{source.height}")
        frames = resize_cover_crop(frames, (source.height, source.width))
    return Video(frames, source.fps), notes


def _resample_by_time(edited: Video, source: Video) -> np.ndarray | None:
    """The edit's frame on screen at each source frame's start time; None if the edit ends sooner."""
    # A small tolerance so that 1/3-second grids do not round down a whole frame.
    index = np.floor(np.arange(source.num_frames) * edited.fps / source.fps + 1e-6).astype(int)
    return edited.frames[index] if index[-1] < len(edited.frames) else None


def score_sample(
    sample: BenchmarkSample, source: Video, edited: Video, config: EvalConfig, judge: VLMJudge | None
) -> dict[str, Any]:
    """Verdict and metrics of one edit (same shape as the source). A VLMError of the judge propagates: the
    run stops and a rerun asks again, rather than keeping a sample without its scores."""
    verdict = oracle_judge(source.frames, edited.frames, sample.edit)
    metrics = evaluate_edit(source, edited, sample.target(), sample.masks(), config=config)
    scored: dict[str, Any] = {"success": verdict.success, "reason": verdict.reason}
    if judge is not None:
        judgement = judge.judge(source, edited, sample.instruction)
        metrics |= judgement.as_metrics()
        scored["judge"] = judgement.provenance()
    return scored | {"metrics": {k: _finite_or_none(v) for k, v in metrics.items()}}


def unscored_motion(metrics: Mapping[str, float | None], source: Video, min_motion: float) -> list[str]:
    """A note when motion fidelity could not be scored (NaN, or None once stored), so that an empty motion
    column reads as what it is."""
    value = metrics.get("motion_epe", 0.0)
    if value is not None and math.isfinite(value):
        return []
    return [
        f"motion not scored: nothing in the source moves {min_motion:g} px per frame at "
        f"{source.height}x{source.width} (HxW; a still clip, or a size too small to see its motion)"
    ]


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a metric that does not apply (e.g. preservation when the mask covers everything) is
    stored as null."""
    return float(value) if math.isfinite(value) else None


# ---- aggregation --------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: sensible at 0% and 100% and for small n, where the
    normal approximation collapses to a point."""
    if n == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def aggregate(
    rows: Sequence[dict[str, Any]], kinds: Iterable[str], confidence: float = 0.95
) -> dict[str, Any]:
    """{"overall": group, "per_kind": {kind: group}}; a group holds n, errors, the success rate with its
    Wilson interval, and per metric the mean, standard deviation and count of the samples where it applies."""
    return {
        "overall": _group(rows, confidence),
        "per_kind": {kind: _group([r for r in rows if r["kind"] == kind], confidence) for kind in kinds},
    }


def _group(rows: Sequence[dict[str, Any]], confidence: float) -> dict[str, Any]:
    successes = sum(bool(r["success"]) for r in rows)
    low, high = wilson_interval(successes, len(rows), confidence)
    names = sorted({name for r in rows for name in r["metrics"]})
    metrics = {name: _stats([r["metrics"].get(name) for r in rows]) for name in names}
    metrics["edit_seconds"] = _stats([r.get("edit_seconds") for r in rows])
    return {
        "n": len(rows),
        "errors": sum("error" in r for r in rows),
        "success": {
            "count": successes,
            "rate": _finite_or_none(successes / len(rows)) if rows else None,
            "low": _finite_or_none(low),
            "high": _finite_or_none(high),
            "confidence": confidence,
        },
        "metrics": metrics,
    }


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    present = np.array([v for v in values if v is not None], dtype=float)
    if present.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(present.mean()), "std": float(present.std()), "n": int(present.size)}
