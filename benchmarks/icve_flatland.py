"""ICVE's claim tested in Flatland: does in-context pretraining on curated unpaired clip pairs help SFT?

    .venv/bin/python benchmarks/icve_flatland.py OUT --vae src/retake/assets/flatland/vae \\
        [--pretrain-steps 700] [--sft-steps 350] [--seeds 0 1 2] [--ship src/retake/assets/flatland/editor]

1. data: Flatland footage -> `retake curate` pretraining pairs (oracle-described instructions); paired Flatland
   edits for SFT (about 10x fewer); held-out pairs and a held-out benchmark (their own seeds); latent caches
   (encoded in parallel worker processes).
2. train, per seed: run "pretrain_sft" (arms C then B) and run "sft_only" (arms A then A'), from the TOML
   templates in configs/flatland/, in parallel worker processes (one torch thread each by default).
3. evaluate every arm: the held-out flow loss in latent space (no decoder), and with `--eval full` (default)
   the benchmark: edits decoded and scored by the oracle judge (instruction following) and PSNR/SSIM against
   the ground truth (quality), each run's HTML report and B-vs-A / B-vs-A' comparison pages. Writes
   OUT/results.json and prints the tables (also as Markdown, for the README). `--ema` evaluates every arm's
   EMA weights instead, into eval/ARM-ema and OUT/results-ema.json.
4. --ship DIR: arm B of the first seed as an edit bundle (the flatland-s editor, fp16; the weights that were
   evaluated), with a metrics.json.

Without a trained VAE, `--random-vae` creates an untrained stand-in at --vae and evaluates by the latent loss
only: nothing decoded through an untrained VAE means anything, so there is no benchmark and nothing to ship.

Every phase resumes: footage, curation, caches, training (checkpoints) and evaluation (samples.jsonl) pick up
where a stopped run left off. See retake.eval.experiment for the arms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from retake.eval.experiment import (
    ARMS,
    RUNS,
    Sizes,
    arm_weights,
    format_gains,
    format_table,
    headline,
    markdown,
    run_table,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "configs" / "flatland"
console = Console()


@dataclass(frozen=True)
class DataSizes:
    footage_videos: int = 40  # raw footage for curation (~680 curated pairs at 6 pairs per scene)
    footage_seconds: float = 30.0
    pairs_per_scene: int = 6  # curated clip pairs drawn per scene (the recipe's 2 would need 3x the footage)
    sft_pairs: int = 64  # paired edits for SFT (~10x fewer than the curated pairs)
    bench_per_kind: int = 8  # held-out benchmark samples per edit kind
    sample_steps: int = 20  # Euler steps of every benchmark edit


# ----------------------------------------------------------------------------------------------------------
# 1. data
# ----------------------------------------------------------------------------------------------------------
def build_data(out: Path, sizes: DataSizes, vae: Path, *, workers: int) -> dict[str, Any]:
    """Footage, curated pairs, SFT pairs, benchmark and caches under OUT; each step is skipped when done."""
    from retake.data.recipes import get_recipe
    from retake.data.runner import curate
    from retake.data.summary import headline as curation_headline
    from retake.eval.benchmark import MANIFEST, BenchmarkConfig, build_flatland_benchmark
    from retake.flatland import make_footage, make_pairs

    data = out / "data"
    footage = data / "footage"
    if len(list(footage.glob("footage_*.mp4"))) < sizes.footage_videos:
        make_footage(footage, videos=sizes.footage_videos, seconds=sizes.footage_seconds, size=64, seed=0)
    # The footage is 64 px: keep curated clips at that size (the recipe's 256 px would only upscale).
    recipe = get_recipe("icve-pretrain").replace(
        writer="flatland", output_short_side=64, shard_size=4, pairs_per_scene=sizes.pairs_per_scene
    )
    curated = curate(footage, data / "curated", recipe, executor="local", workers=workers)
    console.print(curation_headline(curated.stats, curated.seconds))
    pairs = data / "pairs"
    if not (pairs / "manifest.jsonl").is_file():
        make_pairs(pairs, n=sizes.sft_pairs, size=64, frames=17, seed=1)
    bench = out / "bench"
    if not (bench / MANIFEST).is_file():
        # Its own seed, and the benchmark's seeding differs from make_pairs': no benchmark scene is trained on.
        build_flatland_benchmark(bench, BenchmarkConfig(per_kind=sizes.bench_per_kind, seed=1000))
    heldout = data / "heldout"
    if not (heldout / "manifest.jsonl").is_file():
        # Held-out pairs for the latent loss: another seed, the size of the benchmark.
        make_pairs(heldout, n=6 * sizes.bench_per_kind, size=64, frames=17, seed=2)
    caches = {role: out / "cache" / role for role in ("pretrain", "sft", "heldout")}
    sources = {
        "pretrain": (data / "curated", "curated"),
        "sft": (pairs, "flatland"),
        "heldout": (heldout, "flatland"),
    }
    counts = {}
    for role, cache in caches.items():
        if not (cache / "index.json").is_file():
            parallel_cache(*sources[role], cache, vae, workers=workers)
        counts[role] = json.loads((cache / "index.json").read_text()).get("count")
    console.print(f"cached samples: {counts}")
    return {"caches": caches, "bench": bench, "cached": counts}


def parallel_cache(dataset: Path, kind: str, root: Path, vae: Path, *, workers: int) -> None:
    """`retake cache --workers`: encoding is the slow part (~1-2 s a pair on one loaded core)."""
    from retake.train.cache import cache_dataset

    started = time.perf_counter()
    summary = cache_dataset(
        dataset, root, vae=vae, format=kind, frames=17, size=(64, 64), workers=workers, progress=False
    )
    took = time.perf_counter() - started
    skipped = summary.skipped_ids or "none"
    console.print(f"cached {summary.count} samples of {dataset} in {took:.0f} s; skipped {skipped}")


# ----------------------------------------------------------------------------------------------------------
# 2. training and 3. evaluation (in worker processes)
# ----------------------------------------------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train(table: dict[str, Any]) -> str:
    from retake.train.config import parse_run_config
    from retake.train.loop import train

    config = parse_run_config(table)
    started = time.perf_counter()
    train(config, progress=False)
    return f"trained {config.out} in {time.perf_counter() - started:.0f} s"


def _evaluate(bench: str, weights: str, vae: str, out: str, sample_steps: int) -> dict[str, Any]:
    from retake.eval.benchmark import load_benchmark
    from retake.eval.editors import BundleEditor
    from retake.eval.report import write_report
    from retake.eval.runner import run_benchmark
    from retake.sample import EditConfig, assemble_bundle

    bundle = Path(out) / "bundle"
    if not (bundle / "retake_pipeline.json").is_file():
        defaults = EditConfig.flatland().with_overrides(steps=sample_steps)
        assemble_bundle(bundle, transformer=weights, vae=vae, defaults=defaults, link=True, overwrite=True)
    benchmark = load_benchmark(bench)
    result = run_benchmark(benchmark, BundleEditor.from_pretrained(bundle), Path(out) / "run", progress=False)
    write_report(result, benchmark)
    return result.summary


def _heldout(weights: str, cache: str) -> tuple[float, dict[str, float]]:
    """The held-out latent loss and a row of x0 errors of one arm: the denoising curve (by noise level), then
    at t = 1 on the edited positions of local edits (at most half the frame) with the own, another and the
    empty prompt (instruction reliance)."""
    from retake.eval.experiment import denoising_curve, heldout_loss, instruction_reliance
    from retake.model import InContextTransformer
    from retake.train.cache import LatentCache

    model, latents = InContextTransformer.from_pretrained(weights), LatentCache(cache)
    reliance = instruction_reliance(model, latents, max_share=0.5)
    prompts = {"edit own": reliance.own, "edit other": reliance.other, "edit empty": reliance.empty}
    return heldout_loss(model, latents), {**denoising_curve(model, latents).row(), **prompts}


def make_random_vae(path: Path) -> Path:
    """An untrained HunyuanVideo VAE of the Flatland shape (16 latent channels, 4x space, 4x time), seeded.

    A stand-in for when no trained VAE exists: its encoder is a fixed random function of the pixels, so the
    arms can still be compared by held-out latent loss; nothing decoded from it means anything."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    if (path / "config.json").is_file():
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(
            latent_channels=16,
            block_out_channels=(8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
            spatial_compression_ratio=4,
            mid_block_add_attention=False,
            scaling_factor=0.5,
            down_block_types=("HunyuanVideoDownBlock3D",) * 3,
            up_block_types=("HunyuanVideoUpBlock3D",) * 3,
        )
    vae.save_pretrained(path, safe_serialization=True)
    return path


# A flatland-s token covers 8x8 pixels (a 2x2 patch of a 4x VAE's latents) unless its patch would hold more
# latent values than the model is wide: then the patch shrinks and the sequence grows. With 32-channel latents at
# 2x, 4x4 patches (512 values into a 128-wide token) trained to a 0.40 loss in 1000 steps where 2x2 patches reach
# 0.29 at step 300: the token embedding was the bottleneck, not the data (docs/training.md, section 5).
TOKEN_PIXELS = 8


def token_patch(channels: int, spatial: int, width: int) -> int:
    """The largest power-of-two patch with a token of at most TOKEN_PIXELS and at most `width` latent values."""
    patch = max(1, TOKEN_PIXELS // spatial)
    while patch > 1 and channels * patch * patch > width:
        patch //= 2
    return patch


def model_for_latents(cache: Path, vae: Path, width: int) -> dict[str, int]:
    """The model overrides that fit the VAE's latents, whatever the preset says: input channels from the cache,
    and the patch size from `token_patch`."""
    from retake.train.cache import LatentCache

    spatial = json.loads((vae / "config.json").read_text())["spatial_compression_ratio"]
    channels = LatentCache(cache).latent_shape[0]
    return {"in_channels": channels, "patch_size": token_patch(channels, spatial, width)}


def preset_width(name: str) -> int:
    from retake.model.presets import get_preset

    return get_preset(name).inner_dim


def train_all(
    out: Path,
    sizes: Sizes,
    seeds: list[int],
    caches: dict[str, Path],
    vae: Path,
    pool: Any,
    *,
    model: dict[str, str],
) -> None:
    """Train every run of every seed; `model` holds [model] fields set on every template (conditioning, ...)."""
    templates = {run: tomllib.loads((TEMPLATES / f"{run}.toml").read_text()) for run in RUNS}
    for table in templates.values():
        fields = table.setdefault("model", {})
        fields.update(model)
        fields.update(model_for_latents(caches["pretrain"], vae, width=preset_width(fields["preset"])))
    jobs = [
        pool.submit(
            _train, run_table(templates[run], out=out / f"seed{s}" / run, seed=s, sizes=sizes, caches=caches)
        )
        for s in seeds
        for run in RUNS
    ]
    for job in jobs:
        console.print(job.result())


def evaluate_all(
    out: Path,
    seeds: list[int],
    data: dict[str, Any],
    vae: Path,
    sample_steps: int,
    pool: Any,
    *,
    decode: bool,
    ema: bool,
) -> tuple[dict[str, dict[int, dict[str, float | None]]], dict[str, dict[int, dict[str, float]]]]:
    """{arm: {seed: headline}} of every arm and seed: the held-out latent loss always, the benchmark (edits
    decoded and judged) when `decode`; and {arm: {seed: denoising curve row}}. `ema`: of the EMA weights."""
    losses, jobs = {}, {}
    for s in seeds:
        runs = {run: out / f"seed{s}" / run for run in RUNS}
        for arm in ARMS:
            weights = str(arm_weights(runs, arm, ema=ema))
            losses[arm, s] = pool.submit(_heldout, weights, str(data["caches"]["heldout"]))
            if decode:
                folder = eval_dir(out, s, arm, ema=ema).parent
                args = (str(data["bench"]), weights, str(vae), str(folder), sample_steps)
                jobs[arm, s] = pool.submit(_evaluate, *args)
    per_seed: dict[str, dict[int, dict[str, float | None]]] = {arm: {} for arm in ARMS}
    curves: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in ARMS}
    for (arm, s), job in losses.items():
        summary = jobs[arm, s].result() if decode else None
        loss, curves[arm][s] = job.result()
        per_seed[arm][s] = headline(summary, loss)
        console.print(f"evaluated arm {arm} seed {s}: {per_seed[arm][s]}")
    return per_seed, curves


# ----------------------------------------------------------------------------------------------------------
# 4. report and ship
# ----------------------------------------------------------------------------------------------------------
def eval_dir(out: Path, seed: int, arm: str, *, ema: bool) -> Path:
    """Where an arm's benchmark run goes; the EMA weights' beside the raw ones', so neither resumes the other."""
    return out / f"seed{seed}" / "eval" / (arm.replace("'", "p") + ("-ema" if ema else "")) / "run"


def write_results(
    out: Path,
    per_seed: dict[str, dict[int, dict[str, float | None]]],
    record: dict[str, Any],
    *,
    decode: bool,
    ema: bool,
) -> dict:
    from retake.eval.report import write_comparison

    summary = summarise(per_seed)
    seed = min(per_seed["B"])
    for base in ("A", "A'") if decode else ():
        a, b = (eval_dir(out, seed, arm, ema=ema) / "report.json" for arm in (base, "B"))
        suffix = "-ema" if ema else ""
        write_comparison(a, b, out / f"compare_B_vs_{base.replace(chr(39), 'p')}{suffix}.html")
    results = {**record, "per_seed": per_seed, "summary": summary}
    results_path(out, ema=ema).write_text(json.dumps(results, indent=1))
    return results


def results_path(out: Path, *, ema: bool) -> Path:
    return out / ("results-ema.json" if ema else "results.json")


def denoising_rows(curves: dict[str, dict[int, dict[str, float]]]) -> list[list[str]]:
    """A table of each arm's denoising curve (first seed): latent MSE of the one-step clean estimate by t."""
    first = {arm: by_seed[min(by_seed)] for arm, by_seed in curves.items() if by_seed}
    columns = list(next(iter(first.values())))
    return [["arm (x0 error)", *columns]] + [
        [arm, *(f"{row[c]:.3f}" for c in columns)] for arm, row in first.items()
    ]


def print_tables(results: dict[str, Any], sizes: Sizes) -> None:
    tables = [format_table(results["summary"], sizes), format_gains(results["summary"])]
    for rows in [*tables, denoising_rows(results["denoising"])]:
        table = Table(*rows[0])
        for row in rows[1:]:
            table.add_row(*row)
        console.print(table)
        print(markdown(rows))


def per_kind_success(report: Path) -> dict[str, Any]:
    """{kind: {"success": rate, "n": samples, "psnr": mean}} of one benchmark report."""
    groups = json.loads(report.read_text())["summary"]["per_kind"]
    return {
        kind: {
            "success": group["success"]["rate"],
            "n": group["n"],
            "psnr": group["metrics"].get("psnr", {}).get("mean"),
        }
        for kind, group in groups.items()
    }


def ship(
    out: Path, target: Path, vae: Path, results: dict[str, Any], *, ema: bool, sample_steps: int
) -> Path:
    """Arm B of the first seed as a self-contained bundle at `target`, with metrics.json beside its parts. `ema`
    must match the evaluation's, so that the metrics are those of the weights shipped."""
    import torch

    from retake.model import InContextTransformer
    from retake.sample import EditConfig, assemble_bundle

    seed = min(results["per_seed"]["B"])
    runs = {run: out / f"seed{seed}" / run for run in RUNS}
    weights = arm_weights(runs, "B", ema=ema)
    defaults = EditConfig.flatland().with_overrides(steps=sample_steps)
    with tempfile.TemporaryDirectory() as scratch:
        # fp16 on disk halves the bundle for git; EditPipeline loads it back as fp32 on the CPU
        half = InContextTransformer.from_pretrained(weights, torch_dtype=torch.float16)
        half.save_pretrained(Path(scratch) / "transformer", safe_serialization=True)
        assemble_bundle(
            target, transformer=Path(scratch) / "transformer", vae=vae, defaults=defaults, overwrite=True
        )
    metrics = {
        "arm": "B (pretrain on curated Flatland footage pairs, then SFT on paired Flatland edits)",
        "seed": seed,
        "weights": ("EMA" if ema else "raw") + ", stored as fp16",
        "benchmark_headline": results["per_seed"]["B"][seed],
        "benchmark_per_kind": per_kind_success(eval_dir(out, seed, "B", ema=ema) / "report.json"),
        "denoising_curve": results["denoising"]["B"][seed],
        "training": json.loads((runs["pretrain_sft"] / "run.json").read_text()),
        **{k: results[k] for k in ("command", "sizes", "data", "cached")},
    }
    (target / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--vae", type=Path, required=True, help="diffusers AutoencoderKLHunyuanVideo folder")
    parser.add_argument("--pretrain-steps", type=int, default=700)
    parser.add_argument("--sft-steps", type=int, default=350)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--conditioning",
        choices=("sequence", "channel"),
        default="sequence",
        help="how every arm sees the source: ICVE's in-context sequence (the claim under test) or InsViE's "
        "channel concatenation",
    )
    parser.add_argument(
        "--prior",
        choices=("noise", "source"),
        default="noise",
        help="the flow's start point (TransformerConfig)",
    )
    parser.add_argument(
        "--prediction",
        choices=("velocity", "sample", "residual"),
        default="velocity",
        help="what the last layer predicts (TransformerConfig)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--footage-videos", type=int, default=DataSizes.footage_videos)
    parser.add_argument("--footage-seconds", type=float, default=DataSizes.footage_seconds)
    parser.add_argument("--pairs-per-scene", type=int, default=DataSizes.pairs_per_scene)
    parser.add_argument("--sft-pairs", type=int, default=DataSizes.sft_pairs)
    parser.add_argument("--bench-per-kind", type=int, default=DataSizes.bench_per_kind)
    parser.add_argument("--sample-steps", type=int, default=DataSizes.sample_steps)
    parser.add_argument("--workers", type=int, default=2, help="parallel training/evaluation processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--phase", choices=("all", "data", "train", "eval"), default="all")
    parser.add_argument(
        "--eval",
        choices=("full", "latent"),
        default="full",
        help="full: the benchmark (decoded edits, oracle judge, PSNR/SSIM) and the held-out latent loss; "
        "latent: the loss only (no decoder needed)",
    )
    parser.add_argument(
        "--random-vae",
        action="store_true",
        help="create an untrained stand-in VAE at --vae if none is there (implies --eval latent)",
    )
    parser.add_argument("--ship", type=Path, default=None, help="write arm B (first seed) as a bundle here")
    parser.add_argument(
        "--ema",
        action="store_true",
        help="evaluate (and ship) every arm's EMA weights instead of the raw ones; into eval/ARM-ema",
    )
    args = parser.parse_args(argv)

    sizes = Sizes(args.pretrain_steps, args.sft_steps, args.batch)
    data_sizes = DataSizes(
        args.footage_videos,
        args.footage_seconds,
        args.pairs_per_scene,
        args.sft_pairs,
        args.bench_per_kind,
        args.sample_steps,
    )
    started = time.perf_counter()
    if args.random_vae:
        make_random_vae(args.vae)
        args.eval = "latent"
    context = get_context("spawn")  # fresh interpreters: no torch thread pools or locks inherited
    with ProcessPoolExecutor(
        args.workers, context, initializer=_init_worker, initargs=(args.threads,)
    ) as pool:
        data = build_data(args.out, data_sizes, args.vae, workers=args.workers)
        if args.phase == "data":
            return
        if args.phase in ("all", "train"):
            model = {"conditioning": args.conditioning, "prior": args.prior, "prediction": args.prediction}
            train_all(args.out, sizes, args.seeds, data["caches"], args.vae, pool, model=model)
        if args.phase == "train":
            return
        decode = args.eval == "full"
        per_seed, curves = evaluate_all(
            args.out, args.seeds, data, args.vae, args.sample_steps, pool, decode=decode, ema=args.ema
        )
    record = {
        "command": " ".join(["benchmarks/icve_flatland.py", *(argv if argv is not None else sys.argv[1:])]),
        "sizes": asdict(sizes),
        "data": asdict(data_sizes),
        "cached": data["cached"],
        "seeds": args.seeds,
        "conditioning": args.conditioning,
        "prior": args.prior,
        "prediction": args.prediction,
        "vae": str(args.vae) + (" (untrained stand-in)" if args.random_vae else ""),
        "eval": args.eval,
        "weights": "EMA" if args.ema else "raw",
        "seconds": round(time.perf_counter() - started),
        "denoising": curves,
    }
    results = write_results(args.out, per_seed, record, decode=decode, ema=args.ema)
    print_tables(results, sizes)
    if args.ship is not None and decode:
        path = ship(args.out, args.ship, args.vae, results, ema=args.ema, sample_steps=args.sample_steps)
        console.print(f"shipped arm B as {path}")
    console.print(f"results: {results_path(args.out, ema=args.ema)}")


if __name__ == "__main__":
    main()
