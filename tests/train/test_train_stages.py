"""Stages and weights: a two-stage run where stage 2 starts from stage 1, other inits, LoRA that trains only
adapters and saves merged, EMA, gradient checkpointing and bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import run_config, stage, write_random_cache

from retake.model import InContextTransformer, build_transformer
from retake.model.patch import resize_patches
from retake.train.distributed import setup
from retake.train.ema import EMA
from retake.train.export import initial_model
from retake.train.loop import StageTrainer, autocast_dtype, train


def _weights(folder):
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(2, 4, 2, 4, 4, generator=g),
        "timestep": torch.tensor([300.0, 800.0]),
        "encoder_hidden_states": torch.randn(2, 6, 16, generator=g),
        "encoder_attention_mask": torch.ones(2, 6, dtype=torch.bool),
        "pooled_projections": torch.randn(2, 8, generator=g),
        "guidance": torch.full((2,), 1000.0),
        "source": torch.randn(2, 4, 2, 4, 4, generator=g),
    }


def test_stage_two_starts_from_stage_one(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(tmp_path / "run", [stage("one", cache, steps=3), stage("two", cache, steps=2)])
    result = train(config)
    one, two = (_weights(s.transformer) for s in result.stages)
    start = initial_model(config, 1).state_dict()
    assert all(torch.equal(start[k], one[k]) for k in one)
    assert any(not torch.equal(one[k], two[k]) for k in one)  # and stage two trained on


def test_each_stage_that_trains_announces_its_start_once(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 5)
    stages = [
        stage("one", cache, steps=2, optim={"ema_decay": 0.9}),
        stage("two", cache, steps=2, batch=4, init_weights="ema"),
        stage("adapted", cache, steps=1, init="stage:one", lora={"rank": 2}),
    ]
    config = run_config(tmp_path / "run", stages, seed=3)
    starts = []
    train(config, on_stage_start=starts.append)
    one, two, adapted = starts
    total = sum(p.numel() for p in initial_model(config, 0).parameters())
    assert (one.name, one.index, one.stages, one.steps, one.start_step) == ("one", 0, 3, 2, 0)
    assert (one.samples, one.batch, one.device, one.world_size) == (5, 2, "cpu", 1)
    assert one.init == "fresh weights (seed 3)" and one.parameters == one.trainable == total
    assert two.init == "the EMA weights of stage 'one'" and two.batch == 4
    assert (
        adapted.init == "the raw weights of stage 'one'"
        and adapted.parameters > total > adapted.trainable > 0
    )

    announced = []
    train(config, on_stage_start=announced.append)  # a finished run trains nothing, announces nothing
    assert announced == []


def test_stage_and_t2v_inits(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    t2v = build_transformer("tiny", seed=5, conditioning="none")
    t2v.save_pretrained(tmp_path / "t2v")
    stages = [
        stage("one", cache, steps=1),
        stage("two", cache, steps=1, init="stage:one"),
        stage("wide", cache, steps=1, init=f"t2v:{tmp_path / 't2v'}"),
    ]
    config = run_config(tmp_path / "run", stages, model={"conditioning": "channel"})
    train(config)
    assert torch.equal(
        initial_model(config, 1).proj_out.weight,
        _weights(config.out / "stages/one/transformer")["proj_out.weight"],
    )
    wide = initial_model(config, 2).x_embedder.proj.weight  # (D, 2C, 1, 2, 2): [t2v weights | zeros]
    assert torch.equal(wide[:, :4], t2v.x_embedder.proj.weight) and torch.count_nonzero(wide[:, 4:]) == 0


def test_a_noise_prior_model_fine_tunes_into_a_source_prior_one(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    noise = build_transformer("tiny", seed=3, conditioning="channel")
    noise.save_pretrained(tmp_path / "noise")
    config = run_config(
        tmp_path / "run",
        [stage("s", cache, steps=1, init=str(tmp_path / "noise"))],
        model={"conditioning": "channel", "prior": "source"},
    )
    start = initial_model(config, 0)
    assert start.spec.prior == "source" and start.config.prior == "source"  # the spec saves with the weights
    assert all(torch.equal(v, noise.state_dict()[k]) for k, v in start.state_dict().items())
    result = train(config)
    assert InContextTransformer.from_pretrained(result.stages[0].transformer).spec.prior == "source"


def test_init_weights_of_another_architecture_are_refused(tmp_path):
    build_transformer("tiny", seed=0, num_layers=2).save_pretrained(tmp_path / "other")
    cache = write_random_cache(tmp_path / "cache", 2)
    config = run_config(tmp_path / "run", [stage("s", cache, init=str(tmp_path / "other"))])
    with pytest.raises(ValueError, match=r"num_layers=2 \(run: 1\)"):
        train(config)
    missing = run_config(tmp_path / "run", [stage("s", cache, init=str(tmp_path / "nothing"))])
    with pytest.raises(FileNotFoundError, match="init weights not found"):
        train(missing)
    typo = run_config(tmp_path / "run", [stage("s", cache, init="fersh")])
    with pytest.raises(FileNotFoundError, match=r"fersh \(init is fresh, previous, stage:<name>, t2v:<dir>"):
        train(typo)


def test_a_stage_grows_a_trained_model_deeper_and_trains_it(tmp_path):
    shallow = build_transformer("tiny", seed=2, conditioning="channel")
    shallow.save_pretrained(tmp_path / "shallow")
    cache = write_random_cache(tmp_path / "cache", 4)
    deep = {"conditioning": "channel", "num_layers": 2, "num_single_layers": 3}
    refused = run_config(tmp_path / "run", [stage("s", cache, init=str(tmp_path / "shallow"))], model=deep)
    with pytest.raises(ValueError, match="set grow = true"):
        train(refused)

    config = run_config(
        tmp_path / "run", [stage("s", cache, steps=2, init=str(tmp_path / "shallow"), grow=True)], model=deep
    )
    start = initial_model(config, 0)
    with torch.no_grad():
        assert torch.equal(start(**_inputs()), shallow(**_inputs()))  # training starts from the old function
    starts = []
    result = train(config, on_stage_start=starts.append)
    assert starts[0].init == f"{tmp_path / 'shallow'}, grown from 1 + 1 to 2 + 3 blocks"
    trained = InContextTransformer.from_pretrained(result.stages[0].transformer)
    assert (trained.config.num_layers, trained.config.num_single_layers) == (2, 3)
    gate = trained.single_transformer_blocks[2].norm.linear.weight  # (3D, D): shift, scale, gate rows
    assert torch.count_nonzero(gate[2 * gate.shape[1] :]) > 0  # the new block's gate opened

    shrink = run_config(
        tmp_path / "run2",
        [stage("s", cache, init=str(tmp_path / "shallow"), grow=True)],
        model={"conditioning": "channel", "num_layers": 0},
    )
    with pytest.raises(ValueError, match=r"num_layers=1 \(run: 0; grow only adds blocks\)"):
        train(shrink)


def test_a_stage_resizes_a_trained_models_patches_and_trains_it(tmp_path):
    coarse = build_transformer("tiny", seed=2, conditioning="channel")  # 1x2x2 patches
    coarse.save_pretrained(tmp_path / "coarse")
    cache = write_random_cache(tmp_path / "cache", 4)
    fine = {"conditioning": "channel", "patch_size": 1}
    refused = run_config(tmp_path / "run", [stage("s", cache, init=str(tmp_path / "coarse"))], model=fine)
    with pytest.raises(ValueError, match=r"patch_size=2 \(run: 1\), set repatch = true"):
        train(refused)

    config = run_config(
        tmp_path / "run",
        [stage("s", cache, steps=2, init=str(tmp_path / "coarse"), repatch=True)],
        model=fine,
    )
    start = initial_model(config, 0)
    expected = resize_patches(coarse, patch_size=1, patch_size_t=1).state_dict()
    assert all(torch.equal(start.state_dict()[k], v) for k, v in expected.items())
    starts = []
    result = train(config, on_stage_start=starts.append)
    assert starts[0].init == f"{tmp_path / 'coarse'}, patches resized from 1x2x2 to 1x1x1 latents"
    trained = InContextTransformer.from_pretrained(result.stages[0].transformer)
    assert trained.config.patch_size == 1 and trained.proj_out.out_features == 4  # one latent per token
    assert not torch.equal(trained.x_embedder.proj.weight, start.x_embedder.proj.weight)


def test_lora_trains_only_adapters_and_saves_a_merged_plain_model(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=3, optim={"lr": 1e-2}, lora={"rank": 4})])
    trainer = StageTrainer(config, 0, setup("none", "cpu"), progress=False)
    assert trainer.params and all(
        "lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad
    )
    result = trainer.run()

    merged = InContextTransformer.from_pretrained(result.transformer)
    assert not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(**_inputs()), trainer.model(**_inputs()), atol=1e-5, rtol=1e-5)
    fresh = build_transformer(config.model.transformer(), seed=config.seed).state_dict()
    saved = merged.state_dict()
    assert torch.equal(saved["proj_out.weight"], fresh["proj_out.weight"])  # the final layer is not adapted
    assert not torch.equal(
        saved["transformer_blocks.0.attn.to_q.weight"], fresh["transformer_blocks.0.attn.to_q.weight"]
    )


def test_ema_tracks_the_weights():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.75)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(4.0)
    ema.update()
    torch.testing.assert_close(ema.shadow["weight"], start + 1.0)
    with ema.swapped():
        torch.testing.assert_close(model.weight, start + 1.0)
    torch.testing.assert_close(model.weight, start + 4.0)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_ema_export_differs_from_the_raw_weights(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    result = train(run_config(tmp_path / "run", [stage("s", cache, steps=3, optim={"ema_decay": 0.5})]))
    raw, ema = _weights(result.stages[0].transformer), _weights(result.stages[0].ema_transformer)
    assert raw.keys() == ema.keys() and any(not torch.equal(raw[k], ema[k]) for k in raw)


def test_gradient_checkpointing_gives_the_same_training(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    runs = [
        train(
            run_config(
                tmp_path / str(flag), [stage("s", cache, steps=2)], model={"gradient_checkpointing": flag}
            )
        )
        for flag in (False, True)
    ]
    a, b = (_weights(r.stages[0].transformer) for r in runs)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bf16_autocast_where_asked(tmp_path):
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    cache = write_random_cache(tmp_path / "cache", 2)
    result = train(run_config(tmp_path / "run", [stage("s", cache, steps=1)], precision="bf16"))
    assert math.isfinite(result.stages[0].final_loss)
    assert (
        _weights(result.stages[0].transformer)["proj_out.weight"].dtype == torch.float32
    )  # fp32 master weights


def test_a_stage_can_start_from_an_earlier_stage_s_ema_weights(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    stages = [
        stage("one", cache, steps=3, optim={"ema_decay": 0.5}),
        stage("raw", cache, steps=1, init="stage:one"),
        stage("ema", cache, steps=1, init="stage:one", init_weights="ema"),
    ]
    config = run_config(tmp_path / "run", stages)
    train(config)
    ema = _weights(config.out / "stages/one/transformer-ema")
    raw = _weights(config.out / "stages/one/transformer")
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # three steps: the EMA lags the weights
    assert all(torch.equal(v, ema[k]) for k, v in initial_model(config, 2).state_dict().items())
    assert all(torch.equal(v, raw[k]) for k, v in initial_model(config, 1).state_dict().items())


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"init_weights": "best"}], "init_weights must be one of"),
        ([{"init": "fresh", "init_weights": "ema"}], "needs init 'previous' or 'stage:<name>'"),
        ([{}, {"init_weights": "ema"}], "needs an EMA in stage 's0'"),
    ],
)
def test_init_weights_errors_name_the_stage_and_the_problem(tmp_path, stages, message):
    tables = [stage(f"s{i}", tmp_path / "cache", **table) for i, table in enumerate(stages)]
    with pytest.raises(ValueError, match=message):
        run_config(tmp_path / "run", tables)
