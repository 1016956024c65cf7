"""The closing table of a curation run: kept, dropped and failed, per stage and reason."""

from __future__ import annotations

from typing import Any

from rich.table import Table

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


def stats_table(stats: dict[str, Any]) -> Table:
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
