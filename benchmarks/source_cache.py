"""Per-step time of an in-context edit with and without the one-way source K/V cache, on CPU.

A step is what the sampler does per denoising step: the conditional and the unconditional branch, one sample each
(text-only CFG, the same source in both). Three ways to run it on the same `bench-m` weights:

- full:     ICVE's full attention, source tokens recomputed in both branches (no cache possible);
- one-way:  one-way attention, source tokens recomputed in both branches;
- cached:   one-way attention with the source K/V built once per video and reused.

Modes are interleaved and each reports its best of `--repeats` steps, so background load hurts all alike.
Run: .venv/bin/python benchmarks/source_cache.py   (about a minute on one idle core)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from retake.model import build_transformer
from retake.model.transformer import InContextTransformer


def make_branches(frames: int, size: int, text_tokens: int, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """Source latents (1, 16, F, S, S) and the keyword arguments of the two guidance branches."""
    g = torch.Generator().manual_seed(seed)
    source = torch.randn(1, 16, frames, size, size, generator=g)
    latents = torch.randn(1, 16, frames, size, size, generator=g)
    branches = []
    for valid in (text_tokens, text_tokens // 4):  # instruction, shorter negative prompt (padded)
        mask = (torch.arange(text_tokens) < valid).long()[None]
        branches.append(
            {
                "hidden_states": latents,
                "timestep": torch.tensor([700.0]),
                "encoder_hidden_states": torch.randn(1, text_tokens, 384, generator=g),
                "encoder_attention_mask": mask,
                "pooled_projections": torch.randn(1, 384, generator=g),
                "guidance": torch.tensor([1000.0]),
            }
        )
    return source, branches


def step_fn(model: InContextTransformer, branches: list[dict], **source: object) -> Callable[[], None]:
    def step() -> None:
        for kwargs in branches:
            model(**kwargs, **source)

    return step


def best_times(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best (CPU time, wall time) per step of each mode, the modes interleaved, one warm-up round first.

    With one thread the process CPU time is the compute time even when other jobs share the cores, which
    makes it the steadier figure on a busy machine; on an idle one both agree.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for round_index in range(repeats + 1):
        for name, step in steps.items():
            cpu, wall = time.process_time(), time.perf_counter()
            step()
            if round_index:  # round 0 warms up allocators and kernels
                times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    return {name: (min(c for c, _ in ts), min(w for _, w in ts)) for name, ts in times.items()}


def flop_ratio(dim: int, source: int, target: int, text: int, mlp_ratio: float) -> float:
    """What a FLOP count predicts for uncached / cached one-way steps (projections + MLP + attention)."""
    per_token = 2 * dim * dim * (4 + 2 * mlp_ratio)  # q, k, v, out and the MLP, multiply-adds x 2
    per_pair = 4 * dim  # q.k and p.v
    rest = target + text
    uncached = (source + rest) * per_token + (source * source + rest * (source + rest)) * per_pair
    cached = rest * per_token + rest * (source + rest) * per_pair
    return uncached / cached


def main(frames: int, size: int, text_tokens: int, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)  # on a shared machine, one thread per process times far more steadily
    model = build_transformer("bench-m", seed=0).eval()  # one-way attention
    source, branches = make_branches(frames, size, text_tokens)
    spec = model.spec
    video_tokens = (frames // spec.patch_size_t) * (size // spec.patch_size) ** 2
    print(
        f"bench-m: hidden {spec.inner_dim}, {spec.num_layers}+{spec.num_single_layers} blocks; "
        f"{video_tokens} source + {video_tokens} target + {text_tokens} text tokens; "
        f"{torch.get_num_threads()} CPU threads"
    )
    guidance = torch.tensor([1000.0])
    with torch.no_grad():
        cache = model.build_source_cache(source, guidance=guidance)
        full = build_transformer("bench-m", seed=0, attention="full").eval()
        times = best_times(
            {
                "full (ICVE)": step_fn(full, branches, source=source),
                "one-way": step_fn(model, branches, source=source),
                "one-way + cache": step_fn(model, branches, source_cache=cache),
                "cache build": lambda: model.build_source_cache(source, guidance=guidance),
            },
            repeats,
        )
    build, _ = times.pop("cache build")
    print("  per step (2 branches)   CPU time    wall time")
    for name, (cpu, wall) in times.items():
        print(f"  {name:<20} {cpu * 1000:8.1f} ms  {wall * 1000:8.1f} ms")
    print(f"  cache build          {build * 1000:8.1f} ms once per video, {cache.nbytes() / 2**20:.1f} MiB")
    ratio = times["one-way"][0] / times["one-way + cache"][0]
    expected = flop_ratio(spec.inner_dim, video_tokens, video_tokens, text_tokens, spec.mlp_ratio)
    print(
        f"speed-up of the cache: {ratio:.2f}x over one-way without it (goal >= 1.8x; FLOPs predict {expected:.2f}x)"
    )
    print(
        f"speed-up over full attention (ICVE): {times['full (ICVE)'][0] / times['one-way + cache'][0]:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=4, help="latent frames per video")
    parser.add_argument("--size", type=int, default=16, help="latent height and width")
    parser.add_argument("--text-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.frames, args.size, args.text_tokens, args.repeats, args.threads)
