"""One training step: each InsViE trick does what it says, draws are keyed by stream position, the loss is the
frame-weighted velocity MSE, and sequence / channel / one-way models all receive the source and train."""

from __future__ import annotations

import math

import pytest
import torch
from train_fixtures import random_sample, random_text, run_config, stage, write_random_cache

from retake.flow.objective import flow_loss, frame_weights
from retake.model import build_transformer
from retake.model.config import Conditioning, Prior
from retake.model.text import TextEmbedding
from retake.train.config import INSVIE_TRICKS, TricksConfig
from retake.train.loader import StreamSample
from retake.train.loop import train
from retake.train.step import collate, compute_loss, make_inputs, sample_generator

B = 4
EMPTY = random_text(99, valid=1)


def _batch(n: int = B):
    return collate([StreamSample(random_sample(i), position=i) for i in range(n)])


def _inputs(tricks: TricksConfig, *, positions=None, **kwargs):
    batch = _batch()
    generators = [sample_generator(0, 0, p) for p in positions or batch.positions]
    return batch, make_inputs(batch, tricks, EMPTY, generators, **kwargs)


def test_no_tricks_trains_on_the_clean_pair():
    batch, inputs = _inputs(TricksConfig())
    assert torch.equal(inputs.source, batch.source)
    assert torch.equal(inputs.text.tokens, batch.text.tokens) and torch.equal(
        inputs.text.mask, batch.text.mask
    )
    noise = inputs.velocity + batch.target  # v = noise - x0
    t = inputs.t.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(inputs.noisy, (1 - t) * batch.target + t * noise)
    assert not (inputs.identity.any() or inputs.text_dropped.any() or inputs.source_dropped.any())


def test_source_dropout_one_gives_zero_sources():
    _, inputs = _inputs(TricksConfig(source_dropout=1.0))
    assert inputs.source_dropped.all() and torch.count_nonzero(inputs.source) == 0


def test_text_dropout_one_gives_the_empty_prompt():
    _, inputs = _inputs(TricksConfig(text_dropout=1.0))
    assert inputs.text_dropped.all()
    assert torch.equal(inputs.text.tokens, EMPTY.tokens.expand(B, -1, -1))
    assert torch.equal(inputs.text.mask, EMPTY.mask.expand(B, -1))
    assert torch.equal(inputs.text.pooled, EMPTY.pooled.expand(B, -1))


def test_identity_samples_target_the_source_with_the_empty_prompt():
    batch, inputs = _inputs(TricksConfig(identity=1.0))
    assert inputs.identity.all() and inputs.text_dropped.all()
    noise = inputs.velocity + batch.source  # x0 is the source, not the target
    t = inputs.t.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(inputs.noisy, (1 - t) * batch.source + t * noise)
    assert torch.equal(inputs.text.tokens, EMPTY.tokens.expand(B, -1, -1))


def test_source_prior_starts_the_path_at_the_clean_source_plus_the_same_noise():
    tricks = TricksConfig(
        source_noise=True, source_dropout=0.5
    )  # the network's source differs from the anchor
    batch, plain = _inputs(tricks)
    _, anchored = _inputs(tricks, prior=Prior.SOURCE)
    noise = plain.velocity + batch.target  # the noise prior's x1, drawn identically for both
    start = batch.source + noise  # the clean source, whatever the tricks did to the network's copy
    t = anchored.t.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(anchored.velocity, start - batch.target)
    torch.testing.assert_close(anchored.noisy, (1 - t) * batch.target + t * start)
    assert torch.equal(anchored.source, plain.source) and anchored.source_dropped.any()
    # an identity sample's path runs from source + noise to the source: its velocity is the noise itself
    _, identity = _inputs(TricksConfig(identity=1.0), prior=Prior.SOURCE)
    _, identity_plain = _inputs(TricksConfig(identity=1.0))
    torch.testing.assert_close(identity.velocity, identity_plain.velocity + batch.source)


def test_source_noise_is_light_and_per_sample():
    batch, inputs = _inputs(TricksConfig(source_noise=True))
    sigma = (inputs.source - batch.source).flatten(1).std(dim=1)  # ~ exp(N(-3, 0.5)) ~ 0.05
    assert bool(((sigma > 0.005) & (sigma < 0.5)).all()) and sigma.unique().numel() == B


def test_probabilities_fire_at_their_rate():
    tricks = TricksConfig(source_dropout=0.05, text_dropout=0.1, identity=0.05)
    batch = collate([StreamSample(random_sample(0), position=p) for p in range(1000)])
    inputs = make_inputs(batch, tricks, EMPTY, [sample_generator(0, 0, p) for p in range(1000)])
    assert 0.02 < inputs.source_dropped.float().mean() < 0.09
    assert 0.02 < inputs.identity.float().mean() < 0.09
    assert 0.1 < inputs.text_dropped.float().mean() < 0.2  # text dropout or identity


def test_draws_depend_on_position_only():
    _, a = _inputs(INSVIE_TRICKS)
    _, b = _inputs(INSVIE_TRICKS)
    _, c = _inputs(INSVIE_TRICKS, positions=[10, 11, 12, 13])
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.t, b.t)
    assert not torch.equal(a.noisy, c.noisy)


def test_guidance_and_text_to_video_inputs():
    _, inputs = _inputs(TricksConfig(), guidance=6.0, conditioning=Conditioning.NONE)
    assert inputs.source is None and torch.equal(inputs.guidance, torch.full((B,), 6000.0))
    assert inputs.model_kwargs()["timestep"].equal(inputs.t * 1000)


class _Zero(torch.nn.Module):
    def forward(self, hidden_states, **_):
        return torch.zeros_like(hidden_states)


def test_loss_is_the_frame_weighted_velocity_mse():
    tricks = TricksConfig(frame_weighting="decay", frame_weight_power=1.0)
    _, inputs = _inputs(tricks)
    weights = frame_weights(inputs.noisy.shape[2], kind="decay", power=1.0)
    assert weights[0] > weights[-1]
    loss = compute_loss(_Zero(), inputs)
    torch.testing.assert_close(
        loss, flow_loss(torch.zeros_like(inputs.velocity), inputs.velocity, frame_weights=weights)
    )
    assert not torch.allclose(loss, flow_loss(torch.zeros_like(inputs.velocity), inputs.velocity))


def test_edit_weight_weighs_what_the_edit_changes():
    batch, plain = _inputs(TricksConfig())
    assert plain.edit_weights is None
    _, weighted = _inputs(TricksConfig(edit_weight=3.0))
    change = (batch.target - batch.source).abs().mean(dim=1, keepdim=True)  # (B, 1, F, H, W)
    torch.testing.assert_close(weighted.edit_weights, 1 + 3.0 * change.clamp(max=1.0))
    assert weighted.edit_weights.shape == (B, 1, *batch.target.shape[2:])
    # where source and target agree the weight is 1; an identity sample weighs 1 everywhere
    _, identity = _inputs(TricksConfig(identity=1.0, edit_weight=3.0))
    assert identity.identity.all() and torch.equal(
        identity.edit_weights, torch.ones_like(identity.edit_weights)
    )
    zero = torch.zeros_like(weighted.velocity)
    expected = ((weighted.velocity**2) * weighted.edit_weights).mean()
    torch.testing.assert_close(compute_loss(_Zero(), weighted), expected)
    assert compute_loss(_Zero(), weighted) > flow_loss(zero, weighted.velocity)
    with pytest.raises(ValueError, match="edit_weight must be >= 0"):
        TricksConfig(edit_weight=-1.0)


@pytest.mark.parametrize(
    "overrides",
    [{"conditioning": "sequence"}, {"conditioning": "channel"}, {"attention": "one-way"}],
    ids=["sequence", "channel", "one-way"],
)
def test_every_conditioning_and_attention_mode_learns_from_the_source(overrides):
    model = build_transformer("tiny", seed=0, **overrides)
    _, inputs = _inputs(TricksConfig())
    source = inputs.source.clone().requires_grad_(True)
    inputs = type(inputs)(**{**vars(inputs), "source": source, "guidance": torch.full((B,), 1000.0)})
    loss = compute_loss(model, inputs)
    loss.backward()
    assert source.grad is not None and source.grad.abs().sum() > 0  # the loss depends on the source
    if overrides.get("conditioning") == "channel":
        patch = model.x_embedder.proj.weight.grad  # (D, 2C, ...): the source half learns too
        assert patch[:, 4:].abs().sum() > 0


@pytest.mark.parametrize(
    "overrides", [{"conditioning": "channel"}, {"attention": "one-way"}], ids=["channel", "one-way"]
)
def test_trainer_runs_channel_and_one_way_models(tmp_path, overrides):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(tmp_path / "run", [stage("s", cache, steps=2, tricks="insvie")], model=overrides)
    result = train(config)
    from retake.model import InContextTransformer

    trained = InContextTransformer.from_pretrained(result.stages[0].transformer)
    key, value = next(iter(overrides.items()))
    assert str(getattr(trained.spec, key)) == value
    fresh = build_transformer(config.model.transformer(), seed=config.seed)
    assert not torch.equal(trained.x_embedder.proj.weight, fresh.x_embedder.proj.weight)
    assert math.isfinite(result.stages[0].final_loss)


def test_text_shape_mismatch_is_named():
    batch = _batch()
    short = TextEmbedding(torch.zeros(1, 3, 16), torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 8))
    with pytest.raises(ValueError, match="empty prompt tokens"):
        make_inputs(
            batch, TricksConfig(text_dropout=1.0), short, [sample_generator(0, 0, p) for p in range(B)]
        )
