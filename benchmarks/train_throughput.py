"""Training throughput of flatland-s: from cached latents vs encoding every sample on the fly, and peak memory.

    .venv/bin/python benchmarks/train_throughput.py            # 12 Flatland pairs, 64x64 x 17 frames, batch 4

Steps: render Flatland pairs (64x64, 17 frames) with `retake.flatland.make_pairs`; build the Flatland VAE (the shipped editor's
weights when present, else a random VAE of the same architecture: same cost) and the bundled MiniLM text encoder; train
flatland-s (a) reading videos and encoding them every step, (b) from a `retake cache` of the same pairs. Prints
samples/s of both and their ratio, the cache build rate, the cache read rate against the step time (is reading
the bottleneck?), and peak memory (CPU: peak RSS of this process after each phase; CUDA: max allocated).
The cached run goes first so its peak RSS is not inflated by the VAE and text encoder of the other.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retake.flatland import make_pairs
from retake.train.cache import LatentCache, cache_dataset
from retake.train.config import parse_run_config
from retake.train.logs import read_metrics
from retake.train.loop import train


def flatland_vae(folder: Path) -> tuple[Path, str]:
    """The shipped editor's VAE (the latents flatland-s is sized for), or a random one of its architecture."""
    from retake.demo import EDITOR
    from retake.train.autoencoder import VAEArchitecture, build_vae

    if (EDITOR / "vae" / "config.json").is_file():
        return EDITOR / "vae", "shipped editor's Flatland VAE"
    build_vae(VAEArchitecture()).save_pretrained(folder, safe_serialization=True)  # the first VAE's design
    return folder, "random VAE with the editor VAE's architecture (weights not shipped)"


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def run(root: Path, name: str, data: dict, args: argparse.Namespace, vae: Path) -> dict:
    """Train `args.steps` steps; samples/s over all but the first (warm-up) step."""
    table = {
        "out": str(root / name),
        "device": args.device,
        "vae": str(vae),
        "progress": False,
        "checkpoint_every": 10_000,
        "model": {"preset": "flatland-s"},
        "stages": [{"name": "s", "steps": args.steps, "batch": args.batch, "data": data, "tricks": "insvie"}],
    }
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(parse_run_config(table))
    records = read_metrics(root / name)[1:]
    step_s = float(np.mean([r["step_s"] for r in records]))
    data_s = float(np.mean([r["data_s"] for r in records]))
    return {
        "samples_per_s": args.batch / step_s,
        "step_s": step_s,
        "data_s": data_s,
        "peak_gib": peak_memory_gib(torch.device(args.device)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    # One thread by default: on a small shared machine (2 cores here) extra OpenMP threads spin against other
    # processes and made a step ~5x slower; on an idle many-core box pass --threads 0 for torch's default.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="retake-train-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        pairs = make_pairs(
            root / "pairs", n=args.pairs, size=args.size, frames=args.frames, progress=False
        ).parent
        vae, vae_kind = flatland_vae(root / "vae")
        print(
            f"{args.pairs} Flatland pairs {args.size}x{args.size} x {args.frames} frames, batch {args.batch}, "
            f"{args.steps} steps, {args.device}, {torch.get_num_threads()} threads; {vae_kind}"
        )
        print(f"  rendered in {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f}")

        started = time.perf_counter()
        cache_dataset(
            pairs,
            root / "cache",
            vae=vae,
            frames=args.frames,
            size=(args.size, args.size),
            device=args.device,
            progress=False,
        )
        build_s = time.perf_counter() - started
        cache = LatentCache(root / "cache")
        started = time.perf_counter()
        for _ in range(3):
            for i in range(len(cache)):
                cache.get(i)
        read_rate = 3 * len(cache) / (time.perf_counter() - started)

        cached = run(root, "cached", {"cache": str(root / "cache")}, args, vae)
        fly = run(
            root,
            "on-the-fly",
            {"path": str(pairs), "frames": args.frames, "size": [args.size] * 2},
            args,
            vae,
        )

    print(
        f"cache build: {args.pairs / build_s:.1f} pairs/s (VAE + MiniLM, includes model loading); "
        f"latents {list(cache.latent_shape)}, text {list(cache.text_shape)}"
    )
    print(f"cache read: {read_rate:,.0f} samples/s, i.e. {1e3 / read_rate:.2f} ms per sample")
    print(f"{'':12s} {'samples/s':>10s} {'step s':>8s} {'data s':>8s} {'data share':>10s} {'peak GiB':>9s}")
    for name, r in (("cached", cached), ("on-the-fly", fly)):
        print(
            f"{name:12s} {r['samples_per_s']:10.2f} {r['step_s']:8.3f} {r['data_s']:8.4f} "
            f"{r['data_s'] / r['step_s']:10.1%} {r['peak_gib']:9.2f}"
        )
    print(f"cached / on-the-fly: {cached['samples_per_s'] / fly['samples_per_s']:.1f}x samples/s")
    print(
        f"cache reading takes {cached['data_s'] / cached['step_s']:.1%} of a cached step: not the bottleneck"
        if cached["data_s"] < 0.1 * cached["step_s"]
        else "cache reading takes >= 10% of a step: a bottleneck"
    )


if __name__ == "__main__":
    main()
