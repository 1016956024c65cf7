"""The closing table of a curation run: kept, dropped and failed, per stage and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.table import Table

from retake.data.records import STATUS_ERROR
from retake.errors import RetakeError

_UNIT_ORDER = {"video": 0, "scene": 1, "pair": 2}


def stats_rows(stats: dict[str, Any]) -> list[tuple[str, str, str, str, int]]:
    """(outcome, stage, reason, unit, count) rows of a stats dict, in pipeline order of appearance."""
    rows = []
    for outcome, table in (("dropped", stats.get("dropped", {})), ("error", stats.get("errors", {}))):
        for stage, reasons in table.items():
            for reason, units in reasons.items():
                rows += [(outcome, stage, reason, unit, count) for unit, count in units.items()]
    return sorted(rows, key=lambda r: (r[0], _UNIT_ORDER.get(r[3], 9), r[1], r[2]))


def headline(stats: dict[str, Any], seconds: float | None = None) -> str:
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    return (
        f"{stats.get('videos', 0)} videos -> {stats.get('pairs_ok', 0)} pairs "
        f"({stats.get('frames_analysed', 0)} frames analysed{took})"
    )


def stats_table(stats: dict[str, Any]) -> Table | str:
    """The dropped and failed counts as a table; a line when there were none (an empty table says nothing)."""
    if not stats_rows(stats) and not stats.get("vlm_spend"):
        return "nothing dropped, nothing failed"
    table = Table()
    for column in ("outcome", "stage", "reason", "unit"):
        table.add_column(column)
    table.add_column("count", justify="right")
    for outcome, stage, reason, unit, count in stats_rows(stats):
        table.add_row(outcome, stage, reason, unit, str(count))
    spend = stats.get("vlm_spend")
    if spend:
        table.caption = (
            f"VLM: {spend.get('requests', 0)} requests, {spend.get('retries', 0)} retries, "
            f"{spend.get('cache_hits', 0)} cache hits, {spend.get('prompt_tokens', 0)}+"
            f"{spend.get('completion_tokens', 0)} tokens, cost {spend.get('cost', 0):.4f}"
        )
    return table


# The recipe settings that decide each drop reason (curate's and synth's filters name them alike; synth's sit
# in sections, e.g. source.min_duration_s), for the note that says what to loosen.
_REASON_SETTINGS = {
    "too_short": ("min_duration_s",),
    "too_long": ("max_duration_s",),
    "low_resolution": ("min_short_side",),
    "fps_out_of_range": ("min_fps", "max_fps"),
    "low_motion": ("min_motion",),
    "too_few_clips": ("clip_frames", "min_scene_frames", "target_fps"),
    "exposure": ("min_luma", "max_luma"),
    "too_small": ("min_area",),
    "too_large": ("max_area",),
    "blurry_fill": ("min_sharpness_ratio",),
}


def all_dropped_note(made: int, stats: dict[str, Any], settings: dict[str, Any] | None = None) -> str | None:
    """What to tell a run that made nothing because filters dropped every input (None when it made something
    or something failed): the commonest reason, and the recipe settings (of `settings`, the run's config as
    a dict) that decide it, with their values."""
    dropped = [row for row in stats_rows(stats) if row[0] == "dropped"]
    if made or not dropped:
        return None
    _, stage, reason, unit, count = max(dropped, key=lambda row: row[4])
    found = _settings_for(reason, settings or {})
    loosen = ", ".join(f"{key} (now {value!r})" for key, value in found.items()) or "a recipe's limits"
    return (
        f"nothing was made: filters dropped every input, most for {reason} at {stage} ({count} {unit}s); "
        f"loosen {loosen} with --set KEY=VALUE"
    )


def _settings_for(reason: str, settings: dict[str, Any]) -> dict[str, Any]:
    """{dotted key: value} of the settings in the nested dict `settings` that decide `reason`."""
    names = _REASON_SETTINGS.get(reason, ())
    flat: dict[str, Any] = {}
    stack = [("", settings)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict):
                stack.append((f"{prefix}{key}.", value))
            elif key in names:
                flat[f"{prefix}{key}"] = value
    return dict(sorted(flat.items()))


class NothingMadeError(RetakeError):
    """A run that made nothing because its inputs failed (not because a filter dropped them all)."""


def check_something_made(made: int, stats: dict[str, Any], manifest: Path) -> None:
    """NothingMadeError when a run made nothing and something failed, naming the first failure.

    A run whose inputs were all dropped by a filter made nothing for a reason the table gives; one whose
    inputs failed (missing weights, a broken model path) would fail the same way on every rerun, so it must
    not exit as a success with the cause only in the manifest."""
    failed = sum(int(v) for k, v in stats.items() if k.endswith("_error") and isinstance(v, int))
    if made or not failed:
        return
    rows = pq.read_table(
        manifest, columns=["source_video", "status", "stage", "reason", "detail"]
    ).to_pylist()
    first = next(r for r in rows if r["status"] == STATUS_ERROR)
    where = f"{first['source_video']}: {first['stage']} {first['reason']}"
    raise NothingMadeError(
        f"nothing was made: {failed} failed; the first, {where}: {first['detail'] or 'no detail'}; "
        f"every row is in {manifest}"
    )
