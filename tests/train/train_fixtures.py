"""Shared builders for the training tests: random latent caches and tiny run configs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retake import video
from retake.model.text import TextEmbedding
from retake.train.cache import write_cache
from retake.train.config import RunConfig, parse_run_config
from retake.train.encode import LatentSample

# The "tiny" preset: 4 latent channels, 16-d text tokens, 8-d pooled text, embedded guidance.
CHANNELS, TEXT_DIM, POOLED_DIM, TEXT_LEN = 4, 16, 8, 6
LATENT = (CHANNELS, 2, 4, 4)  # (C, F, H, W): 2 x 2 x 2 = 8 tokens per video


def random_text(seed: int, length: int = TEXT_LEN, valid: int | None = None) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    valid = length - seed % 3 if valid is None else valid
    mask = (torch.arange(length) < valid)[None]
    return TextEmbedding(
        torch.randn(1, length, TEXT_DIM, generator=g), mask, torch.randn(1, POOLED_DIM, generator=g)
    )


def random_sample(index: int, *, latent: tuple[int, ...] = LATENT, nan: bool = False) -> LatentSample:
    g = torch.Generator().manual_seed(1000 + index)
    source = torch.randn(latent, generator=g)
    target = source.roll(1, dims=-1) + 0.1 * torch.randn(latent, generator=g)  # a learnable "edit"
    if nan:
        target[0, 0, 0, 0] = float("nan")
    return LatentSample(f"s{index:03d}", source, target, random_text(index))


def write_random_cache(
    root: Path,
    n: int = 8,
    *,
    nan_ids: Sequence[int] = (),
    shard_size: int = 3,
    latent: tuple[int, ...] = LATENT,
    start: int = 0,
    kinds: Sequence[str] | None = None,
) -> Path:
    """A cache of random_sample(start), ..., random_sample(start + n - 1); `kinds`: each sample's edit kind."""
    samples = [random_sample(i, latent=latent, nan=i in nan_ids) for i in range(start, start + n)]
    empty = TextEmbedding(
        torch.zeros(1, TEXT_LEN, TEXT_DIM),
        torch.tensor([[True] + [False] * (TEXT_LEN - 1)]),
        torch.zeros(1, POOLED_DIM),
    )
    labels = None if kinds is None else dict(zip((s.id for s in samples), kinds, strict=True))
    write_cache(root, samples, empty, shard_size=shard_size, kinds=labels)
    return root


def stage(name: str, cache: Path, **overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"name": name, "steps": 4, "batch": 2, "data": {"cache": str(cache)}}
    table["optim"] = {"lr": 1e-3, **overrides.pop("optim", {})}
    table.update(overrides)
    return table


def run_table(out: Path, stages: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A run as the TOML table it would be parsed from (tiny model, no progress bar)."""
    model = {"preset": "tiny", **top.pop("model", {})}
    return {
        "out": str(out),
        "progress": False,
        "checkpoint_every": 2,
        "model": model,
        "stages": stages,
        **top,
    }


def run_config(out: Path, stages: list[dict[str, Any]], **top: Any) -> RunConfig:
    return parse_run_config(run_table(out, stages, **top))


# ----------------------------------------------------------------------------------------------------------
# videos on disk: Flatland pairs and `retake curate` output
# ----------------------------------------------------------------------------------------------------------
CLIP = (5, 16, 16)  # frames, H, W: 4k + 1 frames, 8x the tiny VAE's downsampling


def clip(seed: int, shape: tuple[int, int, int] = CLIP) -> np.ndarray:
    """(F, H, W, 3) uint8: a flat colour picked by `seed` with a gentle moving ramp (H.264 keeps it nearly
    intact, and clips of different seeds differ by far more than the coding error)."""
    frames, h, w = shape
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 200, size=3)
    ramp = np.arange(w)[None, :, None] * 2 + np.arange(frames)[:, None, None, None] * 3  # (F, 1, W, 1)
    out = np.broadcast_to(colour + ramp, (frames, h, w, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def mp4_bytes(frames: np.ndarray, folder: Path, name: str) -> bytes:
    path = video.write(video.Video(frames, fps=8), folder / f"{name}.mp4")
    return path.read_bytes()


def write_flatland_pairs(
    root: Path, n: int = 3, *, broken: Sequence[int] = (), kinds: Sequence[str] | None = None
) -> Path:
    """A Flatland-pairs folder: pairs/<id>.src.mp4, pairs/<id>.tgt.mp4 and manifest.jsonl; `broken` samples
    get a truncated source mp4; `kinds`: each sample's edit kind in the manifest (default: none given)."""
    (root / "pairs").mkdir(parents=True)
    records = []
    for i in range(n):
        sid = f"pair{i:03d}"
        src = video.write(video.Video(clip(i), fps=8), root / "pairs" / f"{sid}.src.mp4")
        video.write(video.Video(clip(i + 10), fps=8), root / "pairs" / f"{sid}.tgt.mp4")
        if i in broken:
            src.write_bytes(src.read_bytes()[:200])
        records.append(
            {
                "id": sid,
                "source": f"pairs/{sid}.src.mp4",
                "target": f"pairs/{sid}.tgt.mp4",
                "instruction": f"recolour the square {i}",
                **({} if kinds is None else {"kind": kinds[i]}),
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def write_curated(
    root: Path, n: int = 3, *, broken: Sequence[int] = (), unlabelled: Sequence[int] = ()
) -> Path:
    """A `retake curate`-shaped folder (manifest.parquet + one WebDataset shard) with n ok pairs; `broken`
    pairs carry a garbage source mp4, `unlabelled` ones have no instruction; plus one dropped row."""
    from retake.data.shards import MANIFEST_SCHEMA, TarSink, tar_path, write_rows

    sink = TarSink(tar_path(root, "shard-000000"))
    rows = []
    scratch = root / "scratch"
    scratch.mkdir(parents=True)
    for i in range(n):
        pid = f"vid{i}-s0-p0"
        src = b"not an mp4 at all" if i in broken else mp4_bytes(clip(i), scratch, f"{pid}-a")
        sink.add(
            pid, {"src.mp4": src, "tgt.mp4": mp4_bytes(clip(i + 10), scratch, f"{pid}-b"), "json": b"{}"}
        )
        row = dict.fromkeys(MANIFEST_SCHEMA.names)
        instruction = None if i in unlabelled else f"zoom out and pan right {i}"
        row.update(
            pair_id=pid, status="ok", stage="", reason="", shard="shard-000000", instruction=instruction
        )
        rows.append(row)
    sink.commit()
    dropped = dict.fromkeys(MANIFEST_SCHEMA.names)
    dropped.update(
        pair_id="vidX", status="dropped", stage="motion", reason="low_motion", shard="shard-000000"
    )
    write_rows([*rows, dropped], root / "manifest.parquet")
    return root


class StubTextEncoder:
    """A deterministic stand-in for a text encoder with the tiny preset's widths (16-d tokens, 8-d pooled)."""

    dim, pooled_dim = TEXT_DIM, POOLED_DIM

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        self.calls += 1
        texts = [
            random_text(sum(map(ord, p)) % 1000, valid=max(1, min(TEXT_LEN, len(p.split())))) for p in prompts
        ]
        return TextEmbedding(
            *(torch.cat([getattr(t, k) for t in texts]) for k in ("tokens", "mask", "pooled"))
        )
