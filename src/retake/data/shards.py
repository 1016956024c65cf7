"""The dataset format the curation pipeline writes, and how to read it back.

    OUT/
      run.json                      config, input count and a hash of the sorted input list (a restart
                                    must match them, so it recomputes the very same shards)
      shards/shard-000000.tar       WebDataset tar: per pair <key>.src.mp4, <key>.tgt.mp4, <key>.json
      parts/shard-000000.parquet    that shard's manifest rows (written last: the shard's "done" marker)
      parts/shard-000000.stats.json that shard's counts
      manifest.parquet              all rows, sorted (pairs, dropped pairs, dropped and broken videos)
      stats.json                    counts summed over shards: kept, dropped and failed, per stage and reason

Every file is written to a temporary name and renamed, so a killed run leaves either a whole file or none.
Tar members carry fixed metadata (mtime 0, uid 0, mode 0644) so the same pairs give byte-identical shards.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from retake.data.records import Meta, Pair, Sample, StageError
from retake.files import replacing, temp_sibling
from retake.files import write_json as write_json_file

MANIFEST_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),  # <video_key>-s<scene>-p<pair>, or <video_key> for a video-level row
        ("status", pa.string()),  # ok | dropped | error
        ("stage", pa.string()),  # where it was dropped or failed ("" when ok)
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_video", pa.string()),
        ("video_key", pa.string()),
        ("shard", pa.string()),
        ("scene", pa.int32()),
        ("pair", pa.int32()),
        ("seed", pa.int64()),  # the pair's seed (instruction phrasing, verb rewriting): reproduces its text
        ("src_start", pa.int64()),  # native frame range of the source clip, end exclusive
        ("src_end", pa.int64()),
        ("tgt_start", pa.int64()),
        ("tgt_end", pa.int64()),
        ("src_frames", pa.list_(pa.int64())),  # the native frames sampled into each clip
        ("tgt_frames", pa.list_(pa.int64())),
        ("fps", pa.float64()),  # native (average) fps of the source video
        ("clip_fps", pa.float64()),
        ("clip_frames", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("motion_score", pa.float64()),
        ("instruction", pa.string()),
        ("writer", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost", pa.float64()),
    ]
)
SORT_KEYS = [
    ("source_video", "ascending"),
    ("scene", "ascending"),
    ("pair", "ascending"),
    ("pair_id", "ascending"),
]


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def tar_path(out: Path, shard: str) -> Path:
    return out / "shards" / f"{shard}.tar"


def part_path(out: Path, shard: str) -> Path:
    return out / "parts" / f"{shard}.parquet"


def stats_path(out: Path, shard: str) -> Path:
    return out / "parts" / f"{shard}.stats.json"


def write_json(path: Path, data: Any) -> None:
    """A run's JSON (run.json, stats), atomically, keys sorted so that reruns diff cleanly."""
    write_json_file(path, data, sort_keys=True)


def write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet table atomically."""
    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def write_rows(rows: list[dict[str, Any]], path: Path, schema: pa.Schema = MANIFEST_SCHEMA) -> None:
    """Write manifest rows as Parquet, atomically (`schema`: the curation manifest's unless a pipeline family
    brings its own)."""
    write_table(pa.Table.from_pylist(rows, schema=schema), path)


def sort_manifest(table: pa.Table, keys: list[tuple[str, str]] = SORT_KEYS) -> pa.Table:
    return table.sort_by(keys)


def read_manifest(out: str | Path) -> pa.Table:
    """The merged manifest of a finished run."""
    path = Path(out).expanduser() / "manifest.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: has `retake curate` finished on {out}?")
    return pq.read_table(path)


class TarSink:
    """Collects one shard's samples and writes them as a WebDataset tar: members `<key>.<ext>` in the order
    added. Nothing appears under the final name until `commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = temp_sibling(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Held open across add() calls; closed by commit() or abort().
        self._tar = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self.count = 0

    def add(self, key: str, files: dict[str, bytes]) -> None:
        if "." in key or "/" in key:
            raise ValueError(f"WebDataset keys may not contain '.' or '/': {key!r}")
        for ext, data in files.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def commit(self) -> None:
        self._tar.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self._tar.close()
        self.tmp.unlink(missing_ok=True)


def iter_shard(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Read a shard back: (key, {ext: bytes}) per sample, in file order (the WebDataset grouping rule:
    the key is the member name up to its first dot)."""
    current, files = None, {}
    with tarfile.open(Path(path).expanduser(), "r") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            if current is not None and key != current:
                yield current, files
                files = {}
            current = key
            handle = tar.extractfile(member)
            files[ext] = handle.read() if handle is not None else b""
    if current is not None:
        yield current, files


def pair_row(sample: Sample, meta: Meta, pair: Pair, *, shard: str, writer: str) -> dict[str, Any]:
    """The manifest row (and the tar's JSON) of one pair."""
    motion = next((s.motion for s in meta.scenes if s.index == pair.scene), None)
    return {
        "pair_id": f"{sample.key}-{pair.key}",
        "status": pair.status,
        "stage": pair.stage,
        "reason": pair.reason,
        "detail": pair.detail,
        "source_video": sample.source,
        "video_key": sample.key,
        "shard": shard,
        "scene": pair.scene,
        "pair": pair.index,
        "seed": pair.seed,
        "src_start": pair.src.start,
        "src_end": pair.src.end,
        "tgt_start": pair.tgt.start,
        "tgt_end": pair.tgt.end,
        "src_frames": list(pair.src.frames),
        "tgt_frames": list(pair.tgt.frames),
        "fps": meta.info.fps if meta.info is not None else None,
        "clip_fps": meta.clip_fps,
        "clip_frames": len(pair.src.frames),
        "width": meta.output_size[1] if meta.output_size else None,
        "height": meta.output_size[0] if meta.output_size else None,
        "motion_score": motion,
        "instruction": pair.instruction,
        "writer": writer,
        "prompt_tokens": pair.prompt_tokens,
        "completion_tokens": pair.completion_tokens,
        "cost": pair.cost,
    }


def video_row(sample: Sample, meta: Meta, error: StageError, *, shard: str, writer: str) -> dict[str, Any]:
    """The manifest row of a video that yielded no pair: broken (status error) or turned away (dropped)."""
    row = dict.fromkeys(MANIFEST_SCHEMA.names)
    row.update(
        pair_id=sample.key,
        status=error.status,
        stage=error.stage,
        reason=error.reason,
        detail=error.detail,
        source_video=sample.source,
        video_key=sample.key,
        shard=shard,
        fps=meta.info.fps if meta.info is not None else None,
        writer=writer,
    )
    return row


def read_json(path: Path) -> Any:
    return json.loads(Path(path).expanduser().read_text())
