"""The GPU benchmark scripts (issue 5, section 6) cannot be measured here, but their code paths run on CPU with
a tiny model: these keep them from rotting until a GPU measures them."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, args: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(BENCHMARKS / script), run_name="__main__")


def test_the_training_step_benchmark_measures_lora_and_full_steps_on_cpu(monkeypatch, capsys):
    tiny = ["--preset", "tiny", "--device", "cpu", "--height", "32", "--width", "32", "--frames", "5"]
    _run("gpu_train_step.py", [*tiny, "--text-tokens", "8", "--steps", "1", "--warmup", "0"], monkeypatch)
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"lora", "full"} <= set(rows)
    lora_params, full_params = (int(rows[m][1].replace(",", "")) for m in ("lora", "full"))
    assert lora_params > 0 and full_params > 0 and lora_params != full_params
    assert float(rows["full"][2]) > 0  # a measured step time in seconds


def test_the_training_step_benchmark_refuses_a_big_model_on_cpu(monkeypatch):
    with pytest.raises(SystemExit, match="refusing to train hunyuan-13b on CPU"):
        _run("gpu_train_step.py", ["--device", "cpu"], monkeypatch)


def test_the_long_edit_benchmark_compares_independent_and_pinned_passes(monkeypatch, capsys):
    args = ["--per-kind", "1", "--kinds", "add,recolour", "--frames", "21", "--steps", "1"]
    _run("long_edits.py", args, monkeypatch)
    table = capsys.readouterr().out.split("s/clip\n")[1].splitlines()
    rows = {int(line.split()[0]): line.split() for line in table if line.strip()}
    assert sorted(rows) == [0, 5]  # independent passes, and the default overlap of 17-frame passes
    for row in rows.values():
        assert row[1] == "2" and float(row[3]) > 0 and row[6].endswith("/2"), row


def test_the_seam_ratio_sees_a_jump_where_a_pass_begins():
    seam_ratio = runpy.run_path(str(BENCHMARKS / "long_edits.py"))["seam_ratio"]
    frames = (
        np.repeat(np.arange(12, dtype=np.uint8)[:, None, None, None], 4, axis=1).repeat(4, 2).repeat(3, 3)
    )
    frames[6:] += 20  # every neighbour differs by 1 level; frames 5 -> 6 by 21
    assert seam_ratio(frames, [6]) == pytest.approx(21.0)
    assert seam_ratio(frames, [3]) < 1
