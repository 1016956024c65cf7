"""Crash safety of `retake vae train`: a run killed outright (mid-checkpoint, or between checkpoints) and run
again ends with the log, checkpoint and export of an uninterrupted run, and no temporary files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import retake.train.autoencoder as autoencoder
from retake.train.autoencoder import (
    LOG_FILE,
    STATE_FILE,
    AutoencoderTrainConfig,
    VAEArchitecture,
    train_autoencoder,
)

CONFIG = AutoencoderTrainConfig(
    arch=VAEArchitecture(latent_channels=4, block_out_channels=(8, 8, 8), norm_num_groups=4),
    steps=6,
    batch=1,
    size=16,
    crop=None,
    frames=5,
    warmup=1,
    eval_every=3,
    eval_clips=1,
    eval_size=16,
    eval_frames=5,
    checkpoint_every=2,
    log_every=1,
)


class _Killed(BaseException):
    """Stops the run where a kill would."""


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae") / "whole"
    train_autoencoder(CONFIG, out, progress=False)
    return out


def _killed_at_checkpoint(out: Path, step: int, monkeypatch) -> None:
    """Run until the checkpoint of `step` is being written, then die, leaving what a kill mid-write leaves:
    our temporary checkpoint and safetensors' own."""
    real = autoencoder.save_checkpoint

    def save(path, vae, optimizer, info, ema=None):
        if info.step == step:
            (path.parent / f".{path.name}.123.456.tmp").write_bytes(b"\0" * 10)
            (path.parent / ".tmpAbC123").write_bytes(b"\0" * 10)
            raise _Killed
        real(path, vae, optimizer, info, ema)

    monkeypatch.setattr(autoencoder, "save_checkpoint", save)
    with pytest.raises(_Killed):
        train_autoencoder(CONFIG, out, progress=False)
    monkeypatch.undo()
    with (out / LOG_FILE).open("a") as log:
        log.write('{"step": 7, "lo')  # a line cut short


def _log(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _same_run(out: Path, whole: Path) -> None:
    assert _log(out) == _log(whole)  # every step logged once, as in the uninterrupted run
    for name in (STATE_FILE, "vae/diffusion_pytorch_model.safetensors"):
        a, b = load_file(whole / name), load_file(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())


def test_a_run_killed_between_checkpoints_resumes_to_the_uninterrupted_run(whole, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _killed_at_checkpoint(out, 6, monkeypatch)  # steps 5 and 6 logged, the checkpoint holds step 4
    train_autoencoder(CONFIG, out, resume=True, progress=False)
    _same_run(out, whole)


def test_a_run_killed_before_its_first_checkpoint_starts_again_cleanly(whole, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _killed_at_checkpoint(out, 2, monkeypatch)
    assert not (out / STATE_FILE).exists()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_autoencoder(CONFIG, out, resume=True, progress=False)
    train_autoencoder(CONFIG, out, progress=False)  # started again, as the message says
    _same_run(out, whole)
