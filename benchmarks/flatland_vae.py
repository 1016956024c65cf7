"""The shipped Flatland VAE: held-out reconstruction PSNR per background pattern, and encode/decode time.

    .venv/bin/python benchmarks/flatland_vae.py [--vae DIR] [--clips 4] [--frames 17] [--size 64] [--repeats 5]

Held-out clips come from `retake.train.autoencoder.heldout_clips` (a random stream training never draws; clip
j has camera j mod 3, style j mod 4, every other clip object-edited). Goal: mean >= 30 dB for every pattern.
Times are medians over `--repeats` runs with the torch threads of this process, for one clip and for a batch
of 8, and also the PSNR with VideoVAE's default tiling (diffusers splits clips over 16 frames into time tiles).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from retake.eval.psnr import psnr
from retake.flatland.palette import PATTERNS
from retake.model.vae import TilingConfig, VideoVAE
from retake.train.autoencoder import FLATLAND_VAE_DIR, TARGET_PSNR_DB, heldout_clips


def psnr_table(vae: VideoVAE, clips: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """PSNR (dB) of every clip's round trip through the posterior mean, per pattern."""
    out = {}
    for pattern, batch in clips.items():
        recon = vae.decode_to_uint8(vae.encode(torch.from_numpy(batch))).numpy()
        out[pattern] = [psnr(a, b) for a, b in zip(batch, recon, strict=True)]
    return out


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, default=FLATLAND_VAE_DIR)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    vae = VideoVAE.from_pretrained(args.vae, tiling=None)
    params = sum(p.numel() for p in vae.vae.parameters())
    weights = sum(f.stat().st_size for f in args.vae.glob("*.safetensors"))
    print(f"VAE {args.vae}: {params / 1e6:.2f} M parameters, {weights / 2**20:.1f} MiB of weights")
    print(
        f"latents of a {args.frames}x{args.size}x{args.size} clip: {vae.latent_shape(args.frames, args.size, args.size)}"
    )

    clips = {p: np.stack(heldout_clips(p, args.clips, size=args.size, frames=args.frames)) for p in PATTERNS}
    table = psnr_table(vae, clips)
    print(f"\nheld-out PSNR, {args.clips} clips per pattern (target: mean >= {TARGET_PSNR_DB} dB)")
    for pattern, values in table.items():
        below = sum(v < TARGET_PSNR_DB for v in values)
        print(
            f"  {pattern:>9}: mean {np.mean(values):6.2f}  min {min(values):6.2f} dB  ({below} clips below)"
        )

    vae.set_tiling(TilingConfig())
    tiled = psnr_table(vae, clips)
    vae.set_tiling(None)
    print("  with default tiling: " + "  ".join(f"{p} {np.mean(v):.2f}" for p, v in tiled.items()))

    print(f"\nencode/decode, {torch.get_num_threads()} torch threads, median of {args.repeats}")
    for batch in (1, 8):
        video = torch.from_numpy(np.concatenate(list(clips.values()))[:batch])
        latents = vae.encode(video)
        enc = median_seconds(lambda v=video: vae.encode(v), args.repeats)
        dec = median_seconds(lambda z=latents: vae.decode(z), args.repeats)
        print(
            f"  batch {batch}: encode {enc * 1e3:7.1f} ms  decode {dec * 1e3:7.1f} ms  ({len(video)} clips)"
        )


if __name__ == "__main__":
    with torch.inference_mode():
        main()
