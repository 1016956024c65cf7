"""Who may attend to whom: the one place that builds the attention mask, and the attention that obeys it.

Keys are always laid out `[source | target | text]`; queries are the same tokens, except that with a source
K/V cache the source has no queries (`query_offset`). Two rules make up every mask:

- text padding (as ICVE and diffusers do it): padded text tokens are never keys; their own queries may look
  anywhere, which is harmless because their outputs are never used;
- one-way: source queries see only source keys, so the source K/V of every layer depend on the source alone.

Rather than materialising the (Q, K) boolean matrix, `masked_attention` runs one SDPA call per query group
(source queries over source keys; everybody else over all keys with the padding mask), which is exact and keeps
flash/efficient kernels usable at 46k tokens. `AttentionMask.dense` gives the matrix itself, for tests and for
reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import Tensor

from retake.model.config import AttentionMode


@dataclass(frozen=True)
class AttentionMask:
    """A structured boolean mask over keys `[source | target | text]`.

    key_valid: (B, K) True where the key may be attended to; None when every key is valid.
    source_only: the first `source_only` tokens (the source, in one-way mode) attend only to each other.
    query_offset: leading keys that have no query (a cached source); 0 without a cache.
    """

    num_keys: int
    key_valid: Tensor | None = None
    source_only: int = 0
    query_offset: int = 0

    @property
    def num_queries(self) -> int:
        return self.num_keys - self.query_offset

    def dense(self, batch_size: int = 1) -> Tensor:
        """The equivalent (B, 1, Q, K) boolean mask (True = may attend)."""
        device = self.key_valid.device if self.key_valid is not None else None
        valid = self.key_valid
        if valid is None:
            valid = torch.ones(batch_size, self.num_keys, dtype=torch.bool, device=device)
        mask = valid[:, None, None, :].expand(-1, 1, self.num_queries, -1).clone()
        if self.source_only:
            rows = self.source_only - self.query_offset  # source queries still present
            mask[:, :, :rows, self.source_only :] = False
        return mask


def attention_mask(
    text_mask: Tensor,
    *,
    num_source: int,
    num_target: int,
    mode: AttentionMode,
    source_cached: bool = False,
) -> AttentionMask:
    """Build the mask for `[source | target | text]` tokens.

    text_mask: (B, L) bool/int, True/1 for real text tokens.
    num_source: source tokens (0 without a source); num_target: target tokens.
    source_cached: the source K/V come from a cache, so source tokens have no queries (one-way only).
    """
    if source_cached and mode is not AttentionMode.ONE_WAY:
        raise ValueError(f"a source K/V cache needs attention 'one-way', got '{mode}'")
    num_keys = num_source + num_target + text_mask.shape[1]
    key_valid = None
    if not bool(text_mask.bool().all()):  # no padding: no mask, so SDPA may pick flash kernels
        video = torch.ones(
            text_mask.shape[0], num_source + num_target, dtype=torch.bool, device=text_mask.device
        )
        key_valid = torch.cat([video, text_mask.bool()], dim=1)
    one_way = mode is AttentionMode.ONE_WAY and num_source > 0 and not source_cached
    return AttentionMask(
        num_keys=num_keys,
        key_valid=key_valid,
        source_only=num_source if one_way else 0,
        query_offset=num_source if source_cached else 0,
    )


def masked_attention(query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask) -> Tensor:
    """Scaled dot-product attention under `mask`. q: (B, Q, H, D), k/v: (B, K, H, D) -> (B, Q, H*D).

    Goes through diffusers' attention dispatcher, so `diffusers.attention_backend(...)` picks the kernel.
    """
    if query.shape[1] != mask.num_queries or key.shape[1] != mask.num_keys:
        raise ValueError(
            f"attention got {query.shape[1]} queries / {key.shape[1]} keys, mask expects "
            f"{mask.num_queries} / {mask.num_keys}"
        )
    padding = None if mask.key_valid is None else mask.key_valid[:, None, None, :]  # (B, 1, 1, K)
    if not mask.source_only:
        out = dispatch_attention_fn(query, key, value, attn_mask=padding)
    else:
        n = mask.source_only  # source keys are never padding, so the source group needs no mask
        source = dispatch_attention_fn(query[:, :n], key[:, :n], value[:, :n])
        rest = dispatch_attention_fn(query[:, n:], key, value, attn_mask=padding)
        out = torch.cat([source, rest], dim=1)
    return out.flatten(2, 3).to(query.dtype)
