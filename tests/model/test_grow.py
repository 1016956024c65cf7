"""Depth growth: the grown model computes exactly what the shallower one did, and its new blocks train."""

from __future__ import annotations

import pytest
import torch

from retake.model import build_transformer
from retake.model.grow import grow_depth

_GATE_ROWS = {"dual": (2, 5), "single": (2,)}  # gate chunks of the adaLN linears (diffusers' order)


def _inputs(conditioning: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "hidden_states": torch.randn(2, 4, 2, 4, 4, generator=g),
        "timestep": torch.tensor([300.0, 800.0]),
        "encoder_hidden_states": torch.randn(2, 6, 16, generator=g),
        "encoder_attention_mask": torch.tensor([[1] * 6, [1] * 3 + [0] * 3]),
        "pooled_projections": torch.randn(2, 8, generator=g),
        "guidance": torch.full((2,), 1000.0),
    }
    if conditioning != "none":
        inputs["source"] = torch.randn(2, 4, 2, 4, 4, generator=g)
    return inputs


@pytest.mark.parametrize(
    ("conditioning", "attention"), [("sequence", "full"), ("sequence", "one-way"), ("channel", "full")]
)
def test_the_grown_model_computes_exactly_the_old_function(conditioning, attention):
    old = build_transformer("tiny", seed=1, conditioning=conditioning, attention=attention, num_layers=2)
    grown = grow_depth(old, num_layers=4, num_single_layers=3, seed=7)
    assert (len(grown.transformer_blocks), len(grown.single_transformer_blocks)) == (4, 3)
    assert (grown.config.num_layers, grown.config.num_single_layers) == (4, 3)  # saves as the deeper model
    with torch.no_grad():
        assert torch.equal(grown(**_inputs(conditioning)), old(**_inputs(conditioning)))
    # The old blocks keep their weights and places; the new ones are fresh, not copies.
    old_state, new_state = old.state_dict(), grown.state_dict()
    assert all(torch.equal(new_state[k], v) for k, v in old_state.items())
    assert not torch.equal(
        new_state["transformer_blocks.2.attn.to_q.weight"], old_state["transformer_blocks.1.attn.to_q.weight"]
    )


def test_new_blocks_learn_through_their_gates_first():
    old = build_transformer("tiny", seed=1, conditioning="channel", prediction="residual")
    old.proj_out.weight.data.normal_()  # a residual model starts with a zero output layer; give it one
    grown = grow_depth(old, num_layers=2, num_single_layers=2)
    grown(**_inputs("channel")).square().mean().backward()

    dual, single = grown.transformer_blocks[1], grown.single_transformer_blocks[1]
    dim = dual.norm1.linear.out_features // 6
    for linear, kind in (
        (dual.norm1.linear, "dual"),
        (dual.norm1_context.linear, "dual"),
        (single.norm.linear, "single"),
    ):
        for c in _GATE_ROWS[kind]:
            assert torch.count_nonzero(linear.weight[c * dim : (c + 1) * dim]) == 0
            assert linear.weight.grad[c * dim : (c + 1) * dim].abs().sum() > 0  # the gates open first
    # Behind a closed gate nothing else of the block gets a gradient yet.
    assert dual.ff.net[2].weight.grad.abs().sum() == 0 and single.proj_out.weight.grad.abs().sum() == 0

    before = grown(**_inputs("channel")).detach()
    with torch.no_grad():
        for p in grown.parameters():
            p -= 0.1 * p.grad
    assert not torch.allclose(grown(**_inputs("channel")), before)


def test_growth_keeps_the_dtype_and_only_adds_blocks():
    old = build_transformer("tiny", seed=0, num_layers=2, dtype=torch.float16)
    assert next(grow_depth(old, 3, 1).parameters()).dtype == torch.float16
    with pytest.raises(
        ValueError, match="only adds blocks: asked for 1 dual / 1 single, the model has 2 / 1"
    ):
        grow_depth(old, 1, 1)
    with pytest.raises(ValueError, match=r"num_layers must be an integer, got 2\.0"):
        grow_depth(old, 2.0, 1)  # a float depth used to fail inside torch's ModuleList
