"""Triplets -> what the network trains on: source/target latents and the instruction's text embedding.

`LatentDataset` is the trainer's only view of data. Two implementations: `EncodingDataset` encodes triplets
with the VAE and text encoder on the fly (slow; for small runs and the cache builder), and
`retake.train.cache.LatentCache` reads latents encoded once by `retake cache` (training never loads a VAE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from retake.model.text import TextEmbedding, TextEncoder
from retake.model.vae import VideoVAE
from retake.train.datasets import TripletDataset

EMPTY_PROMPT = ""  # text dropout and identity samples use this prompt's embedding (InsViE, ICVE CFG)


@dataclass(frozen=True)
class LatentSample:
    """One encoded example. source/target (C, F, H, W) latents; text: a batch-of-one TextEmbedding."""

    id: str
    source: Tensor
    target: Tensor
    text: TextEmbedding

    def __post_init__(self) -> None:
        if self.source.shape != self.target.shape or self.source.ndim != 4:
            raise ValueError(
                f"sample {self.id!r}: source {tuple(self.source.shape)} and target "
                f"{tuple(self.target.shape)} latents must be equal (C, F, H, W)"
            )
        if len(self.text) != 1:
            raise ValueError(f"sample {self.id!r}: text must hold one prompt, got {len(self.text)}")


class LatentDataset(Protocol):
    """Indexable encoded samples; `get` raises SampleError for an unusable one. `empty_text` is the empty
    prompt's embedding (batch of one) with the same token length as every sample's text."""

    def __len__(self) -> int: ...

    def ids(self) -> list[str]: ...

    def kinds(self) -> list[str | None]:
        """Each sample's edit kind, None where unknown (see `TripletDataset.kinds`)."""
        ...

    def get(self, index: int) -> LatentSample: ...

    def empty_text(self) -> TextEmbedding: ...


def encode_pair(vae: VideoVAE, source: np.ndarray, target: np.ndarray) -> tuple[Tensor, Tensor]:
    """Two (F, H, W, 3) uint8 clips -> their latents (C, F', H', W') on the CPU, float32; one VAE call."""
    pixels = torch.from_numpy(np.stack([source, target]))  # (2, F, H, W, 3)
    latents = vae.encode(pixels).float().cpu()  # (2, C, F', H', W')
    return latents[0], latents[1]


class EncodingDataset:
    """A TripletDataset encoded on demand (the VAE and text encoder run for every sample)."""

    def __init__(self, triplets: TripletDataset, vae: VideoVAE, text_encoder: TextEncoder) -> None:
        self.triplets = triplets
        self.vae = vae
        self.text_encoder = text_encoder
        self._empty: TextEmbedding | None = None

    def __len__(self) -> int:
        return len(self.triplets)

    def ids(self) -> list[str]:
        return self.triplets.ids()

    def kinds(self) -> list[str | None]:
        return self.triplets.kinds()

    def get(self, index: int) -> LatentSample:
        triplet = self.triplets.load(index)
        source, target = encode_pair(self.vae, triplet.source, triplet.target)
        text = self.text_encoder.encode([triplet.instruction]).to("cpu", torch.float32)
        return LatentSample(triplet.id, source, target, text)

    def empty_text(self) -> TextEmbedding:
        if self._empty is None:
            self._empty = self.text_encoder.encode([EMPTY_PROMPT]).to("cpu", torch.float32)
        return self._empty


def check_clip_size(vae: VideoVAE, frames: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The latent shape of a stage's clips; ValueError naming the frames/size the VAE cannot take."""
    try:
        return vae.latent_shape(frames, *size)
    except ValueError as exc:
        raise ValueError(f"data frames={frames}, size={list(size)}: {exc}") from None
