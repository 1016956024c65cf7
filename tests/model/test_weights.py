"""Saved model folders are checked before loading: a missing, cut-short or foreign model is named, not a
diffusers or safetensors traceback."""

from __future__ import annotations

import shutil

import pytest

from retake.demo import EDITOR
from retake.model import build_transformer
from retake.model.convert import convert_icve_checkpoint
from retake.model.vae import VideoVAE
from retake.model.weights import INDEX_NAME, WEIGHTS_NAME, WeightsError, check_model_folder
from retake.sample.bundle import assemble_bundle


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "transformer"
    build_transformer("tiny", seed=0).save_pretrained(folder)
    return folder


def _cut_short(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_whole_folder_passes_and_each_fault_is_named(saved, tmp_path):
    assert check_model_folder(saved, "InContextTransformer") == saved
    with pytest.raises(
        WeightsError, match="holds a 'InContextTransformer', expected a AutoencoderKLHunyuanVideo"
    ):
        check_model_folder(saved, "AutoencoderKLHunyuanVideo")
    with pytest.raises(WeightsError, match=r"no config\.json"):
        check_model_folder(tmp_path)
    _cut_short(saved / WEIGHTS_NAME)
    with pytest.raises(WeightsError, match=f"{WEIGHTS_NAME} is not a readable safetensors file"):
        check_model_folder(saved)
    (saved / WEIGHTS_NAME).unlink()
    with pytest.raises(WeightsError, match=f"has no {WEIGHTS_NAME}.*safetensors weights only"):
        check_model_folder(saved)


def test_sharded_weights_are_checked_shard_by_shard(tmp_path):
    folder = tmp_path / "sharded"
    build_transformer("tiny", seed=0).save_pretrained(folder, max_shard_size="20KB")
    shards = sorted(folder.glob("*-of-*.safetensors"))
    assert len(shards) > 1 and (folder / INDEX_NAME).is_file()
    assert check_model_folder(folder) == folder
    _cut_short(shards[-1])
    with pytest.raises(WeightsError, match=shards[-1].name):
        check_model_folder(folder)
    shards[0].unlink()
    with pytest.raises(WeightsError, match=f"lacks the weight shards {shards[0].name}"):
        check_model_folder(folder)


def test_loaders_and_the_bundle_assembler_refuse_bad_folders_before_loading(saved, tmp_path):
    with pytest.raises(WeightsError, match="expected a AutoencoderKLHunyuanVideo"):
        VideoVAE.from_pretrained(saved)  # `retake cache --vae`, `eval ceiling`, `vae eval`
    vae = tmp_path / "vae"
    shutil.copytree(EDITOR / "vae", vae)
    _cut_short(vae / WEIGHTS_NAME)
    with pytest.raises(WeightsError, match="cut short"):
        VideoVAE.from_pretrained(vae)
    transformer = tmp_path / "shipped"
    shutil.copytree(EDITOR / "transformer", transformer)
    (transformer / WEIGHTS_NAME).unlink()
    with pytest.raises(WeightsError, match=f"has no {WEIGHTS_NAME}"):
        assemble_bundle(tmp_path / "bundle", transformer=transformer, vae=EDITOR / "vae")
    assert not (tmp_path / "bundle").exists()


def test_convert_names_a_cut_short_checkpoint(tmp_path):
    checkpoint = tmp_path / "icve.safetensors"
    checkpoint.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # a header that ends early
    with pytest.raises(WeightsError, match=r"icve\.safetensors is not a readable safetensors file"):
        convert_icve_checkpoint(checkpoint, tmp_path / "out")
    with pytest.raises(ValueError, match=r"is a folder; give the checkpoint's \.safetensors file"):
        convert_icve_checkpoint(tmp_path, tmp_path / "out")


def test_convert_overwrites_a_model_folder_but_never_a_file_or_other_things(tmp_path):
    checkpoint = tmp_path / "icve.safetensors"
    checkpoint.write_bytes(b"")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    with pytest.raises(FileExistsError, match="is a file, not a converted model folder"):
        convert_icve_checkpoint(checkpoint, notes, overwrite=True)
    photos = tmp_path / "photos"
    (photos / "album").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="other things in it"):
        convert_icve_checkpoint(checkpoint, photos, overwrite=True)
    assert notes.read_text() == "keep" and (photos / "album").is_dir()
