"""Crash safety of `retake bundle --overwrite` (and of every `files.staged_folder` that replaces a folder, e.g.
the VAE export): a kill while the old bundle is being replaced never leaves a half of it at the output path,
and the rerun replaces it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retake.model.weights import check_model_folder
from retake.sample.bundle import PIPELINE_FILE, VAE_CLASS, assemble_bundle, read_bundle_spec
from retake.sample.config import EditConfig


class _Killed(BaseException):
    """Stops the write where a kill would."""


def _assemble(bundle_dir: Path, out: Path, defaults: EditConfig) -> Path:
    return assemble_bundle(
        out,
        transformer=bundle_dir / "transformer",
        vae=bundle_dir / "vae",
        defaults=defaults,
        overwrite=True,
    )


def _whole(out: Path) -> EditConfig:
    """The sampler defaults of the bundle at `out`, after checking that every part of it is there."""
    check_model_folder(out / "transformer", "InContextTransformer")
    check_model_folder(out / "vae", VAE_CLASS)
    return read_bundle_spec(out).defaults


@pytest.mark.parametrize("first", [PIPELINE_FILE, "diffusion_pytorch_model.safetensors"])
def test_a_bundle_killed_while_replacing_the_old_one_is_never_half_there(
    bundle_dir, tmp_path, monkeypatch, first
):
    old, new = EditConfig.flatland(), EditConfig.icve()
    out = _assemble(bundle_dir, tmp_path / "bundle", old)
    real = shutil.rmtree
    calls = []

    def killed_deleting(path, *args, **kwargs):
        """Deletes one file of the first folder it is given (`first`: the description or some weights), then
        the process dies: nothing runs after, not even the cleanups."""
        calls.append(path)
        if len(calls) == 1:
            next(Path(path).rglob(first)).unlink()
            raise _Killed

    monkeypatch.setattr(shutil, "rmtree", killed_deleting)
    with pytest.raises(_Killed):
        _assemble(bundle_dir, out, new)
    monkeypatch.setattr(shutil, "rmtree", real)
    assert not out.exists() or _whole(out) in (old, new)  # the old bundle, the new one or none
    _assemble(bundle_dir, out, new)  # the rerun replaces what is there
    assert _whole(out) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging or old copy left
