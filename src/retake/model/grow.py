"""Depth growth: a deeper transformer that starts as exactly the function of a trained shallower one.

New dual-stream blocks go after the old dual-stream blocks and new single-stream blocks after the old
single-stream ones. Each new block has fresh weights but zero output gates (the adaLN-Zero rows that scale the
attention and MLP branches), so it adds nothing to its residual stream until training moves the gates: the
grown model's output equals the old one's, and training continues from the old model's quality with more
capacity, instead of from scratch. (Progressive stacking, Gong et al. 2019, copies trained blocks instead;
that changes the function, where zero gates keep it.)
"""

from __future__ import annotations

import torch
from torch import nn

from retake.checks import check_int
from retake.model.blocks import DualStreamBlock, SingleStreamBlock
from retake.model.presets import build_transformer
from retake.model.transformer import InContextTransformer

# Chunk positions of the gates in the adaLN linears' outputs (diffusers' order):
# AdaLayerNormZero -> shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
# AdaLayerNormZeroSingle -> shift_msa, scale_msa, gate_msa
_DUAL_GATES = (2, 5)
_SINGLE_GATES = (2,)


def _zero_chunks(linear: nn.Linear, chunks: tuple[int, ...], dim: int) -> None:
    with torch.no_grad():
        for c in chunks:
            linear.weight[c * dim : (c + 1) * dim].zero_()
            linear.bias[c * dim : (c + 1) * dim].zero_()


def silence_block(block: DualStreamBlock | SingleStreamBlock) -> None:
    """Zero a block's output gates in place: it becomes the identity on every token group it sees."""
    if isinstance(block, DualStreamBlock):
        dim = block.norm1.linear.out_features // 6
        _zero_chunks(block.norm1.linear, _DUAL_GATES, dim)
        _zero_chunks(block.norm1_context.linear, _DUAL_GATES, dim)
    else:
        _zero_chunks(block.norm.linear, _SINGLE_GATES, block.norm.linear.out_features // 3)


def grow_depth(
    model: InContextTransformer, num_layers: int, num_single_layers: int, *, seed: int = 0
) -> InContextTransformer:
    """A copy of `model` with `num_layers` dual- and `num_single_layers` single-stream blocks.

    The old blocks keep their places and weights; the added ones (fresh, from `seed`) are silenced, so the
    result computes the same output as `model` (exactly: the gates are zeros).
    ValueError when either depth is not an integer or is below the model's.
    """
    old = model.spec
    num_layers = check_int("num_layers", num_layers)
    num_single_layers = check_int("num_single_layers", num_single_layers)
    if num_layers < old.num_layers or num_single_layers < old.num_single_layers:
        raise ValueError(
            f"grow_depth only adds blocks: asked for {num_layers} dual / {num_single_layers} single, "
            f"the model has {old.num_layers} / {old.num_single_layers}"
        )
    # The fresh blocks' weights come from `seed` (same on every rank and rerun) without touching the global RNG.
    grown = build_transformer(old, seed=seed, num_layers=num_layers, num_single_layers=num_single_layers)
    _, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected, unexpected  # every old weight has its place in the deeper model
    added = (
        list(grown.transformer_blocks)[old.num_layers :]
        + list(grown.single_transformer_blocks)[old.num_single_layers :]
    )
    for block in added:
        silence_block(block)
    return nn.Module.to(grown, next(model.parameters()).dtype)
