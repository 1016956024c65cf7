"""The GPU benchmark scripts (issue 5, section 6) cannot be measured here, but their code paths run on CPU with
a tiny model: these keep them from rotting until a GPU measures them."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

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
