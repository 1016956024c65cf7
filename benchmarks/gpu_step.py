"""One denoising step of an in-context edit on a GPU: ICVE's full attention against one-way attention with the
source K/V cache, with peak memory.

Default setting is ICVE's: HunyuanVideo 13B (random bf16 weights), 768x480, 61 frames -> 16 x 60 x 96 latents,
2 x 23,040 video tokens + 256 text tokens, text-only CFG (a step = conditional + unconditional branch, one
sample each, the same source in both), embedded guidance 1.0.

    .venv/bin/python benchmarks/gpu_step.py                       # on a CUDA GPU
    .venv/bin/python benchmarks/gpu_step.py --device cpu --preset tiny --height 64 --width 64 --frames 5
                                                                  # code-path check on CPU

Peak memory is torch's max allocated bytes on the device during each mode (weights included).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from retake.model import build_transformer, get_preset
from retake.model.transformer import InContextTransformer

VAE_TIME, VAE_SPACE = 4, 8  # HunyuanVideo's causal VAE: 4x in time (plus the first frame), 8x in space


@dataclass(frozen=True)
class Setting:
    preset: str
    height: int
    width: int
    frames: int
    text_tokens: int
    device: torch.device
    dtype: torch.dtype

    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        channels = get_preset(self.preset).in_channels
        return (
            1,
            channels,
            (self.frames - 1) // VAE_TIME + 1,
            self.height // VAE_SPACE,
            self.width // VAE_SPACE,
        )


def random_model(setting: Setting, seed: int) -> InContextTransformer:
    """Build on the meta device, allocate directly in the target dtype, fill with random weights."""
    model = build_transformer(setting.preset, device="meta", dtype=setting.dtype)
    model = model.to_empty(device=setting.device).eval()
    g = torch.Generator(device=setting.device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif "norm" in name and param.ndim == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=g)
    return model


def make_branches(setting: Setting, seed: int) -> tuple[torch.Tensor, list[dict]]:
    spec = get_preset(setting.preset)
    g = torch.Generator(device=setting.device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=setting.device, dtype=setting.dtype)

    source = randn(*setting.latent_shape)
    latents = randn(*setting.latent_shape)
    branches = []
    for valid in (max(1, setting.text_tokens // 4), max(1, setting.text_tokens // 12)):  # prompt, negative
        mask = (torch.arange(setting.text_tokens, device=setting.device) < valid).long()[None]
        branches.append(
            {
                "hidden_states": latents,
                "timestep": torch.tensor([700.0], device=setting.device),
                "encoder_hidden_states": randn(1, setting.text_tokens, spec.text_embed_dim),
                "encoder_attention_mask": mask,
                "pooled_projections": randn(1, spec.pooled_projection_dim),
                "guidance": torch.tensor([1000.0], device=setting.device) if spec.guidance_embeds else None,
            }
        )
    return source, branches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, int | None]:
    """Best wall time over `repeats` runs after one warm-up, and the peak allocated bytes (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return best, peak


def gib(nbytes: int | None) -> str:
    return "n/a (CPU)" if nbytes is None else f"{nbytes / 2**30:.1f} GiB"


def run(setting: Setting, repeats: int, seed: int = 0) -> None:
    model = random_model(setting, seed)
    source, branches = make_branches(setting, seed + 1)
    spec = model.spec
    _, _, f, h, w = setting.latent_shape
    tokens = (f // spec.patch_size_t) * (h // spec.patch_size) * (w // spec.patch_size)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{setting.preset} ({params / 1e9:.2f}B params, {setting.dtype}) on {setting.device}: "
        f"{setting.width}x{setting.height}x{setting.frames} -> latents {setting.latent_shape[1:]}, "
        f"2 x {tokens:,} video tokens + {setting.text_tokens} text tokens"
    )

    def step(**source_kwargs: object) -> None:
        for kwargs in branches:
            model(**kwargs, **source_kwargs)

    with torch.no_grad():
        model.set_attention_mode("full")
        full_s, full_peak = measure(lambda: step(source=source), setting.device, repeats)
        model.set_attention_mode("one-way")
        guidance = branches[0]["guidance"]
        build_s, _ = measure(lambda: model.build_source_cache(source, guidance=guidance), setting.device, 1)
        cache = model.build_source_cache(source, guidance=guidance)
        cached_s, cached_peak = measure(lambda: step(source_cache=cache), setting.device, repeats)
    print(f"  full attention (ICVE)      {full_s:8.3f} s per step (2 branches), peak {gib(full_peak)}")
    print(f"  one-way + source cache     {cached_s:8.3f} s per step (2 branches), peak {gib(cached_peak)}")
    print(f"  source cache               {build_s:8.3f} s once per video, {cache.nbytes() / 2**30:.2f} GiB")
    print(f"speed-up per step: {full_s / cached_s:.2f}x")


def parse(argv: list[str]) -> tuple[Setting, int]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="hunyuan-13b")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=61)
    parser.add_argument("--text-tokens", type=int, default=256)
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(
            2,
            "gpu_step.py measures a CUDA GPU and none is available here; for a code-path check on CPU "
            "pass --device cpu --preset tiny (figures from the CPU are not the benchmark)\n",
        )
    if device.type == "cpu" and args.preset == "hunyuan-13b":
        parser.exit(
            2, "the 13B model is not run on CPU; use --device cpu only with a small --preset (e.g. tiny)\n"
        )
    dtype = (
        getattr(torch, args.dtype)
        if args.dtype
        else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    )
    setting = Setting(args.preset, args.height, args.width, args.frames, args.text_tokens, device, dtype)
    return setting, args.repeats


if __name__ == "__main__":
    setting, repeats = parse(sys.argv[1:])
    run(setting, repeats)
