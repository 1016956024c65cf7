"""InContextTransformer: the diffusers anchor, sequence/channel conditioning, one-way attention and its source
cache, the attention mask, save/load, PEFT and gradient checkpointing. Tiny models (width 32, 1+1 blocks)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F
from diffusers import HunyuanVideoTransformer3DModel

from retake.model import InContextTransformer, build_transformer
from retake.model.attention import AttentionMask, attention_mask, masked_attention
from retake.model.checkpoints import load_t2v_into_channel
from retake.model.config import AttentionMode
from retake.model.layers import rope_table
from retake.model.transformer import MIN_T, sample_to_velocity

TOL = 1e-5


@dataclass
class Inputs:
    latents: torch.Tensor  # (B, 4, F, H, W)
    timestep: torch.Tensor
    text: torch.Tensor
    text_mask: torch.Tensor
    pooled: torch.Tensor
    guidance: torch.Tensor

    def args(self) -> tuple:
        return self.latents, self.timestep, self.text, self.text_mask, self.pooled

    def branch(self, i: int) -> Inputs:
        """Sample i alone, as one guidance branch of a sampler would pass it."""
        return Inputs(*(t[i : i + 1] for t in vars(self).values()))


def make_inputs(batch: int = 2, frames: int = 3, seed: int = 0, text_len: int = 7) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    valid = [text_len, max(1, text_len - 4)][:batch] + [text_len] * max(0, batch - 2)
    mask = torch.stack([torch.arange(text_len) < n for n in valid]).long()  # right-padded, lengths differ
    return Inputs(
        latents=torch.randn(batch, 4, frames, 4, 6, generator=g),
        timestep=torch.linspace(900.0, 20.0, batch),
        text=torch.randn(batch, text_len, 16, generator=g),
        text_mask=mask,
        pooled=torch.randn(batch, 8, generator=g),
        guidance=torch.full((batch,), 1000.0),
    )


def source_like(x: torch.Tensor, seed: int = 1, frames: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b, c, f, h, w = x.shape
    return torch.randn(b, c, frames or f, h, w, generator=g)


def run(model: InContextTransformer, inp: Inputs, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(*inp.args(), guidance=inp.guidance, **kwargs)


def first_block_groups(model: InContextTransformer, inp: Inputs, **kwargs) -> list:
    """The token groups the first dual-stream block receives."""
    seen = []
    hook = model.transformer_blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    run(model, inp, **kwargs)
    hook.remove()
    return seen[0]


# ------------------------------------------------------------------------------------------------------------
# anchor: equal to diffusers' HunyuanVideoTransformer3DModel
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_diffusers_with_padded_text_and_guidance(batch: int) -> None:
    model = build_transformer("tiny", seed=0)
    reference = HunyuanVideoTransformer3DModel(**model.spec.diffusers_kwargs())
    reference.load_state_dict(model.state_dict(), strict=True)  # same names and shapes, both ways
    inp = make_inputs(batch=2)
    inp = inp if batch == 2 else inp.branch(1)  # the padded sample alone: padding trimmed, no mask at all
    ours = run(model, inp)
    with torch.no_grad():
        theirs = reference(*inp.args(), guidance=inp.guidance).sample
    assert ours.shape == theirs.shape == inp.latents.shape
    assert (ours - theirs).abs().max() <= TOL


def test_no_text_mask_equals_an_all_ones_mask() -> None:
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    inp.text_mask = torch.ones_like(inp.text_mask)
    with torch.no_grad():
        unmasked = model(inp.latents, inp.timestep, inp.text, None, inp.pooled, guidance=inp.guidance)
    assert (unmasked - run(model, inp)).abs().max() <= TOL


def test_a_number_or_a_batch_of_one_serves_every_sample() -> None:
    model = build_transformer("tiny", seed=0)
    inp = replace(make_inputs(), timestep=torch.full((2,), 500.0), guidance=torch.full((2,), 1000.0))
    expected = run(model, inp)
    for timestep in (500.0, torch.tensor(500.0), torch.tensor([500.0])):  # a float or 0-d used to crash
        assert (run(model, replace(inp, timestep=timestep)) - expected).abs().max() <= TOL
    one_text = replace(inp, text=inp.text[:1], text_mask=inp.text_mask[:1], pooled=inp.pooled[:1])
    same_text = replace(inp, text=one_text.text.expand(2, -1, -1), text_mask=one_text.text_mask.expand(2, -1))
    same_text.pooled = one_text.pooled.expand(2, -1)
    assert (run(model, one_text) - run(model, same_text)).abs().max() <= TOL


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestep": torch.full((3,), 500.0)}, r"timestep must be .* B = 2, got shape \(3,\)"),
        ({"guidance": torch.ones(2, 1)}, r"guidance must be .* B = 2, got shape \(2, 1\)"),
        ({"text": torch.randn(3, 7, 16)}, r"encoder_hidden_states must be \(B, L, 16\) .*got \(3, 7, 16\)"),
        ({"text": torch.randn(2, 7, 15)}, r"encoder_hidden_states must be \(B, L, 16\) .*got \(2, 7, 15\)"),
        (
            {"text_mask": torch.ones(2, 5)},
            r"encoder_attention_mask must be \(B, L\) = \(2, 7\).*got \(2, 5\)",
        ),
        ({"pooled": torch.randn(2, 9)}, r"pooled_projections must be \(B, 8\) .*got \(2, 9\)"),
        (
            {"latents": torch.randn(2, 4, 3, 4, 6).half()},
            "hidden_states is torch.float16 but the model runs in",
        ),
        ({"text": torch.randn(2, 7, 16).double()}, "encoder_hidden_states is torch.float64 but the model"),
        ({"latents": torch.randn(2, 4, 0, 4, 6)}, r"hidden_states .* is empty: got shape \(2, 4, 0, 4, 6\)"),
    ],
)
def test_bad_inputs_are_refused_naming_their_shape_or_dtype(change: dict, message: str) -> None:
    """Each of these used to fail inside a torch layer (or an assert) with a message naming no argument."""
    with pytest.raises(ValueError, match=message):
        run(build_transformer("tiny", seed=0), replace(make_inputs(), **change))


def test_autocast_takes_inputs_in_its_own_dtype() -> None:
    """Mixed-precision training feeds bfloat16 into float32 weights; autocast casts, so no dtype error."""
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, replace(inp, latents=inp.latents.bfloat16()))
    torch.testing.assert_close(out.float(), run(model, inp), atol=0.05, rtol=0.05)  # bf16 rounding only


def test_diffusers_state_dict_loads_strictly() -> None:
    reference = HunyuanVideoTransformer3DModel(**build_transformer("tiny").spec.diffusers_kwargs())
    model = build_transformer("tiny")
    model.load_state_dict(reference.state_dict(), strict=True)
    assert model.state_dict().keys() == reference.state_dict().keys()


# ------------------------------------------------------------------------------------------------------------
# sequence conditioning (ICVE)
# ------------------------------------------------------------------------------------------------------------
def test_sequence_source_changes_output_and_returns_target_only() -> None:
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    plain = run(model, inp)
    with_source = run(model, inp, source=source_like(inp.latents))
    other_source = run(model, inp, source=source_like(inp.latents, seed=7))
    assert with_source.shape == inp.latents.shape  # velocity of the target only
    assert (with_source - plain).abs().max() > 1e-3
    assert (with_source - other_source).abs().max() > 1e-3


def test_sequence_source_and_target_share_rope_positions() -> None:
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    source, target, text = first_block_groups(model, inp, source=source_like(inp.latents))
    assert torch.equal(source.rope[0], target.rope[0]) and torch.equal(source.rope[1], target.rope[1])
    assert text.rope is None and text.text


def test_shared_positions_need_equal_shapes() -> None:
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    with pytest.raises(ValueError, match="shared RoPE positions"):
        run(model, inp, source=source_like(inp.latents, frames=5))


def test_time_offset_allows_a_longer_source() -> None:
    model = build_transformer("tiny", seed=0, source_time_offset=-5)
    inp = make_inputs(frames=3)
    source = source_like(inp.latents, frames=5)
    out = run(model, inp, source=source)
    assert out.shape == inp.latents.shape
    groups = first_block_groups(model, inp, source=source)
    expected = rope_table((5, 2, 3), (4, 6, 6), 256.0, time_offset=-5, device=torch.device("cpu"))
    assert torch.equal(groups[0].rope[0], expected[0]) and torch.equal(groups[0].rope[1], expected[1])
    assert groups[0].tokens.shape[1] == 5 * 2 * 3 and groups[1].tokens.shape[1] == 3 * 2 * 3


def test_full_mode_source_uses_the_t0_embedding_with_text_and_guidance() -> None:
    """ICVE's vec_clean: time_in(0) + vector_in(pooled) + guidance_in(g); target and text use t."""
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    source, target, text = first_block_groups(model, inp, source=source_like(inp.latents))
    embed = model.time_text_embed
    with torch.no_grad():
        t0, _ = embed(torch.zeros_like(inp.timestep), inp.pooled, inp.guidance)
        t, _ = embed(inp.timestep, inp.pooled, inp.guidance)
    assert torch.equal(source.emb, t0)
    assert torch.equal(target.emb, t) and torch.equal(text.emb, t)
    assert (t0 - t).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------------------
# one-way attention and the source K/V cache
# ------------------------------------------------------------------------------------------------------------
def test_one_way_source_vector_excludes_the_text() -> None:
    model = build_transformer("tiny", seed=0, attention="one-way")
    inp = make_inputs()
    source, _, _ = first_block_groups(model, inp, source=source_like(inp.latents))
    other = make_inputs(seed=5)  # different pooled text, same guidance
    source_other, _, _ = first_block_groups(model, other, source=source_like(inp.latents))
    assert torch.equal(source.emb, source_other.emb)
    assert torch.equal(source.emb[0], source.emb[1])  # independent of the timestep too


def test_cached_equals_uncached_for_both_guidance_branches() -> None:
    model = build_transformer("tiny", seed=0, attention="one-way")
    inp = make_inputs()
    source = source_like(inp.latents)[:1]
    with torch.no_grad():
        cache = model.build_source_cache(source, guidance=inp.guidance[:1])
    # two branches with different text (one padded) reuse one cache, one sample at a time and as a batch
    for i in range(2):
        branch = inp.branch(i)
        uncached = run(model, branch, source=source)
        cached = run(model, branch, source_cache=cache)
        assert (cached - uncached).abs().max() <= TOL
    batched = run(model, inp, source=source.expand(2, -1, -1, -1, -1))
    assert (run(model, inp, source_cache=cache) - batched).abs().max() <= TOL
    assert (batched - run(model, inp)).abs().max() > 1e-3  # the source matters


def test_one_way_differs_from_full_attention() -> None:
    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    source = source_like(inp.latents)
    full = run(model, inp, source=source)
    model.set_attention_mode("one-way")
    assert model.config.attention == "one-way"
    assert (run(model, inp, source=source) - full).abs().max() > 1e-4


def test_cache_misuse_is_refused() -> None:
    full = build_transformer("tiny", seed=0)
    inp = make_inputs()
    with pytest.raises(ValueError, match="one-way"):
        full.build_source_cache(source_like(inp.latents), guidance=inp.guidance)
    model = build_transformer("tiny", seed=0, attention="one-way")
    with torch.no_grad():
        cache = model.build_source_cache(source_like(inp.latents)[:1], guidance=inp.guidance[:1])
    with pytest.raises(ValueError, match="guidance"):
        model(*inp.args(), guidance=inp.guidance * 2, source_cache=cache)
    with pytest.raises(ValueError, match="either source or source_cache"):
        run(model, inp, source=source_like(inp.latents), source_cache=cache)


# ------------------------------------------------------------------------------------------------------------
# the attention mask
# ------------------------------------------------------------------------------------------------------------
def test_mask_full_one_way_and_cached() -> None:
    text_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # sample 0 has one padded text token
    full = attention_mask(text_mask, num_source=2, num_target=2, mode=AttentionMode.FULL).dense()
    assert full.shape == (2, 1, 7, 7)
    assert not full[0, 0, :, 6].any() and full[0, 0, :, :6].all() and full[1].all()

    one_way = attention_mask(text_mask, num_source=2, num_target=2, mode=AttentionMode.ONE_WAY).dense()
    assert one_way[1, 0, :2, :2].all() and not one_way[1, 0, :2, 2:].any()  # source sees only source
    assert one_way[1, 0, 2:].all()  # target and text see everything

    cached = attention_mask(
        text_mask, num_source=2, num_target=2, mode=AttentionMode.ONE_WAY, source_cached=True
    )
    assert cached.dense().shape == (2, 1, 5, 7)  # no source queries
    assert torch.equal(cached.dense()[:, :, :], full[:, :, 2:])

    assert (
        attention_mask(torch.ones(2, 3), num_source=0, num_target=4, mode=AttentionMode.FULL).key_valid
        is None
    )
    with pytest.raises(ValueError, match="one-way"):
        attention_mask(text_mask, num_source=2, num_target=2, mode=AttentionMode.FULL, source_cached=True)


@pytest.mark.parametrize("mode", list(AttentionMode))
def test_masked_attention_equals_sdpa_with_the_dense_mask(mode: AttentionMode) -> None:
    g = torch.Generator().manual_seed(0)
    text_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    mask = attention_mask(text_mask, num_source=3, num_target=4, mode=mode)
    q, k, v = (torch.randn(2, 10, 2, 8, generator=g) for _ in range(3))
    ours = masked_attention(q, k, v, mask)
    dense = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask.dense()
    )
    assert (ours - dense.transpose(1, 2).flatten(2)).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="queries"):
        masked_attention(q[:, :5], k, v, AttentionMask(num_keys=10))


# ------------------------------------------------------------------------------------------------------------
# channel conditioning (InsViE)
# ------------------------------------------------------------------------------------------------------------
def test_channel_model_with_t2v_weights_equals_t2v_whatever_the_source() -> None:
    t2v = build_transformer("tiny", seed=0, conditioning="none")
    channel = build_transformer("tiny", conditioning="channel")
    assert channel.x_embedder.proj.weight.shape[1] == 8  # [noisy latent, source]
    load_t2v_into_channel(channel, t2v.state_dict())
    inp = make_inputs()
    expected = run(t2v, inp)
    for source in (None, source_like(inp.latents), 100 * source_like(inp.latents, seed=3)):
        assert torch.equal(run(channel, inp, source=source), expected)
    with torch.no_grad():  # once the source half is trained (non-zero), the source does matter
        half = channel.x_embedder.proj.weight[:, 4:]
        half.copy_(0.1 * torch.randn(half.shape, generator=torch.Generator().manual_seed(0)))
    assert (run(channel, inp, source=source_like(inp.latents)) - expected).abs().max() > 1e-3


def test_t2v_model_refuses_a_source() -> None:
    model = build_transformer("tiny", conditioning="none")
    inp = make_inputs()
    with pytest.raises(ValueError, match="takes no source"):
        run(model, inp, source=source_like(inp.latents))


# ------------------------------------------------------------------------------------------------------------
# what the last layer predicts
# ------------------------------------------------------------------------------------------------------------
def test_a_sample_predicting_model_returns_the_velocity_of_its_clean_estimate() -> None:
    inp = make_inputs()
    inp.timestep[:] = torch.tensor([600.0, 10.0])  # the second is below MIN_T * 1000
    source = source_like(inp.latents)
    x0 = run(build_transformer("tiny", seed=0), inp, source=source)  # same weights: the raw last layer
    sample = build_transformer("tiny", seed=0, prediction="sample")
    velocity = run(sample, inp, source=source)
    t = torch.tensor([0.6, MIN_T]).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(velocity, (inp.latents - x0) / t)
    # an Euler step from t <= MIN_T to 0 lands on the clean estimate itself
    torch.testing.assert_close((inp.latents - MIN_T * velocity)[1], x0[1])
    torch.testing.assert_close(sample_to_velocity(x0, inp.latents, inp.timestep), velocity)


def test_a_residual_model_adds_its_output_to_the_source() -> None:
    inp = make_inputs()
    inp.timestep[:] = torch.tensor([600.0, 10.0])
    source = source_like(inp.latents)
    velocity_model = build_transformer("tiny", seed=0)
    residual = build_transformer("tiny", prediction="residual")
    residual.load_state_dict(velocity_model.state_dict())  # same weights: the raw last layer
    change = run(velocity_model, inp, source=source)
    expected = sample_to_velocity(source + change, inp.latents, inp.timestep)
    torch.testing.assert_close(run(residual, inp, source=source), expected)
    # no source (guidance's unconditional branch): the change is added to zeros, as source dropout trains it
    no_source = run(velocity_model, inp, source=None)
    torch.testing.assert_close(run(residual, inp), sample_to_velocity(no_source, inp.latents, inp.timestep))
    with pytest.raises(ValueError, match="source must be shaped like hidden_states"):
        run(residual, inp, source=source_like(inp.latents, frames=2))


def test_a_fresh_residual_model_is_the_identity_edit() -> None:
    """Zero last layer: the clean estimate is the source, so a flow step from any t to 0 lands on it and an
    identity sample (target = source) costs no loss."""
    from retake.flow.objective import flow_loss, interpolate, velocity_target

    inp = make_inputs()
    source = source_like(inp.latents)
    model = build_transformer("tiny", seed=0, prediction="residual")
    t = torch.tensor([0.9, 0.3])
    noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(5))
    noisy = interpolate(source, noise, t)
    inp = Inputs(noisy, t * 1000, inp.text, inp.text_mask, inp.pooled, inp.guidance)
    velocity = run(model, inp, source=source)
    torch.testing.assert_close(noisy - t.view(-1, 1, 1, 1, 1) * velocity, source)
    assert float(flow_loss(velocity, velocity_target(source, noise))) < 1e-10


# diffusers integration: save/load, PEFT, gradient checkpointing
# ------------------------------------------------------------------------------------------------------------
def test_save_pretrained_round_trip(tmp_path) -> None:
    model = build_transformer("tiny", seed=0, attention="one-way", source_time_offset=4)
    model.save_pretrained(tmp_path)
    loaded = InContextTransformer.from_pretrained(tmp_path)
    assert loaded.spec == model.spec
    anchored = build_transformer("tiny", seed=0, prior="source", prediction="sample")
    anchored.save_pretrained(tmp_path / "anchored")
    spec = InContextTransformer.from_pretrained(tmp_path / "anchored").spec
    assert (spec.prior, spec.prediction) == ("source", "sample")
    inp = make_inputs()
    source = source_like(inp.latents, frames=2)
    assert torch.equal(run(loaded, inp, source=source), run(model, inp, source=source))


def test_peft_lora_adapter_attaches_and_trains_only_lora() -> None:
    from peft import LoraConfig

    model = build_transformer("tiny", seed=0)
    inp = make_inputs()
    source = source_like(inp.latents)
    before = run(model, inp, source=source)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 4 + 4 + 3  # refiner block and dual block: q, k, v, out; single block: q, k, v
    assert torch.equal(run(model, inp, source=source), before)  # LoRA starts as a no-op
    with torch.no_grad():
        for p in lora_b:
            p.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    assert (run(model, inp, source=source) - before).abs().max() > 1e-3
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    inp = make_inputs()
    source = source_like(inp.latents)
    grads = []
    for checkpointing in (False, True):
        model = build_transformer("tiny", seed=0, attention="one-way")
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(*inp.args(), guidance=inp.guidance, source=source).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_group_offloading_keeps_outputs() -> None:
    inp = make_inputs()
    source = source_like(inp.latents)
    expected = run(build_transformer("tiny", seed=0), inp, source=source)
    model = build_transformer("tiny", seed=0)
    cpu = torch.device("cpu")
    model.enable_group_offload(cpu, offload_device=cpu, offload_type="block_level", num_blocks_per_group=1)
    assert torch.equal(run(model, inp, source=source), expected)
