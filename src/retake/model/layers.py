"""Small pieces the blocks share: patch grids, 3D RoPE tables, and the attention projections.

The projection modules carry exactly diffusers' HunyuanVideo parameter names (`to_q`, `add_q_proj`, `norm_added_k`,
`to_out.0`, ...) so state dicts load strictly and PEFT targets the usual module names. They only project and
normalise; the attention itself (and its mask) lives in `retake.model.attention`.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import apply_rotary_emb, get_1d_rotary_pos_embed
from diffusers.models.normalization import RMSNorm
from torch import Tensor, nn

Rope = tuple[Tensor, Tensor]  # (cos, sin), each (N, head_dim) float32
Grid = tuple[int, int, int]  # tokens along (time, height, width) after patching


def patch_grid(shape: tuple[int, ...], patch_size_t: int, patch_size: int) -> Grid:
    """(F, H, W) of a latent -> its token grid; ValueError when the patch does not divide the latent."""
    frames, height, width = shape[-3:]
    if frames % patch_size_t or height % patch_size or width % patch_size:
        raise ValueError(
            f"latent (F, H, W) = {(frames, height, width)} is not divisible by the patch "
            f"({patch_size_t}, {patch_size}, {patch_size})"
        )
    return frames // patch_size_t, height // patch_size, width // patch_size


def rope_table(
    grid: Grid, axes_dim: tuple[int, int, int], theta: float, *, time_offset: int = 0, device: torch.device
) -> Rope:
    """cos/sin tables (N, sum(axes_dim)) for a (T, H, W) token grid, tokens in (t, h, w) raster order.

    `time_offset` shifts the temporal positions (the source's RoPE offset); 0 reproduces diffusers'
    `HunyuanVideoRotaryPosEmbed` exactly.
    """
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in grid]
    axes[0] = axes[0] + time_offset
    mesh = torch.meshgrid(*axes, indexing="ij")  # 3 x (T, H, W)
    parts = [
        get_1d_rotary_pos_embed(dim, positions.reshape(-1), theta, use_real=True)
        for dim, positions in zip(axes_dim, mesh, strict=True)
    ]
    cos = torch.cat([c for c, _ in parts], dim=1)
    sin = torch.cat([s for _, s in parts], dim=1)
    return cos, sin


def unpatchify(tokens: Tensor, grid: Grid, patch_size_t: int, patch_size: int) -> Tensor:
    """(B, T*H*W, pt*p*p*C) -> (B, C, T*pt, H*p, W*p), the inverse of the Conv3d patch embedding's layout."""
    batch = tokens.shape[0]
    frames, height, width = grid
    x = tokens.reshape(batch, frames, height, width, -1, patch_size_t, patch_size, patch_size)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T, pt, H, p, W, p)
    return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)


def _heads(x: Tensor, heads: int) -> Tensor:
    return x.unflatten(2, (heads, -1))  # (B, N, H*D) -> (B, N, H, D)


def _project(
    x: Tensor,
    to_q: nn.Linear,
    to_k: nn.Linear,
    to_v: nn.Linear,
    norms: tuple[nn.Module, nn.Module],
    heads: int,
) -> tuple[Tensor, Tensor, Tensor]:
    q = norms[0](_heads(to_q(x), heads))
    k = norms[1](_heads(to_k(x), heads))
    return q, k, _heads(to_v(x), heads)


def _rotate(q: Tensor, k: Tensor, rope: Rope | None) -> tuple[Tensor, Tensor]:
    if rope is None:
        return q, k
    return apply_rotary_emb(q, rope, sequence_dim=1), apply_rotary_emb(k, rope, sequence_dim=1)


class DualStreamAttention(nn.Module):
    """Projections of a dual-stream block: video weights (`to_*`) and text weights (`add_*`), QK RMSNorm."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        dim = num_heads * head_dim
        self.heads = num_heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_q, self.norm_k = RMSNorm(head_dim, eps=eps), RMSNorm(head_dim, eps=eps)
        self.add_q_proj, self.add_k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.add_v_proj = nn.Linear(dim, dim)
        self.norm_added_q, self.norm_added_k = RMSNorm(head_dim, eps=eps), RMSNorm(head_dim, eps=eps)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.to_add_out = nn.Linear(dim, dim)

    def qkv(self, x: Tensor, rope: Rope | None, *, text: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(B, N, D) -> q, k, v (B, N, H, Dh), QK-normalised, rotated when `rope` is given (video only)."""
        if text:
            norms = (self.norm_added_q, self.norm_added_k)
            q, k, v = _project(x, self.add_q_proj, self.add_k_proj, self.add_v_proj, norms, self.heads)
        else:
            norms = (self.norm_q, self.norm_k)
            q, k, v = _project(x, self.to_q, self.to_k, self.to_v, norms, self.heads)
        q, k = _rotate(q, k, rope)
        return q, k, v

    def out(self, x: Tensor, *, text: bool) -> Tensor:
        return self.to_add_out(x) if text else self.to_out[1](self.to_out[0](x))


class SingleStreamAttention(nn.Module):
    """Projections of a single-stream block: one set of weights for every token; no output projection
    (the block's `proj_out` mixes attention and MLP outputs)."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        dim = num_heads * head_dim
        self.heads = num_heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_q, self.norm_k = RMSNorm(head_dim, eps=eps), RMSNorm(head_dim, eps=eps)

    def qkv(self, x: Tensor, rope: Rope | None) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = _project(x, self.to_q, self.to_k, self.to_v, (self.norm_q, self.norm_k), self.heads)
        q, k = _rotate(q, k, rope)
        return q, k, v
