"""HunyuanVideo's dual- and single-stream MMDiT blocks, rewritten to work on token *groups*.

A group is a run of tokens with one modulation vector and one RoPE table: the source (modulated with the t=0
vector), the noisy target (t) and the text (t). Each group goes through the block's norms, projections and MLPs
on its own; the groups meet only in the joint attention. That is what in-context conditioning needs (per-token
modulation) and what lets a cached source skip everything except being attended to (`prefix_kv`).

Parameter names and the arithmetic match diffusers' `HunyuanVideoTransformerBlock` and
`HunyuanVideoSingleTransformerBlock`, so one group with the t vector reproduces diffusers exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.normalization import AdaLayerNormZero, AdaLayerNormZeroSingle
from torch import Tensor, nn

from retake.model.attention import AttentionMask, masked_attention
from retake.model.layers import DualStreamAttention, Rope, SingleStreamAttention


@dataclass(frozen=True)
class TokenGroup:
    """Tokens that share a modulation vector and positions. tokens: (B, N, D); emb: (B, D); rope: (N, Dh)."""

    tokens: Tensor
    emb: Tensor
    rope: Rope | None = None  # None for text, which has no positions
    text: bool = False  # text tokens use the context weights of dual-stream blocks


@dataclass(frozen=True)
class BlockOutput:
    """New tokens per group, and the keys/values of the groups (B, N, H, Dh) after QK-norm and RoPE."""

    tokens: list[Tensor]
    keys: Tensor
    values: Tensor


def _cat(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _joint_attention(
    qkv: list[tuple[Tensor, Tensor, Tensor]], mask: AttentionMask, prefix_kv: tuple[Tensor, Tensor] | None
) -> tuple[list[Tensor], Tensor, Tensor]:
    """Attend all groups' queries over [prefix | all groups] keys; split the output back per group."""
    query = _cat([q for q, _, _ in qkv])
    keys, values = _cat([k for _, k, _ in qkv]), _cat([v for _, _, v in qkv])
    if prefix_kv is None:
        out = masked_attention(query, keys, values, mask)
    else:
        full_k, full_v = torch.cat([prefix_kv[0], keys], dim=1), torch.cat([prefix_kv[1], values], dim=1)
        out = masked_attention(query, full_k, full_v, mask)
    sizes = [q.shape[1] for q, _, _ in qkv]
    return list(out.split(sizes, dim=1)), keys, values


class DualStreamBlock(nn.Module):
    """Separate weights for video and text tokens, joint attention over both (diffusers' names)."""

    def __init__(self, num_heads: int, head_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        dim = num_heads * head_dim
        self.norm1 = AdaLayerNormZero(dim, norm_type="layer_norm")
        self.norm1_context = AdaLayerNormZero(dim, norm_type="layer_norm")
        self.attn = DualStreamAttention(num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")
        self.norm2_context = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff_context = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")

    def forward(
        self, groups: list[TokenGroup], mask: AttentionMask, prefix_kv: tuple[Tensor, Tensor] | None = None
    ) -> BlockOutput:
        mods, qkv = [], []
        for g in groups:
            norm = self.norm1_context if g.text else self.norm1
            normed, *mod = norm(g.tokens, emb=g.emb)  # mod: gate_msa, shift_mlp, scale_mlp, gate_mlp (B, D)
            mods.append(mod)
            qkv.append(self.attn.qkv(normed, g.rope, text=g.text))
        outs, keys, values = _joint_attention(qkv, mask, prefix_kv)
        tokens = [self._finish(g, out, mod) for g, out, mod in zip(groups, outs, mods, strict=True)]
        return BlockOutput(tokens, keys, values)

    def _finish(self, group: TokenGroup, attn_out: Tensor, mod: list[Tensor]) -> Tensor:
        gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        norm2, ff = (self.norm2_context, self.ff_context) if group.text else (self.norm2, self.ff)
        x = group.tokens + self.attn.out(attn_out, text=group.text) * gate_msa.unsqueeze(1)
        normed = norm2(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp.unsqueeze(1) * ff(normed)


class SingleStreamBlock(nn.Module):
    """One set of weights for all tokens; attention and MLP run in parallel (diffusers' names)."""

    def __init__(self, num_heads: int, head_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        dim = num_heads * head_dim
        mlp_dim = int(dim * mlp_ratio)
        self.attn = SingleStreamAttention(num_heads, head_dim)
        self.norm = AdaLayerNormZeroSingle(dim, norm_type="layer_norm")
        self.proj_mlp = nn.Linear(dim, mlp_dim)
        self.act_mlp = nn.GELU(approximate="tanh")
        self.proj_out = nn.Linear(dim + mlp_dim, dim)

    def forward(
        self, groups: list[TokenGroup], mask: AttentionMask, prefix_kv: tuple[Tensor, Tensor] | None = None
    ) -> BlockOutput:
        gates, mlps, qkv = [], [], []
        for g in groups:
            normed, gate = self.norm(g.tokens, emb=g.emb)
            gates.append(gate)
            mlps.append(self.act_mlp(self.proj_mlp(normed)))  # (B, N, mlp_dim)
            qkv.append(self.attn.qkv(normed, g.rope))
        outs, keys, values = _joint_attention(qkv, mask, prefix_kv)
        tokens = [
            g.tokens + gate.unsqueeze(1) * self.proj_out(torch.cat([out, mlp], dim=2))
            for g, out, mlp, gate in zip(groups, outs, mlps, gates, strict=True)
        ]
        return BlockOutput(tokens, keys, values)
