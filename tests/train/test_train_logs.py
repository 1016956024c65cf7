"""Logs: metrics.jsonl records and their truncation on resume, the progress bar's loss and samples/s, and a
clear error when TensorBoard is asked for but not installed."""

from __future__ import annotations

import importlib.util
import io

import pytest
from rich.console import Console

from retake.train.logs import MetricsLogger, TrainProgress, read_metrics, truncate_metrics


def test_metrics_are_appended_and_truncated_per_stage(tmp_path):
    logger = MetricsLogger(tmp_path)
    for stage, step in [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3)]:
        logger.log({"stage": stage, "step": step, "loss": 0.5})
    truncate_metrics(logger.path, "b", 1)  # b resumed from its step-1 checkpoint: steps 2, 3 are gone
    assert [(r["stage"], r["step"]) for r in read_metrics(tmp_path)] == [("a", 1), ("a", 2), ("b", 1)]
    MetricsLogger(tmp_path / "other", enabled=False).log({"step": 1})  # ranks > 0 write nothing
    assert not (tmp_path / "other").exists()


def test_a_line_a_kill_cut_short_is_dropped_when_the_run_resumes(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log({"stage": "sft", "step": 1, "loss": 0.5})
    with logger.path.open("a") as handle:
        handle.write('{"stage": "sft", "st')  # the kill came mid-write
    assert read_metrics(tmp_path) == [{"stage": "sft", "step": 1, "loss": 0.5}]
    truncate_metrics(logger.path, "sft", 1)
    logger.log({"stage": "sft", "step": 2, "loss": 0.4})  # the resumed run appends on a clean line
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_progress_bar_shows_loss_and_samples_per_second():
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    with TrainProgress("sft", 10, 0, enabled=True, console=console) as bar:
        bar.update(3, 0.12345, 42.0)
    text = out.getvalue()
    assert "sft" in text and "loss 0.1235" in text and "42.0 samples/s" in text and "3/10" in text


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs the `tensorboard` package"):
        MetricsLogger(tmp_path, tensorboard=True)


def test_the_progress_bar_draws_on_stderr_and_leaves_stdout_to_the_caller(capsys):
    with TrainProgress("sft", 3, 0, enabled=True) as bar:
        bar.update(3, 0.5, 2.0)
    captured = capsys.readouterr()
    assert captured.out == "" and "sft" in captured.err
