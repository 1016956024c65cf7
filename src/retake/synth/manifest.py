"""The factory's dataset format: the curation layout (retake.data.shards: WebDataset tars + Parquet manifest,
written atomically per shard) with one row per triplet.

Tar members per triplet: `<pair_id>.src.mp4` (source), `<pair_id>.tgt.mp4` (edited) and `<pair_id>.json` (its
row), so `retake.train.datasets.CuratedPairs` reads a synth dataset as it reads a curated one: rows with
status "ok" and an instruction are training triplets.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from retake.data.records import StageError
from retake.files import json_default
from retake.synth.records import SynthMeta, SynthSample, Triplet

SYNTH_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),  # <video_key>-t<triplet>, or <video_key> for an input-level row
        ("status", pa.string()),  # ok | dropped | error
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_video", pa.string()),  # the input as listed (a video or a still image)
        ("video_key", pa.string()),
        ("shard", pa.string()),
        ("recipe", pa.string()),  # insvie | icve-sft
        ("kind", pa.string()),  # video | image
        ("triplet", pa.int32()),
        ("edit_type", pa.string()),
        ("instruction", pa.string()),
        ("seed", pa.int64()),
        ("frames", pa.int32()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("strength", pa.float64()),  # guidance strength of the chosen first frame
        ("candidates", pa.int32()),
        ("scores", pa.list_(pa.float64())),  # selection's score per candidate
        ("edit", pa.string()),  # JSON: the structured edit / what the editor needs to redo it
        ("metrics", pa.string()),  # JSON: source, selection and filter measurements
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost", pa.float64()),
    ]
)
SORT_KEYS = [("source_video", "ascending"), ("triplet", "ascending"), ("pair_id", "ascending")]


def triplet_id(sample: SynthSample, triplet: Triplet) -> str:
    return f"{sample.key}-t{triplet.index:03d}"


def _common(sample: SynthSample, meta: SynthMeta, shard: str, recipe: str) -> dict[str, Any]:
    height, width = meta.size if meta.size else (None, None)
    return {
        "source_video": sample.source,
        "video_key": sample.key,
        "shard": shard,
        "recipe": recipe,
        "kind": meta.kind,
        "frames": len(meta.frame_indices) if meta.frame_indices else None,
        "fps": meta.fps,
        "width": width,
        "height": height,
    }


def triplet_row(
    sample: SynthSample, meta: SynthMeta, triplet: Triplet, *, shard: str, recipe: str
) -> dict[str, Any]:
    """The manifest row (and the tar's JSON) of one triplet."""
    metrics = {**{f"source_{k}": v for k, v in meta.source_metrics.items()}, **triplet.metrics}
    return {
        **_common(sample, meta, shard, recipe),
        "pair_id": triplet_id(sample, triplet),
        "status": triplet.status,
        "stage": triplet.stage,
        "reason": triplet.reason,
        "detail": triplet.detail,
        "triplet": triplet.index,
        "edit_type": triplet.edit_type,
        "instruction": triplet.instruction,
        "seed": triplet.seed,
        "strength": triplet.strength,
        "candidates": triplet.candidates,
        "scores": list(triplet.scores),
        "edit": json.dumps(triplet.edit, sort_keys=True, default=json_default)
        if triplet.edit is not None
        else None,
        "metrics": json.dumps(metrics, sort_keys=True, default=json_default),
        "prompt_tokens": triplet.prompt_tokens,
        "completion_tokens": triplet.completion_tokens,
        "cost": triplet.cost,
    }


def input_row(
    sample: SynthSample, meta: SynthMeta, error: StageError, *, shard: str, recipe: str
) -> dict[str, Any]:
    """The row of an input that yielded no triplet: broken (status error) or turned away (dropped)."""
    row = dict.fromkeys(SYNTH_SCHEMA.names)
    row.update(
        _common(sample, meta, shard, recipe),
        pair_id=sample.key,
        status=error.status,
        stage=error.stage,
        reason=error.reason,
        detail=error.detail,
        metrics=json.dumps({f"source_{k}": v for k, v in meta.source_metrics.items()}, sort_keys=True),
    )
    return row


def row_order(row: dict) -> tuple:
    return (row["source_video"], row["triplet"] if row["triplet"] is not None else -1, row["pair_id"])
