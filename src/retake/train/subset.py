"""A stage's data narrowed to some edit kinds (`data.kinds`), e.g. a curriculum stage on adds and replaces,
or weighted by them (`data.kind_weights`), e.g. the kinds an editor fails drawn three times as often.

The kinds come from the data itself: a Flatland pairs manifest, or the index of a cache built from one
(`retake cache` records them; `retake cache --kinds-only` adds them to a cache built before it did).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from retake.model.text import TextEmbedding
from retake.train.encode import LatentDataset, LatentSample


class KindSubset:
    """The samples of `dataset` whose edit kind is one of `kinds`, in the dataset's order; a LatentDataset."""

    def __init__(self, dataset: LatentDataset, kinds: Sequence[str], where: str = "the data") -> None:
        if not kinds:
            raise ValueError("KindSubset needs at least one kind")
        self.dataset = dataset
        self.indices = kept_indices(dataset.kinds(), kinds, where)
        all_ids = dataset.ids()
        self._ids = [all_ids[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def ids(self) -> list[str]:
        return list(self._ids)

    def kinds(self) -> list[str | None]:
        every = self.dataset.kinds()
        return [every[i] for i in self.indices]

    def get(self, index: int) -> LatentSample:
        return self.dataset.get(self.indices[index])

    def empty_text(self) -> TextEmbedding:
        return self.dataset.empty_text()


def kept_indices(have: Sequence[str | None], kinds: Sequence[str], where: str = "the data") -> list[int]:
    """The positions in `have` (each sample's kind, None: unknown) whose kind is one of `kinds`; ValueError when
    the data records no kinds or lacks one of `kinds`."""
    counts = Counter(have)
    if set(counts) <= {None}:
        raise ValueError(
            f"{where} records no edit kinds, so data.kinds {list(kinds)} cannot select any. Its samples may "
            "have none: `retake curate` pairs and `retake synth` triplets of free-text edits (an image editor's "
            "first frames) name no kind, while Flatland pairs, icve-sft triplets and the Flatland oracles' "
            "triplets do; a cache of such data built before caches kept kinds learns them with `retake cache "
            "DATASET CACHE --kinds-only`"
        )
    absent = [k for k in kinds if k not in counts]
    if absent:
        known = sorted(k for k in counts if k is not None)
        raise ValueError(f"{where} holds no samples of kind {absent} (data.kinds); it has {known}")
    return [i for i, kind in enumerate(have) if kind in kinds]


def select_kinds(dataset: LatentDataset, kinds: Sequence[str], where: str = "the data") -> LatentDataset:
    """`dataset` itself when `kinds` is empty (every kind), else its `KindSubset`."""
    return KindSubset(dataset, kinds, where) if kinds else dataset


def sample_weights(
    have: Sequence[str | None], kind_weights: Mapping[str, float], where: str = "the data"
) -> torch.Tensor | None:
    """(N,) float64 draw weights: each sample's kind's weight, 1 for kinds not named; None without weights
    (the stream then takes every sample once per epoch). ValueError as `kept_indices` for kinds the data
    does not record or hold."""
    if not kind_weights:
        return None
    kept_indices(have, list(kind_weights), f"{where} (data.kind_weights)")
    return torch.tensor([kind_weights.get(kind, 1.0) if kind else 1.0 for kind in have], dtype=torch.float64)


def kind_shares(have: Sequence[str | None], weights: torch.Tensor) -> dict[str, float]:
    """The expected share of the draws that each kind gets under `weights` (kinds sorted by name)."""
    total = float(weights.sum())
    shares: Counter = Counter()
    for kind, weight in zip(have, weights.tolist(), strict=True):
        shares[kind or "unknown"] += weight / total
    return dict(sorted(shares.items()))
