"""benchmarks/icve_flatland.py end to end at toy sizes: data, four arms trained, latent evaluation with the
denoising curves, results.json. The numbers mean nothing at this size; the plumbing is what is checked."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from retake.train.autoencoder import VAEArchitecture, build_vae

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "icve_flatland.py"


@pytest.mark.slow
def test_the_experiment_runs_every_arm_and_records_denoising_curves(tmp_path, monkeypatch):
    out = tmp_path / "run"
    # an 8-channel stand-in VAE: flatland-s expects 16 channels, so training works only if the model follows
    # the latents; channel conditioning reaches every arm
    build_vae(VAEArchitecture(latent_channels=8, block_out_channels=(8, 8, 8))).save_pretrained(
        tmp_path / "vae"
    )
    args = [
        str(out),
        "--vae", str(tmp_path / "vae"), "--random-vae",
        "--pretrain-steps", "2", "--sft-steps", "2",
        "--footage-videos", "2", "--footage-seconds", "12", "--sft-pairs", "4", "--bench-per-kind", "1",
        "--workers", "1", "--conditioning", "channel", "--prior", "source", "--prediction", "sample",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    results = json.loads((out / "results.json").read_text())
    assert set(results["per_seed"]) == set(results["denoising"]) == {"A", "B", "C", "A'"}
    for arm, by_seed in results["denoising"].items():
        curve = by_seed["0"]  # JSON made the seed a string
        assert next(iter(curve)) == "t=1" and "copy" in curve, arm
        # two steps of training: the clean estimate is worst at pure noise and best near the data
        assert curve["t=1"] > curve["t=0.5"] > curve["t=0.1"] >= 0, arm
        assert min(curve[f"edit {prompt}"] for prompt in ("own", "other", "empty")) > 0, arm
    assert results["per_seed"]["B"]["0"]["heldout_loss"] > 0
    trained = json.loads(
        (out / "seed0" / "pretrain_sft" / "stages" / "sft" / "transformer" / "config.json").read_text()
    )
    assert trained["in_channels"] == 8 and trained["patch_size"] == 2  # 8x8-pixel tokens at 4x
    assert trained["conditioning"] == "channel" and results["conditioning"] == "channel"
    assert (
        (trained["prior"], trained["prediction"])
        == (results["prior"], results["prediction"])
        == ("source", "sample")
    )

    # the EMA weights evaluated on their own: a second results file, the first one untouched
    raw = (out / "results.json").read_text()
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args, "--phase", "eval", "--ema"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    ema = json.loads((out / "results-ema.json").read_text())
    assert (
        (out / "results.json").read_text() == raw and ema["weights"] == "EMA" and results["weights"] == "raw"
    )
    assert ema["per_seed"]["B"]["0"]["heldout_loss"] != results["per_seed"]["B"]["0"]["heldout_loss"]


def test_a_token_never_holds_more_latent_values_than_the_model_is_wide():
    token_patch = runpy.run_path(str(SCRIPT))["token_patch"]
    assert token_patch(16, spatial=4, width=128) == 2  # the editor's VAE: 8x8 pixels, 64 values
    assert token_patch(32, spatial=2, width=128) == 2  # the 2x VAE: 4x4 would put 512 values in 128 wide
    assert token_patch(32, spatial=2, width=512) == 4  # wide enough for 8x8-pixel tokens
    assert token_patch(16, spatial=8, width=128) == 1  # the VAE alone already makes 8x8-pixel cells
