"""Counts of a synth run: inputs read, triplets kept, dropped and failed (per stage, reason and unit), and the
edit-type mix; per shard while it runs, then summed over shards (retake.data.stats.merge_stats)."""

from __future__ import annotations

from typing import Any

from retake.data.records import STATUS_DROPPED, STATUS_ERROR, STATUS_OK, StageError
from retake.synth.records import SynthMeta


def _bump(table: dict, stage: str, reason: str, unit: str, count: int) -> None:
    units = table.setdefault(stage, {}).setdefault(reason, {})
    units[unit] = units.get(unit, 0) + count


class SynthStats:
    def __init__(self) -> None:
        self.videos = self.images = self.frames = 0
        self.dropped: dict[str, dict[str, dict[str, int]]] = {}
        self.errors: dict[str, dict[str, dict[str, int]]] = {}

    def add(self, meta: SynthMeta, error: StageError | None) -> None:
        self.videos += 1
        self.images += meta.kind == "image"
        self.frames += meta.frames_analysed
        for drop in meta.drops:
            _bump(self.dropped, drop.stage, drop.reason, drop.unit, drop.count)
        if error is not None:
            table = self.errors if error.status == STATUS_ERROR else self.dropped
            _bump(table, error.stage, error.reason, "video", 1)
            return
        for triplet in meta.triplets:
            if triplet.status == STATUS_DROPPED:
                _bump(self.dropped, triplet.stage, triplet.reason, "triplet", 1)
            elif triplet.status == STATUS_ERROR:
                _bump(self.errors, triplet.stage, triplet.reason, "triplet", 1)

    def to_dict(self, rows: list[dict]) -> dict[str, Any]:
        items = [r for r in rows if r["triplet"] is not None]
        inputs = [r for r in rows if r["triplet"] is None]
        ok = [r for r in items if r["status"] == STATUS_OK]
        types: dict[str, int] = {}
        for row in ok:
            types[row["edit_type"] or "free"] = types.get(row["edit_type"] or "free", 0) + 1
        return {
            "videos": self.videos,  # inputs, stills included (the key every shard family counts)
            "images": self.images,
            "videos_with_triplets": len({r["video_key"] for r in ok}),
            "videos_error": sum(r["status"] == STATUS_ERROR for r in inputs),
            "videos_dropped": sum(r["status"] == STATUS_DROPPED for r in inputs),
            "frames_analysed": self.frames,
            "triplets_ok": len(ok),
            "triplets_dropped": sum(r["status"] == STATUS_DROPPED for r in items),
            "triplets_error": sum(r["status"] == STATUS_ERROR for r in items),
            "edit_types": types,
            "dropped": self.dropped,
            "errors": self.errors,
        }


def headline(stats: dict[str, Any], seconds: float | None = None) -> str:
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    # Inputs dropped or failed before making any triplet count too: "0 dropped" above a table of dropped
    # inputs read as a contradiction.
    dropped = (
        f"{stats.get('videos_dropped', 0)} inputs and {stats.get('triplets_dropped', 0)} triplets dropped"
    )
    failed = f"{stats.get('videos_error', 0)} inputs and {stats.get('triplets_error', 0)} triplets failed"
    return f"{stats.get('videos', 0)} inputs -> {stats.get('triplets_ok', 0)} triplets ({dropped}, {failed}{took})"
