"""Training logs: one JSON line per logged step (OUT/metrics.jsonl), optional TensorBoard, and a progress bar.

Only rank 0 logs. On resume, lines of the resumed stage past the checkpoint's step are dropped first, so the
file reads as one uninterrupted run even after a hard kill between checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from retake.files import json_default, read_json_lines, write_json_lines

METRICS_NAME = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics file (a run folder or the file itself); `files.read_json_lines`."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / METRICS_NAME
    return read_json_lines(path)  # a line a kill cut short is skipped (truncate_metrics rewrites it away)


def truncate_metrics(path: Path, stage: str, step: int) -> None:
    """Drop records of `stage` after `step` (they belong to a run that died before its next checkpoint)."""
    if not path.is_file():
        return
    keep = [r for r in read_metrics(path) if not (r.get("stage") == stage and r.get("step", 0) > step)]
    write_json_lines(path, keep)


class MetricsLogger:
    """Appends records to metrics.jsonl and, when asked, to TensorBoard (needs the `tensorboard` package)."""

    def __init__(self, out: Path, *, tensorboard: bool = False, enabled: bool = True) -> None:
        self.path = out / METRICS_NAME
        self.enabled = enabled
        self._tb = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                self._tb = _summary_writer(out / "tensorboard")

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=json_default) + "\n")
        if self._tb is not None:
            step = record.get("global_step", record.get("step", 0))
            for key, value in record.items():
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and key not in ("step", "global_step")
                ):
                    self._tb.add_scalar(f"{record.get('stage', 'train')}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _summary_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ValueError(
            "tensorboard = true needs the `tensorboard` package (pip install tensorboard)"
        ) from exc
    return SummaryWriter(str(folder))


class TrainProgress:
    """A rich progress bar for one stage showing the loss and samples/s (a no-op when disabled)."""

    def __init__(
        self, stage: str, total: int, start: int, *, enabled: bool, console: Console | None = None
    ) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[speed]} samples/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
                console=console or Console(stderr=True),  # stdout stays for what a caller prints there
            )
            self._task = self._progress.add_task(stage, total=total, completed=start, loss="-", speed="-")

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=step, loss=f"{loss:.4f}", speed=f"{samples_per_s:.1f}"
            )
