"""Counts of a curation run: videos analysed, kept and dropped (per stage, reason and unit), broken inputs;
per shard while it runs, then summed over shards."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from retake.data.records import STATUS_DROPPED, STATUS_ERROR, STATUS_OK, Meta, StageError


class ShardStats:
    """Counts of one shard: what was analysed, kept, dropped (per stage, reason and unit) and broken."""

    def __init__(self) -> None:
        self.videos = self.frames = self.scenes = self.clips = 0
        self.dropped: dict[str, dict[str, dict[str, int]]] = {}
        self.errors: dict[str, dict[str, dict[str, int]]] = {}

    def add(self, meta: Meta, error: StageError | None) -> None:
        self.videos += 1
        self.frames += meta.frames_analysed
        self.scenes += len(meta.scenes)
        self.clips += len(meta.clips)
        for drop in meta.drops:
            _bump(self.dropped, drop.stage, drop.reason, drop.unit, drop.count)
        if error is not None:
            _bump(
                self.errors if error.status == STATUS_ERROR else self.dropped,
                error.stage,
                error.reason,
                "video",
                1,
            )
            return
        for pair in meta.pairs:
            if pair.status == STATUS_DROPPED:
                _bump(self.dropped, pair.stage, pair.reason, "pair", 1)
            elif pair.status == STATUS_ERROR:
                _bump(self.errors, pair.stage, pair.reason, "pair", 1)

    def to_dict(self, rows: list[dict]) -> dict[str, Any]:
        status = [r["status"] for r in rows]
        video_rows = [r for r in rows if r["scene"] is None]
        return {
            "videos": self.videos,
            "videos_with_pairs": len({r["video_key"] for r in rows if r["status"] == STATUS_OK}),
            "videos_error": sum(r["status"] == STATUS_ERROR for r in video_rows),
            "videos_dropped": sum(r["status"] == STATUS_DROPPED for r in video_rows),
            "frames_analysed": self.frames,
            "scenes_kept": self.scenes,
            "clips": self.clips,
            "pairs_ok": status.count(STATUS_OK),
            "pairs_dropped": sum(r["status"] == STATUS_DROPPED for r in rows if r["scene"] is not None),
            "pairs_error": sum(r["status"] == STATUS_ERROR for r in rows if r["scene"] is not None),
            "dropped": self.dropped,
            "errors": self.errors,
        }


def _bump(table: dict, stage: str, reason: str, unit: str, count: int) -> None:
    units = table.setdefault(stage, {}).setdefault(reason, {})
    units[unit] = units.get(unit, 0) + count


def merge_stats(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum shard stats: numbers add up, nested tables are merged key by key."""
    total: dict[str, Any] = {}
    for part in parts:
        _add_into(total, part)
    return total


def _add_into(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_into(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
