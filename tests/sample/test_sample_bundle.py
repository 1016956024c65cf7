"""Pipeline bundles: the description file, assembling from parts on disk (an ICVE-style bundle from a converted
transformer and a HunyuanVideo checkout), refusing parts that do not fit, and the `retake bundle` / `retake
edit` commands."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from retake.cli import app, main
from retake.demo import CLIPS
from retake.model.text import TEXT_SPEC_FILE, HunyuanTextEncoder, TextEncoderLoadError
from retake.model.weights import WeightsError
from retake.sample.bundle import (
    PIPELINE_FILE,
    BundleError,
    BundleSpec,
    assemble_bundle,
    place_text_encoder,
    read_bundle_spec,
    text_encoder_dims,
    write_bundle_spec,
)
from retake.sample.config import EditConfig
from retake.sample.pipeline import EditPipeline
from retake.video import probe, read

TEXT_PARTS = {"text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", TEXT_SPEC_FILE}


def test_spec_round_trip_and_refusals(tmp_path):
    spec = BundleSpec(EditConfig.insvie(), text_encoder="text_encoder")
    write_bundle_spec(tmp_path, spec)
    assert read_bundle_spec(tmp_path) == spec
    assert spec.text_encoder_source(tmp_path) == tmp_path / "text_encoder"
    data = json.loads((tmp_path / PIPELINE_FILE).read_text())
    (tmp_path / PIPELINE_FILE).write_text(json.dumps({**data, "format_version": 2}))
    with pytest.raises(BundleError, match="format_version 2 is not supported"):
        read_bundle_spec(tmp_path)
    (tmp_path / PIPELINE_FILE).write_text(json.dumps({**data, "defaults": {"steps": 0}}))
    with pytest.raises(BundleError, match="steps must be >= 1, got 0"):
        read_bundle_spec(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(BundleError, match=f"no {PIPELINE_FILE}"):
        read_bundle_spec(tmp_path / "elsewhere")


def test_saved_bundle_layout(tiny_defaults, bundle_dir):
    assert sorted(p.name for p in bundle_dir.iterdir()) == [PIPELINE_FILE, "transformer", "vae"]
    assert list((bundle_dir / "transformer").glob("*.safetensors"))
    assert list((bundle_dir / "vae").glob("*.safetensors"))
    assert not list(bundle_dir.rglob("*.bin")) and not list(bundle_dir.rglob("*.pt"))
    spec = read_bundle_spec(bundle_dir)
    assert (
        spec.text_encoder == "minilm" and spec.defaults == tiny_defaults
    )  # the installed MiniLM, referenced


def test_a_text_encoder_folder_that_cannot_be_read_is_a_user_error_naming_it(tmp_path):
    # The loader's checks, read before any bundle is made: a setting it does not know, or a folder that is
    # neither a spec'd encoder nor a HunyuanVideo layout, is one line naming the folder, not a TypeError.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        TextEncoderLoadError, match=r"empty: no retake_text_encoder\.json and not a HunyuanVideo"
    ):
        text_encoder_dims(empty)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "retake_text_encoder.json").write_text('{"kind": "hunyuan", "bogus": 1}')
    with pytest.raises(TextEncoderLoadError, match=r"odd: unknown hunyuan text encoder settings \['bogus'\]"):
        text_encoder_dims(odd)
    with pytest.raises(TextEncoderLoadError, match="odd: unknown hunyuan"):
        place_text_encoder(odd, tmp_path / "bundle")
    for text, problem in [
        ('{"kind": "mini', r"not JSON \(Unterminated string"),
        ("[1]", r"must be a JSON object with a 'kind', got \[1\]"),
        ('{"kind": "minilm", "bogus": 1}', r"unknown minilm text encoder settings \['bogus'\]"),
    ]:
        (odd / "retake_text_encoder.json").write_text(text)
        with pytest.raises(TextEncoderLoadError, match=problem):
            text_encoder_dims(odd)


def test_text_encoder_dims_come_from_configs(hunyuan_text_dims, hunyuan_checkout):
    assert text_encoder_dims("minilm") == (384, 384)
    assert text_encoder_dims(hunyuan_checkout) == hunyuan_text_dims


def test_assemble_icve_style_bundle_from_a_hunyuan_checkout(
    tmp_path, hunyuan_checkout, icve_transformer_dir, clip
):
    out = assemble_bundle(
        tmp_path / "icve",
        transformer=icve_transformer_dir,
        vae=hunyuan_checkout,  # the checkout's vae/ is found
        text_encoder=hunyuan_checkout,
        defaults=EditConfig.icve(),
    )
    assert not any(p.is_symlink() for p in out.rglob("*"))  # copied: self-contained
    assert {p.name for p in (out / "text_encoder").iterdir()} == TEXT_PARTS  # no decoy transformer
    pipe = EditPipeline.from_pretrained(out)
    assert isinstance(pipe.text_encoder, HunyuanTextEncoder) and pipe.defaults == EditConfig.icve()
    # ICVE's guidance (text CFG 6 against its negative prompt, embedded guidance 1) on a tiny grid.
    result = pipe.edit(clip, "add a hat", steps=1, frames=5, size=(32, 32), progress=False)
    assert result.frames.shape == (5, 32, 32, 3) and result.fps == clip.fps


def test_assemble_with_link_symlinks_the_parts(
    hunyuan_text_dims, tmp_path, hunyuan_checkout, icve_transformer_dir
):
    out = assemble_bundle(
        tmp_path / "linked",
        transformer=icve_transformer_dir,
        vae=hunyuan_checkout / "vae",
        text_encoder=hunyuan_checkout,
        link=True,
    )
    assert (out / "transformer").resolve() == icve_transformer_dir.resolve()
    assert (out / "vae").is_symlink() and (out / "text_encoder" / "text_encoder").is_symlink()
    assert not (out / "text_encoder").is_symlink()  # holds our spec file, so it is a real folder
    assert EditPipeline.from_pretrained(out).transformer.spec.text_embed_dim == hunyuan_text_dims[0]


def test_mismatched_parts_are_refused_before_anything_is_written(
    make_transformer, hunyuan_text_dims, tmp_path, hunyuan_checkout, icve_transformer_dir
):
    wide = tmp_path / "wide"
    make_transformer(hunyuan_text_dims, in_channels=8).save_config(wide)  # configs are all the check reads
    with pytest.raises(ValueError, match="in_channels is 8 but the VAE latent_channels is 4"):
        assemble_bundle(tmp_path / "a", transformer=wide, vae=hunyuan_checkout, text_encoder=hunyuan_checkout)
    with pytest.raises(ValueError, match="text_embed_dim is 32 but the text encoder token width is 384"):
        assemble_bundle(tmp_path / "b", transformer=icve_transformer_dir, vae=hunyuan_checkout)
    with pytest.raises(
        WeightsError, match="holds a 'InContextTransformer', expected a AutoencoderKLHunyuanVideo"
    ):
        assemble_bundle(tmp_path / "c", transformer=icve_transformer_dir, vae=icve_transformer_dir)
    with pytest.raises(  # not "in_channels is 3 but the VAE latent_channels is 4"
        WeightsError, match="holds a 'AutoencoderKLHunyuanVideo', expected a InContextTransformer"
    ):
        assemble_bundle(tmp_path / "d", transformer=hunyuan_checkout / "vae", vae=hunyuan_checkout)
    assert not list(tmp_path.glob("[abcd]*")) and not list(tmp_path.glob(".*.tmp"))


def test_existing_bundle_needs_overwrite(tmp_path, hunyuan_checkout, icve_transformer_dir):
    parts = {"transformer": icve_transformer_dir, "vae": hunyuan_checkout, "text_encoder": hunyuan_checkout}
    out = assemble_bundle(tmp_path / "b", **parts, defaults=EditConfig.flatland())
    with pytest.raises(FileExistsError, match="not empty"):
        assemble_bundle(out, **parts)
    assemble_bundle(out, **parts, defaults=EditConfig.insvie(), overwrite=True)
    assert read_bundle_spec(out).defaults == EditConfig.insvie()


def test_overwrite_replaces_a_bundle_but_never_a_file_or_a_folder_of_other_things(
    tmp_path, hunyuan_checkout, icve_transformer_dir
):
    parts = {"transformer": icve_transformer_dir, "vae": hunyuan_checkout, "text_encoder": hunyuan_checkout}
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(FileExistsError, match="is a file, not a bundle"):
        assemble_bundle(precious, **parts, overwrite=True)
    assert precious.read_text() == "keep me"
    folder = tmp_path / "photos"
    (folder / "album").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"no retake_pipeline\.json"):
        assemble_bundle(folder, **parts, overwrite=True)
    assert (folder / "album").is_dir()
    assert not list(tmp_path.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------
def test_cli_bundle_assembles_a_loadable_bundle(tmp_path, hunyuan_checkout, icve_transformer_dir):
    out = tmp_path / "from_cli"
    args = ["bundle", str(out), "--transformer", str(icve_transformer_dir), "--vae", str(hunyuan_checkout)]
    result = CliRunner().invoke(app, [*args, "--text-encoder", str(hunyuan_checkout), "--defaults", "insvie"])
    assert result.exit_code == 0, result.output
    pipe = EditPipeline.from_pretrained(out)
    assert pipe.defaults == EditConfig.insvie() and isinstance(pipe.text_encoder, HunyuanTextEncoder)


def test_cli_bundle_refuses_mismatched_parts_with_a_clear_error(
    tmp_path, hunyuan_checkout, icve_transformer_dir, capsys
):
    args = [
        "bundle",
        str(tmp_path / "x"),
        "--transformer",
        str(icve_transformer_dir),
        "--vae",
        str(hunyuan_checkout),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)  # --text-encoder defaults to minilm: 384 wide, the transformer wants 32
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines to the terminal width
    assert "text_embed_dim is 32 but the text encoder token width is 384" in err and "Traceback" not in err


def test_cli_edit_writes_the_edited_mp4(tmp_path, bundle_dir, shared_videos, clip):
    out = tmp_path / "out" / "edited.mp4"
    args = ["edit", str(shared_videos / "anyv2v_man-walking.mp4"), "make it snow", "-o", str(out)]
    options = ["--model", str(bundle_dir), "--steps", "1", "--frames", "9", "--size", "48x32", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, *options, "--no-progress"])
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.frame_count, info.height, info.width, info.fps) == (9, 48, 32, clip.fps)
    pipe = EditPipeline.from_pretrained(bundle_dir)
    same, other = (
        pipe.edit(clip, "make it snow", steps=1, frames=9, size=(48, 32), seed=seed, progress=False)
        for seed in (3, 4)
    )
    written = read(out).frames.astype(int)
    # H.264 4:2:0 loses much of a random model's colour noise, but the file is clearly the seed-3 edit.
    assert np.abs(written - same.frames).mean() < 0.5 * np.abs(written - other.frames).mean()


def test_cli_edit_refuses_bad_inputs_and_outputs_before_loading_the_model(tmp_path, capsys):
    (tmp_path / "taken.mp4").mkdir()
    source = str(CLIPS / "recolour.source.mp4")
    cases = [
        (source, "recolour", "taken.mp4", "is a folder"),
        (source, "recolour", "edit.avi", "must end in .mp4 or .gif"),
        (str(tmp_path / "missing.mp4"), "recolour", "edit.mp4", "source video not found"),
        (source, "  ", "edit.mp4", "instruction must be a non-empty string"),
    ]
    for src, instruction, out, reason in cases:
        # The bundle does not exist either: these are checked before it loads.
        with pytest.raises(SystemExit) as stop:
            main(["edit", src, instruction, "-o", str(tmp_path / out), "--model", str(tmp_path / "none")])
        assert stop.value.code == 2 and reason in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]


def test_a_path_inside_a_bundle_names_the_bundle_folder(tmp_path):
    """The description file or a part folder is not the bundle; the error says which folder is."""
    write_bundle_spec(tmp_path, BundleSpec(EditConfig()))
    (tmp_path / "transformer").mkdir()
    hint = re.escape(f"; pass the bundle folder {tmp_path} (it holds {PIPELINE_FILE})")
    with pytest.raises(BundleError, match="is a file, not a retake pipeline bundle folder" + hint):
        read_bundle_spec(tmp_path / PIPELINE_FILE)
    with pytest.raises(BundleError, match=f"no {PIPELINE_FILE}" + hint):
        read_bundle_spec(tmp_path / "transformer")


def test_a_missing_bundle_is_called_missing(tmp_path):
    with pytest.raises(BundleError, match=r"bundle .*nowhere not found"):
        read_bundle_spec(tmp_path / "nowhere")
    with pytest.raises(BundleError, match="is not a retake pipeline bundle"):
        read_bundle_spec(tmp_path)


def test_the_grid_is_read_from_the_configs_as_the_loaded_parts_give_it(make_pipeline, bundle_dir, tmp_path):
    from retake.sample.bundle import bundle_grid

    assert bundle_grid(bundle_dir) == make_pipeline().grid
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    config = json.loads((broken / "vae" / "config.json").read_text())
    del config["temporal_compression_ratio"]
    (broken / "vae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="has no spatial_compression_ratio or temporal_compression_ratio"):
        bundle_grid(broken)
