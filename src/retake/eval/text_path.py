"""One text path at a time: which of a model's two text inputs carries a word?

An in-context editor sees the instruction twice: as text tokens that image tokens attend to, and as a pooled
prompt vector that modulates every token alike (adaLN). `OneTextPath` wraps a pipeline's text encoder so that
a prompt reaches the model through one path only; the other path gets the sample's own instruction (`own`).
With `retake.eval.probe` this says which path a word travels: swap the colour word through the tokens only,
and an editor that draws the colour asked reads it there.

The empty prompt (the unconditional branch of classifier-free guidance) passes through whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from retake.model.text import TextEmbedding, TextEncoder

PATHS = ("both", "tokens", "pooled")  # both: no routing; tokens / pooled: the prompt reaches that path only


class OneTextPath:
    """A TextEncoder whose prompts reach the model through `path` ("tokens" or "pooled") only; the other path
    carries the embedding of `own` (set it before each edit; None: every prompt passes whole)."""

    def __init__(self, inner: TextEncoder, path: str) -> None:
        if path not in PATHS[1:]:
            raise ValueError(f"path must be 'tokens' or 'pooled', got {path!r}")
        self.inner = inner
        self.path = path
        self.own: str | None = None
        self.dim, self.pooled_dim = inner.dim, inner.pooled_dim

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        said = self.inner.encode(prompts)  # (B, L, D) tokens, (B, L) mask, (B, P) pooled
        if self.own is None:
            return said
        own = self.inner.encode([self.own]).to(said.tokens.device)  # batch of one, broadcast below
        routed = torch.tensor([bool(p) for p in prompts], device=said.tokens.device)  # not the empty prompt
        if self.path == "tokens":
            pooled = torch.where(routed[:, None], own.pooled.expand_as(said.pooled), said.pooled)
            return TextEmbedding(said.tokens, said.mask, pooled)
        tokens = torch.where(routed[:, None, None], own.tokens.expand_as(said.tokens), said.tokens)
        mask = torch.where(routed[:, None], own.mask.expand_as(said.mask), said.mask)
        return TextEmbedding(tokens, mask, said.pooled)


@contextmanager
def route_text(editor: Any, path: str) -> Iterator[OneTextPath | None]:
    """Within the block, the prompts of `editor` (a bundle editor: it has `pipeline.text_encoder`) reach its
    model through `path` only; yields the router (set its `own`), or None for path "both". The pipeline's own
    encoder is put back on leaving."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "both":
        yield None
        return
    pipeline = getattr(editor, "pipeline", None)
    encoder = getattr(pipeline, "text_encoder", None)
    if encoder is None:
        raise ValueError(
            f"path {path!r} needs an editor that encodes its prompts (a bundle); {type(editor).__name__} has no "
            "text encoder"
        )
    router = OneTextPath(encoder, path)
    pipeline.text_encoder = router
    try:
        yield router
    finally:
        pipeline.text_encoder = encoder


__all__ = ["PATHS", "OneTextPath", "route_text"]
