"""Run configs from TOML: types, defaults, relative paths, the InsViE curriculum as stages, and ValueErrors
that name the bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from retake.model.config import AttentionMode, Conditioning
from retake.train.config import (
    INSVIE_TRICKS,
    DataConfig,
    TricksConfig,
    load_run_config,
    parse_run_config,
)

CURRICULUM = """
out = "runs/insvie"
seed = 7
vae = "weights/vae"

[model]
preset = "tiny"
conditioning = "channel"
gradient_checkpointing = true

# InsViE's multi-stage curriculum: pretrain on the pairs, then strengthen instruction following.
[[stages]]
name = "pretrain"
steps = 100
batch = 8
data = { path = "data/pairs", frames = 9, size = [32, 48] }
optim = { lr = 2e-4, warmup_steps = 10, schedule = "cosine", accumulation = 2, ema_decay = 0.999 }
tricks = "insvie"
lora = { rank = 16 }

[[stages]]
name = "instruct"
steps = 50
batch = 8
init = "previous"
data = { cache = "/abs/cache" }
tricks = { text_dropout = 0.05, identity = 0.1, frame_weighting = "decay" }

[[stages]]
name = "polish"
steps = 10
init = "stage:pretrain"
data = { cache = "cache/b" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "configs" / "run.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_curriculum_parses_into_typed_stages(tmp_path):
    config = load_run_config(_write(tmp_path, CURRICULUM))
    base = tmp_path / "configs"
    assert config.out == base / "runs/insvie" and config.vae == base / "weights/vae" and config.seed == 7
    spec = config.model.transformer()
    assert spec.conditioning is Conditioning.CHANNEL and spec.attention is AttentionMode.FULL
    assert config.model.gradient_checkpointing
    pretrain, instruct, polish = config.stages
    assert pretrain.init == "fresh" and instruct.init == "previous" and polish.init == "stage:pretrain"
    assert (
        pretrain.data.path == base / "data/pairs"
        and pretrain.data.size == (32, 48)
        and pretrain.data.frames == 9
    )
    assert (
        pretrain.optim.accumulation == 2 and pretrain.optim.ema_decay == 0.999 and pretrain.optim.lr == 2e-4
    )
    assert pretrain.tricks == INSVIE_TRICKS and pretrain.lora.rank == 16 and pretrain.lora.enabled
    assert instruct.data.cache == (Path("/abs/cache"),)  # one cache: an array of one
    assert instruct.tricks == TricksConfig(text_dropout=0.05, identity=0.1, frame_weighting="decay")
    assert polish.batch == 1 and polish.tricks == TricksConfig() and not polish.lora.enabled
    assert pretrain.micro_batch(world_size=2) == 2
    with pytest.raises(ValueError, match="does not split over 3 ranks"):
        pretrain.micro_batch(world_size=3)


def test_a_tricks_table_can_start_from_a_preset(tmp_path):
    text = CURRICULUM.replace(
        'tricks = "insvie"', 'tricks = { preset = "insvie", t_shift = 3.0, identity = 0.0 }'
    )
    tricks = load_run_config(_write(tmp_path, text)).stages[0].tricks
    assert tricks == dataclasses.replace(INSVIE_TRICKS, t_shift=3.0, identity=0.0)
    assert tricks.source_noise and tricks.frame_weighting == "decay"  # the rest is the preset's
    for bad, message in (
        ('{ preset = "magic" }', r"stages\[0\]\.tricks: unknown tricks preset 'magic'"),
        ('{ preset = "insvie", t_shift = 0.0 }', r"stages\[0\]\.tricks: t_std and t_shift must be > 0"),
        ('{ preset = "insvie", t_shfit = 3.0 }', r"stages\[0\]\.tricks\.t_shfit: unknown key"),
    ):
        with pytest.raises(ValueError, match=message):
            load_run_config(_write(tmp_path, CURRICULUM.replace('tricks = "insvie"', f"tricks = {bad}")))


def test_several_caches_are_an_array_resolved_against_the_config_file(tmp_path):
    text = CURRICULUM.replace('data = { cache = "cache/b" }', 'data = { cache = ["cache/b", "/abs/more"] }')
    data = load_run_config(_write(tmp_path, text)).stages[2].data
    assert data.cache == (tmp_path / "configs/cache/b", Path("/abs/more"))
    # from Python, one path or a list of paths
    assert DataConfig(cache="c").cache == (Path("c"),)
    assert DataConfig(cache=["c", Path("d")]).cache == (Path("c"), Path("d"))


def test_init_paths_resolve_against_the_config_file(tmp_path):
    text = CURRICULUM.replace('init = "stage:pretrain"', 'init = "t2v:weights/t2v"').replace(
        'init = "previous"', 'init = "converted/icve"'
    )
    config = load_run_config(_write(tmp_path, text))
    assert config.stages[1].init == str(tmp_path / "configs/converted/icve")
    assert config.stages[2].init == "t2v:" + str(tmp_path / "configs/weights/t2v")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("lr = 2e-4", "lrr = 2e-4"), r"stages\[0\]\.optim\.lrr: unknown key"),
        (("lr = 2e-4", "lr = -1.0"), r"stages\[0\]\.optim: lr must be > 0"),
        (("steps = 100", "steps = '100'"), r"stages\[0\]\.steps: expected an integer"),
        (("steps = 100\n", ""), r"stages\[0\]\.steps: missing required key"),
        (("size = [32, 48]", "size = [32]"), r"stages\[0\]\.data\.size: expected an array of 2"),
        (('conditioning = "channel"', 'conditioning = "sideways"'), r"model: conditioning must be one of"),
        (('conditioning = "channel"', "heads = 3"), r"model\.heads: unknown key"),
        (('tricks = "insvie"', 'tricks = "magic"'), r"stages\[0\]\.tricks: unknown tricks preset 'magic'"),
        (
            ("text_dropout = 0.05", "text_dropout = 1.5"),
            r"stages\[1\]\.tricks: text_dropout must be a probability",
        ),
        (('name = "polish"', 'name = "pretrain"'), r"stage names must be unique"),
        (('init = "stage:pretrain"', 'init = "stage:later"'), r"init 'stage:later' names no earlier stage"),
        (
            ("batch = 8\ndata = { path", "batch = 7\ndata = { path"),
            r"batch 7 must be a multiple of optim.accumulation 2",
        ),
        (('schedule = "cosine"', 'schedule = "zigzag"'), r"schedule must be one of"),
        (("seed = 7", 'seed = 7\nprecision = "fp8"'), r"precision must be one of"),
        (
            ('data = { cache = "cache/b" }', "data = { frames = 9 }"),
            r"stages\[2\]\.data: data needs a 'path' or a 'cache'",
        ),
        (
            ('data = { cache = "cache/b" }', 'data = { cache = "cache/b", path = "data/b" }'),
            r"stages\[2\]\.data: data takes a 'path' or a 'cache', not both",
        ),
        (
            ('data = { cache = "cache/b" }', "data = { cache = [1] }"),
            r"stages\[2\]\.data\.cache\[0\]: expected a path string",
        ),
        (("seed = 7", "seed = 7\nbogus = 1"), r"^bogus: unknown key"),
        (("lora = { rank = 16 }", "grow = true"), r"stage 'pretrain': grow needs trained init weights"),
        (
            ('init = "previous"', 'init = "previous"\ngrow = true\nlora = { rank = 4 }'),
            r"stage 'instruct': grow with lora would train nothing in the grown blocks",
        ),
        (("lora = { rank = 16 }", "repatch = true"), r"stage 'pretrain': repatch needs trained init weights"),
        (
            ('init = "previous"', 'init = "previous"\nrepatch = true\nlora = { rank = 4 }'),
            r"stage 'instruct': repatch with lora would freeze the resampled patch embedding",
        ),
        (("seed = 7", "seed = -1"), r"seed must be in 0\.\.4294967295, got -1"),
        (("seed = 7", "seed = 4294967296"), r"seed must be in 0\.\.4294967295"),
        (("lr = 2e-4", "lr = inf"), r"stages\[0\]\.optim: lr must be finite, got inf"),
        (("lr = 2e-4", "lr = nan"), r"lr must be finite, got nan"),
        (("lr = 2e-4", "lr = 2e-4, weight_decay = -0.1"), r"optim: weight_decay must be >= 0, got -0\.1"),
        (("lr = 2e-4", "lr = 2e-4, eps = 0.0"), r"optim: eps must be > 0, got 0\.0"),
        (('name = "pretrain"', 'name = ".."'), r"name must be a word .* got '\.\.'"),
        (('name = "pretrain"', 'name = " "'), r"name must be a word"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, edit, message):
    old, new = edit
    assert old in CURRICULUM
    with pytest.raises(ValueError, match=message):
        load_run_config(_write(tmp_path, CURRICULUM.replace(old, new, 1)))


def test_first_stage_cannot_start_from_previous_and_files_must_exist(tmp_path):
    table = {"stages": [{"name": "a", "steps": 1, "init": "previous", "data": {"cache": "c"}}]}
    with pytest.raises(ValueError, match="init 'previous' needs an earlier stage"):
        parse_run_config(table)
    with pytest.raises(ValueError, match="a run needs at least one"):
        parse_run_config({"stages": []})
    with pytest.raises(FileNotFoundError, match="training config not found"):
        load_run_config(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_run_config(_write(tmp_path, "out = ["))


def test_overrides_are_checked_and_converted_as_the_files_keys_are(tmp_path, monkeypatch):
    path = _write(tmp_path, CURRICULUM)
    monkeypatch.chdir(tmp_path)
    # A path override is taken from the current folder (a path typed at the prompt), as str or Path.
    for out in ("elsewhere/run", Path("elsewhere/run")):
        assert load_run_config(path, out=out).out == tmp_path / "elsewhere/run"
    assert load_run_config(path).out == tmp_path / "configs/runs/insvie"  # the file's own: from its folder
    assert load_run_config(path, device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="outt: unknown key"):
        load_run_config(path, outt="x")
    with pytest.raises(ValueError, match="seed"):
        load_run_config(path, seed=-1)


def test_a_device_name_train_cannot_take_is_refused_when_the_config_is_read(tmp_path):
    path = _write(tmp_path, CURRICULUM)
    for name in ("cpu", "auto", "cuda", "cuda:1"):  # names only: a GPU config may be written on a CPU machine
        assert load_run_config(path, device=name).device == name
    for bad in ("gpu", "cuda:x", "CPU"):
        with pytest.raises(
            ValueError, match=rf"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got '{bad}'"
        ):
            load_run_config(path, device=bad)
