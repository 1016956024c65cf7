"""`retake cache` and `retake train` from the command line: cache with MiniLM, train from the cache with the VAE
path pointing nowhere, one-line errors, and SIGTERM/SIGINT -> checkpoint + non-zero exit -> resume."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from train_fixtures import CHANNELS, write_flatland_pairs, write_random_cache

from retake.cli import main
from retake.train.cache import LatentCache, read_index
from retake.train.checkpoint import latest_checkpoint
from retake.train.logs import read_metrics


def _toml(path: Path, cache: Path, *, steps: int = 2, model: str = "", extra: str = "") -> Path:
    path.write_text(
        f"""
out = "run"
vae = "no-vae-here"
progress = false
checkpoint_every = 5
[model]
preset = "tiny"
{model}
[[stages]]
name = "sft"
steps = {steps}
batch = 2
data = {{ cache = "{cache}" }}
{extra}
"""
    )
    return path


def test_cache_with_minilm_then_train_from_the_cache(tmp_path, vae_dir, capsys):
    pairs = write_flatland_pairs(tmp_path / "pairs", 3)
    cache = tmp_path / "cache"
    main(
        [
            "cache",
            str(pairs),
            str(cache),
            "--vae",
            str(vae_dir),
            "--frames",
            "5",
            "--size",
            "16x16",
            "--no-progress",
        ]
    )
    index = read_index(cache)
    assert index["count"] == 3 and index["text_shape"] == [77, 384] and index["latent_shape"][0] == CHANNELS
    assert "cached 3 samples" in capsys.readouterr().err
    main(["cache", str(pairs), str(cache), "--vae", str(vae_dir), "--frames", "5", "--size", "16x16"])
    assert (
        "already holds this cache (3 samples in 1 shards, 0 skipped); nothing to do"
        in capsys.readouterr().err
    )

    config = _toml(tmp_path / "run.toml", cache, model="text_embed_dim = 384\npooled_projection_dim = 384")
    main(["train", str(config)])
    err = capsys.readouterr().err
    assert "stage sft (1 of 1): 2 steps at batch 2 on 3 samples, from fresh weights (seed 0);" in err
    assert "parameters, all trained; cpu" in err
    assert (tmp_path / "run/stages/sft/transformer/config.json").is_file()
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    assert not (tmp_path / "no-vae-here").exists()


def test_config_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    cache = write_random_cache(tmp_path / "cache", 2)
    config = _toml(tmp_path / "run.toml", cache, extra="optim = { lrr = 1.0 }")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "stages[0].optim.lrr: unknown key" in err and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_exits_non_zero_and_the_rerun_resumes(tmp_path, capsys, sig):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = _toml(tmp_path / "run.toml", cache, steps=400)
    metrics = tmp_path / "run" / "metrics.jsonl"

    def kill_after_first_step() -> None:
        deadline = time.monotonic() + 120
        while not metrics.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), sig)

    threading.Thread(target=kill_after_first_step, daemon=True).start()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config)])
    assert exit_info.value.code == 2
    assert f"stopped by {sig.name}" in capsys.readouterr().err
    stopped = latest_checkpoint(tmp_path / "run/stages/sft/checkpoints").step
    assert 1 <= stopped < 400

    main(["train", str(_toml(tmp_path / "run.toml", cache, steps=stopped + 2))])
    assert (
        f"stage sft (1 of 1): resuming at step {stopped} of {stopped + 2} at batch 2"
        in capsys.readouterr().err
    )
    steps = [r["step"] for r in read_metrics(tmp_path / "run")]
    assert steps == list(range(1, stopped + 3))


def test_cache_in_worker_processes_equals_one_process(tmp_path, vae_dir, capsys):
    pairs = write_flatland_pairs(tmp_path / "pairs", 11, broken=[4])  # more samples than one chunk of 8
    args = ["--vae", str(vae_dir), "--frames", "5", "--size", "16x16", "--shard-size", "4", "--no-progress"]
    main(["cache", str(pairs), str(tmp_path / "one"), *args])
    main(["cache", str(pairs), str(tmp_path / "two"), *args, "--workers", "2"])
    one, two = read_index(tmp_path / "one"), read_index(tmp_path / "two")
    assert one["count"] == two["count"] == 10 and one["skipped_ids"] == two["skipped_ids"] == ["pair004"]
    assert [s["ids"] for s in one["shards"]] == [s["ids"] for s in two["shards"]]  # same order, same shards
    a, b = LatentCache(tmp_path / "one"), LatentCache(tmp_path / "two")
    for i in range(10):
        torch.testing.assert_close(a.get(i).source, b.get(i).source, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.get(i).text.tokens, b.get(i).text.tokens, rtol=0, atol=1e-6)
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", str(pairs), str(tmp_path / "cuda"), *args, "--workers", "2", "--device", "cuda"])
    assert exit_info.value.code == 2 and "workers" in capsys.readouterr().err


def test_the_start_line_notes_a_batch_larger_than_the_data():
    from retake.cli import _stage_start_line
    from retake.train.loop import StageStart

    start = StageStart("sft", 0, 1, 3, 0, 8, 4, "fresh weights (seed 0)", 1000, 1000, "cpu", 1)
    line = _stage_start_line(start)
    assert line.endswith("\nnote: batch 8 is larger than the 4 samples, so every batch repeats some")
    assert "note" not in _stage_start_line(replace(start, batch=4))  # each sample once per batch: no note
