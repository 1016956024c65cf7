"""The main job (`retake demo`): it makes the footage, pairs and curated pairs it reports, and edits the
shipped clip with the shipped editor into edit.mp4 and side_by_side.gif."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from retake.demo import CLIPS, DEFAULT_CLIP, EDITOR, DemoConfig, edit_clip, load_clip, make_clip, run_demo
from retake.eval.psnr import psnr
from retake.flatland import Edit, judge
from retake.train.config import load_run_config
from retake.video import probe, read


def _console() -> Console:
    return Console(record=True, width=200)


def test_quick_demo_makes_what_it_says(tmp_path):
    console = _console()
    result = run_demo(tmp_path, DemoConfig.quick(), console=console)
    text = console.export_text()
    assert [p.name for p in result.footage] == ["footage_0000.mp4"] and result.footage[0].is_file()
    assert len(result.pairs.read_text().splitlines()) == 6
    ok = [r for r in pq.read_table(result.curated).to_pylist() if r["status"] == "ok"]
    assert len(ok) == result.curated_pairs >= 1 and all(r["instruction"] for r in ok)
    assert "paired edits" in text and "curated pretraining pairs" in text
    if not EDITOR.joinpath("retake_pipeline.json").is_file():
        # No shipped editor (it needs the Flatland VAE): the edit is skipped, and says so.
        assert result.edit is None and "skipping the edit: no editor bundle at" in text
        return
    clip = load_clip(DEFAULT_CLIP)
    source, edited = probe(CLIPS / clip["source"]), probe(result.edit)
    assert result.edit == tmp_path / "edit.mp4" and result.gif == tmp_path / "side_by_side.gif"
    assert edited.frame_count == source.frame_count == clip["frames"] and edited.fps == pytest.approx(
        source.fps
    )
    assert (edited.height, edited.width) == (source.height, source.width)
    assert read(result.gif).width == 3 * 2 * source.width + 2 * 2  # source | edit | truth at 2x, 2 px gaps
    assert str(result.edit) in text and "oracle judge" in text
    verdict = result.verdict
    assert set(verdict) == {"success", "reason", "psnr", "source_psnr"} and verdict["reason"] in text
    truth = read(CLIPS / clip["target"]).frames
    assert verdict["source_psnr"] == pytest.approx(psnr(read(CLIPS / clip["source"]).frames, truth))
    assert f"PSNR vs ground truth {verdict['psnr']:.1f} dB" in text


def test_without_the_editor_the_edit_is_skipped_with_a_message(tmp_path):
    console = _console()
    config = replace(DemoConfig.quick(), editor=tmp_path / "no-editor")
    result = run_demo(tmp_path / "out", config, console=console)
    assert result.edit is None and not (tmp_path / "out" / "edit.mp4").exists()
    assert "skipping the edit: no editor bundle at" in console.export_text()
    assert result.footage[0].is_file()  # the data part still ran


def test_shipped_clips_are_judged_correctly():
    """The oracle accepts each shipped clip's ground truth and rejects its unedited source, so the demo's
    verdict on an edit means something."""
    clips = sorted(CLIPS.glob("*.json"))
    assert DEFAULT_CLIP in clips
    for path in clips:
        clip = load_clip(path)
        source, target = (read(CLIPS / clip[k]).frames for k in ("source", "target"))
        edit = Edit.from_json(clip["edit"])
        assert source.shape == (clip["frames"], *clip["size"], 3)
        assert judge(source, target, edit).success and not judge(source, source, edit).success


def test_make_clip_writes_a_described_triple(tmp_path):
    path = make_clip(tmp_path, "rc", kind="recolour", seed=3)
    clip = json.loads(path.read_text())
    assert clip["edit"]["kind"] == "recolour" and clip["instruction"] and clip["scene"]["objects"]
    source, target = read(tmp_path / clip["source"]), read(tmp_path / clip["target"])
    assert source.num_frames == target.num_frames == 17 and source.fps == 8
    assert not np.array_equal(source.frames, target.frames)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A random flatland-s-shaped editor (1+1 blocks, width 32) with a random 16-channel 4x VAE."""
    from diffusers import AutoencoderKLHunyuanVideo

    from retake.model import build_transformer
    from retake.sample import EditConfig, assemble_bundle

    root = tmp_path_factory.mktemp("bundle")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(
            latent_channels=16,
            block_out_channels=(8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
            spatial_compression_ratio=4,
            mid_block_add_attention=False,
            down_block_types=("HunyuanVideoDownBlock3D",) * 3,
            up_block_types=("HunyuanVideoUpBlock3D",) * 3,
        )
    vae.save_pretrained(root / "vae", safe_serialization=True)
    model = build_transformer(
        "flatland-s",
        seed=0,
        num_layers=1,
        num_single_layers=1,
        num_attention_heads=1,
        attention_head_dim=32,
        rope_axes_dim=(8, 12, 12),
    )
    model.save_pretrained(root / "transformer", safe_serialization=True)
    return assemble_bundle(
        root / "bundle", transformer=root / "transformer", vae=root / "vae", defaults=EditConfig.flatland()
    )


@pytest.mark.slow  # ~40 s on a loaded machine: builds a model and a VAE, and loads MiniLM
def test_edit_clip_keeps_the_clip_timing_and_scores_the_edit(tmp_path, tiny_bundle):
    """With any editor (here a random one: the point is the plumbing), the edit has the clip's frames, size
    and fps, and the verdict compares it with the ground truth."""
    config = replace(DemoConfig.quick(), editor=tiny_bundle, edit_steps=2)
    edit, gif, verdict = edit_clip(tmp_path, config)
    clip = load_clip(config.clip)
    info = probe(edit)
    assert (info.frame_count, info.height, info.width) == (clip["frames"], *clip["size"])
    assert info.fps == pytest.approx(clip["fps"]) and gif.is_file()
    assert (
        verdict["source_psnr"] < 100 and np.isfinite(verdict["psnr"]) and isinstance(verdict["success"], bool)
    )


def test_demo_command_parses_and_calls_the_library(tmp_path, monkeypatch):
    import retake.demo
    from retake.cli import app

    seen = {}
    monkeypatch.setattr(
        retake.demo, "run_demo", lambda out, config, console: seen.update(out=out, config=config)
    )
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "o"), "--quick"])
    assert result.exit_code == 0, result.output
    assert seen == {"out": tmp_path / "o", "config": DemoConfig.quick()}


def test_the_shipped_editor_was_trained_by_the_shipped_configs():
    """README's commands (configs/flatland/editor.toml, then editor_decay.toml, editor_restart.toml,
    editor_more_data.toml, editor_more_data_2.toml and editor_more_data_3.toml, each from the EMA weights of
    the one before) are the training that editor/metrics.json records for the shipped weights."""
    metrics = json.loads((EDITOR / "metrics.json").read_text())
    configs = Path(__file__).resolve().parents[1] / "configs" / "flatland"
    parts = (
        "editor.toml",
        "editor_decay.toml",
        "editor_restart.toml",
        "editor_more_data.toml",
        "editor_more_data_2.toml",
        "editor_more_data_3.toml",
    )
    runs = [load_run_config(configs / name) for name in parts]
    for run, recorded in zip(runs, metrics["training"], strict=True):
        assert run.seed == recorded["seed"]
        assert dict(run.model.overrides) == dict(recorded["model"]["overrides"])
        assert len(run.stages) == len(recorded["stages"])
        for stage, done in zip(run.stages, recorded["stages"], strict=True):
            assert (stage.name, stage.steps, stage.batch) == (done["name"], done["steps"], done["batch"])
            assert _as_json(stage.optim) == done["optim"] and _as_json(stage.tricks) == done["tricks"]
            recorded_caches = done["data"]["cache"]  # one path in runs from before several caches could join
            if isinstance(recorded_caches, str):
                recorded_caches = [recorded_caches]
            assert [p.name for p in stage.data.cache] == [Path(c).name for c in recorded_caches]
    for before, after in pairwise(runs):
        assert after.stages[0].init == str(before.out / "stages" / "sft" / "transformer-ema")
    shipped = json.loads((EDITOR / "transformer" / "config.json").read_text())
    assert (shipped["conditioning"], shipped["prediction"]) == ("channel", "residual")


def _as_json(config: object) -> object:
    """A dataclass config as its JSON record reads back (tuples become lists)."""
    return json.loads(json.dumps(asdict(config)))


def test_the_depth_experiment_grows_the_shipped_editor():
    """configs/flatland/editor_deeper.toml (README, "Twice the depth") starts from part 6's EMA weights and
    grows flatland-s to 4 + 4 blocks, the one thing it changes besides the seed."""
    configs = Path(__file__).resolve().parents[1] / "configs" / "flatland"
    deeper, part6 = (
        load_run_config(configs / name) for name in ("editor_deeper.toml", "editor_more_data_3.toml")
    )
    (stage,) = deeper.stages
    assert stage.grow and stage.init == str(part6.out / "stages" / "sft" / "transformer-ema")
    spec, shipped = deeper.model.transformer(), part6.model.transformer()
    assert (spec.num_layers, spec.num_single_layers) == (4, 4)
    assert (
        replace(spec, num_layers=shipped.num_layers, num_single_layers=shipped.num_single_layers) == shipped
    )
    assert [p.name for p in stage.data.cache] == [p.name for p in part6.stages[0].data.cache]


def test_the_edit_weight_experiment_differs_from_its_control_in_the_weight_alone():
    """configs/flatland/editor_edit_weight.toml and its control editor_more_steps.toml (README, "Seven thousand
    more steps" and "Weighting the edited positions") both continue part 6's EMA weights on its data."""
    configs = Path(__file__).resolve().parents[1] / "configs" / "flatland"
    weighted, control, part6 = (
        load_run_config(configs / name)
        for name in ("editor_edit_weight.toml", "editor_more_steps.toml", "editor_more_data_3.toml")
    )
    assert weighted.stages[0].tricks.edit_weight == 2.0 and control.stages[0].tricks.edit_weight == 0.0
    assert replace(weighted.stages[0], tricks=control.stages[0].tricks) == control.stages[0]
    assert replace(weighted, out=control.out, stages=control.stages) == control
    assert control.stages[0].init == str(part6.out / "stages" / "sft" / "transformer-ema")
    assert control.model == part6.model and control.stages[0].data == part6.stages[0].data


def test_the_shape_curricula_are_the_edit_weight_experiment_on_adds_and_replaces():
    """configs/flatland/editor_shapes.toml (and _w8, at edit_weight 8) train what editor_edit_weight.toml trains,
    on the two edit kinds whose instruction names a shape."""
    configs = Path(__file__).resolve().parents[1] / "configs" / "flatland"
    shapes, shapes_w8, weighted = (
        load_run_config(configs / name)
        for name in ("editor_shapes.toml", "editor_shapes_w8.toml", "editor_edit_weight.toml")
    )
    assert shapes.stages[0].data.kinds == ("add", "replace")
    assert replace(shapes.stages[0].data, kinds=()) == weighted.stages[0].data
    assert replace(shapes.stages[0], data=weighted.stages[0].data) == weighted.stages[0]
    assert replace(shapes, out=weighted.out, stages=weighted.stages) == weighted
    assert shapes_w8.stages[0].tricks.edit_weight == 8.0 and shapes.out != shapes_w8.out
    assert replace(shapes_w8.stages[0], tricks=shapes.stages[0].tricks) == shapes.stages[0]


def test_the_finer_patch_experiment_is_the_edit_weight_experiment_at_1x1_patches():
    """configs/flatland/editor_patch1.toml trains what editor_edit_weight.toml trains, resized to 1x1-latent
    patches, for 3000 steps."""
    configs = Path(__file__).resolve().parents[1] / "configs" / "flatland"
    fine, weighted = (load_run_config(configs / n) for n in ("editor_patch1.toml", "editor_edit_weight.toml"))
    assert fine.model.transformer().patch_size == 1 and weighted.model.transformer().patch_size == 2
    assert fine.stages[0].repatch and fine.stages[0].steps == 3000
    assert replace(fine.stages[0], repatch=False, steps=weighted.stages[0].steps) == weighted.stages[0]
    assert dict(fine.model.overrides) == {**dict(weighted.model.overrides), "patch_size": 1}
    assert replace(fine, out=weighted.out, model=weighted.model, stages=weighted.stages) == weighted
