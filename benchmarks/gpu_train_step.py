"""One training step of the in-context editor on a GPU: step time, peak memory and model FLOPs utilisation.

Default setting: HunyuanVideo 13B (`hunyuan-13b`, random bf16 weights), ICVE sequence conditioning, an
in-context pair at 768x480 x 61 frames (latents 16 x 16 x 60 x 96: 2 x 23,040 video tokens + 256 text tokens),
batch 1, gradient checkpointing, and the trainer's own step (`retake.train.step`: InsViE tricks, logit-normal t,
flow loss) followed by AdamW. Modes:

- lora: LoRA rank 128 on every attention/MLP linear (the trainer's default targets), base weights frozen;
- full: every weight trains (bf16 weights and AdamW moments). Under torchrun it is sharded with FSDP2
  (`retake.train.distributed.shard_model`); on one GPU it runs unsharded if it fits, else reports the OOM.

    .venv/bin/python benchmarks/gpu_train_step.py                          # lora + full on one CUDA GPU
    torchrun --nproc-per-node 8 benchmarks/gpu_train_step.py --mode full    # full fine-tune, FSDP over 8 GPUs
    .venv/bin/python benchmarks/gpu_train_step.py --device cpu --preset tiny --height 64 --width 64 --frames 5
                                                                           # code-path check on CPU

Model FLOPs are counted by `torch.utils.flop_counter` on one forward pass at the real shapes (matmuls and
attention), times 3 for a full fine-tune (forward + input and weight gradients) or 2 for LoRA (no weight
gradients for the frozen base); recomputation by gradient checkpointing is not model FLOPs (it is in HFU).
MFU = model FLOPs / step time / peak dense bf16 FLOP/s of the device (H200/H100 SXM: 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from retake.model import build_transformer, get_preset
from retake.model.text import TextEmbedding
from retake.train.config import LoraSettings, TricksConfig
from retake.train.distributed import DistEnv, setup, shard_model, teardown
from retake.train.lora import apply_lora
from retake.train.step import Batch, compute_loss, make_inputs, sample_generator

VAE_TIME, VAE_SPACE = 4, 8  # HunyuanVideo's causal VAE: 4x in time (plus the first frame), 8x in space
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks (SXM)


@dataclass(frozen=True)
class Result:
    mode: str
    step_s: float
    peak_gib: float
    model_tflop: float
    hardware_tflop: float
    trainable: int


def latent_shape(args: argparse.Namespace, channels: int) -> tuple[int, int, int, int]:
    if (args.frames - 1) % VAE_TIME or args.height % VAE_SPACE or args.width % VAE_SPACE:
        raise SystemExit(
            f"frames must be 4k + 1 and height/width multiples of 8, got {args.frames} {args.height}x{args.width}"
        )
    return channels, (args.frames - 1) // VAE_TIME + 1, args.height // VAE_SPACE, args.width // VAE_SPACE


def random_batch(args: argparse.Namespace, spec, device: torch.device) -> Batch:
    """A random in-context pair (what the latent cache would hold) with a text embedding of `text_tokens`."""
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch, *latent_shape(args, spec.in_channels))
    text_len = args.text_tokens
    text = TextEmbedding(
        torch.randn(args.batch, text_len, spec.text_embed_dim, generator=g, device=device),
        torch.ones(args.batch, text_len, dtype=torch.bool, device=device),
        torch.randn(args.batch, spec.pooled_projection_dim, generator=g, device=device),
    )
    source = torch.randn(shape, generator=g, device=device)
    return Batch(
        tuple(f"s{i}" for i in range(args.batch)), tuple(range(args.batch)), source, source.roll(1, -1), text
    )


def build(args: argparse.Namespace, mode: str, env: DistEnv) -> torch.nn.Module:
    """Random weights (bf16 on CUDA). Under FSDP every rank builds on the meta device, shards, and only then
    allocates its shard, so no process ever holds the whole 13B model."""
    spec = get_preset(args.preset)
    dtype = torch.bfloat16 if env.device.type == "cuda" else torch.float32
    sharded = env.strategy == "fsdp"
    model = build_transformer(spec, device="meta" if sharded else env.device, dtype=dtype, seed=0)
    model.enable_gradient_checkpointing()
    model.train()
    if mode == "lora":
        apply_lora(model, LoraSettings(rank=args.lora_rank))
    else:
        model.requires_grad_(True)
    if sharded:
        shard_model(model, env)
        model.to_empty(device=env.device)
        with torch.no_grad():
            for param in model.parameters():  # the local shard of each DTensor
                (param.to_local() if hasattr(param, "to_local") else param).normal_(0.0, 0.02)
    return model


def forward_flops(model: torch.nn.Module, batch: Batch, env: DistEnv, autocast: torch.dtype | None) -> int:
    """FLOPs of one forward pass at the benchmark's shapes (no grad, so nothing is recomputed)."""
    inputs = step_inputs(model, batch, env)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        compute_loss(model, inputs, autocast_dtype=autocast)
    return counter.get_total_flops()


def step_inputs(model: torch.nn.Module, batch: Batch, env: DistEnv):
    spec = model.spec
    generators = [sample_generator(0, 0, p, env.device) for p in batch.positions]
    empty = TextEmbedding(batch.text.tokens[:1] * 0, batch.text.mask[:1], batch.text.pooled[:1] * 0)
    inputs = make_inputs(
        batch,
        TricksConfig(source_noise=True),
        empty,
        generators,
        guidance=1.0 if spec.guidance_embeds else None,
    )
    return inputs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, mode: str, env: DistEnv) -> Result:
    if env.device.type == "cuda":
        torch.cuda.empty_cache()
    model = build(args, mode, env)
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(env.device)  # the peak of training, not of building (fp32 -> bf16)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    autocast = torch.bfloat16 if env.device.type == "cuda" else None
    batch = random_batch(args, model.spec, env.device)
    fwd = forward_flops(model, batch, env, autocast)
    times = []
    for step in range(args.warmup + args.steps):
        sync(env.device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(model, step_inputs(model, batch, env), autocast_dtype=autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        sync(env.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(env.device) / 2**30 if env.device.type == "cuda" else float("nan")
    factor = 2 if mode == "lora" else 3
    trainable = sum(p.numel() for p in params)
    if env.strategy == "fsdp":
        trainable *= env.world_size  # shards: the whole model trains
    del model, optimizer, params
    return Result(
        mode, sum(times) / len(times), peak, factor * fwd / 1e12, (factor + 1) * fwd / 1e12, trainable
    )


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def report(results: list[Result], args: argparse.Namespace, env: DistEnv) -> None:
    peak = peak_tflops(args, env.device)
    tokens = 2 * latent_shape(args, 1)[1] * (args.height // VAE_SPACE // 2) * (args.width // VAE_SPACE // 2)
    device = torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu"
    print(
        f"{args.preset}, {args.width}x{args.height} x {args.frames} frames, batch {args.batch}: {tokens} video "
        f"tokens + {args.text_tokens} text per sample; {env.world_size} x {device}; gradient checkpointing"
    )
    print(
        f"{'mode':6s} {'trainable':>14s} {'step s':>8s} {'peak GiB':>9s} {'model TFLOP':>12s} "
        f"{'TFLOP/s':>9s} {'MFU':>6s} {'HFU':>6s}"
    )
    for r in results:
        rate = r.model_tflop / r.step_s / env.world_size  # per device
        mfu = f"{rate / peak:6.1%}" if peak else "   n/a"
        hfu = f"{r.hardware_tflop / r.step_s / env.world_size / peak:6.1%}" if peak else "   n/a"
        memory = f"{r.peak_gib:9.1f}" if r.peak_gib == r.peak_gib else "      n/a"  # NaN on CPU
        print(
            f"{r.mode:6s} {r.trainable:14,d} {r.step_s:8.2f} {memory} {r.model_tflop:12.4g} {rate:9.4g} {mfu} {hfu}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="hunyuan-13b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--mode", choices=["lora", "full", "both"], default="both")
    parser.add_argument("--lora-rank", type=int, default=128)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=61)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--text-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (default: known GPUs)")
    args = parser.parse_args()

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            "gpu_train_step.py measures CUDA training steps and no CUDA device is available; "
            "for a code-path check on CPU run: --device cpu --preset tiny --height 64 --width 64 --frames 5"
        )
    if args.device == "cpu" and args.preset != "tiny":
        sys.exit(
            f"refusing to train {args.preset} on CPU (hours per step); use --preset tiny for the CPU smoke run"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    env = setup("fsdp" if world > 1 else "none", args.device)
    try:
        modes = ["lora", "full"] if args.mode == "both" else [args.mode]
        results = []
        for mode in modes:
            try:
                results.append(measure(args, mode, env))
            except torch.OutOfMemoryError as exc:
                if env.is_main:
                    print(f"{mode}: out of memory on {env.world_size} device(s) ({str(exc).splitlines()[0]})")
        if env.is_main and results:
            report(results, args, env)
    finally:
        teardown(env)


if __name__ == "__main__":
    main()
