"""The order samples are trained in, per rank, with skip-and-count for unusable samples.

The global stream is the dataset in a seeded random permutation per epoch, epoch after epoch; stream position p
is sample perm_{p // N}[p % N]. The stream is cut into micro-batch chunks of `micro_batch` samples and chunk k
belongs to rank k % world_size, so one optimiser step of W ranks x A accumulation steps consumes exactly the
next `batch` stream positions whatever W and A are: one process with batch 4 sees the same samples (and, as
the per-sample randomness is keyed by p, the same noise) as two ranks with 2 each.

With draw weights (`data.kind_weights`) an epoch is N draws with replacement instead, sample i drawn with
probability w_i / sum(w), still seeded per epoch, so everything above holds.

A rank's whole state is its cursor q into the positions it owns (plus skip counts), so resuming is exact. A
sample that fails to load is skipped and counted, and the rank moves on to its next own position.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from retake.errors import RetakeError
from retake.train.datasets import SampleError
from retake.train.encode import LatentDataset, LatentSample

MAX_LISTED_SKIPS = 100


class NoUsableSamplesError(RetakeError):
    """Every sample tried in a row failed to load (a whole epoch's worth): the dataset is unusable."""


@dataclass(frozen=True)
class StreamSample:
    """A sample and its global stream position p (the key of its random draws)."""

    sample: LatentSample
    position: int


@dataclass
class SkipLog:
    """Samples skipped so far: a count per reason (the text before the first ':') and the first ids."""

    count: int = 0
    reasons: Counter = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)

    def add(self, error: SampleError) -> None:
        self.count += 1
        self.reasons[error.reason.split(":")[0]] += 1
        if len(self.ids) < MAX_LISTED_SKIPS:
            self.ids.append(error.sample_id)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "reasons": dict(self.reasons), "ids": list(self.ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkipLog:
        return cls(int(data["count"]), Counter(data["reasons"]), list(data["ids"]))


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for one epoch's permutation."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def _weighted_draws(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices drawn with replacement, i with probability w_i / sum(w): by the inverse of the
    cumulative weights (torch.multinomial stops at 2**24 categories, fewer than a large dataset has)."""
    cumulative = weights.cumsum(0)
    uniform = torch.rand(count, generator=generator, dtype=torch.float64) * cumulative[-1]
    return torch.searchsorted(cumulative, uniform, right=True).clamp_(max=len(weights) - 1)


class SampleStream:
    """One rank's view of the stream: `next_batch()` returns its next `micro_batch` usable samples."""

    def __init__(
        self,
        dataset: LatentDataset,
        *,
        seed: int,
        micro_batch: int,
        world_size: int = 1,
        rank: int = 0,
        weights: torch.Tensor | None = None,
    ) -> None:
        if len(dataset) == 0:
            raise NoUsableSamplesError("the dataset is empty")
        if weights is not None and (
            weights.shape != (len(dataset),) or not bool((weights >= 0).all()) or not float(weights.sum()) > 0
        ):
            raise ValueError(
                f"weights must be {len(dataset)} values >= 0 with a positive sum, got {tuple(weights.shape)}"
            )
        self.weights = weights
        if micro_batch < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need micro_batch >= 1 and 0 <= rank < world_size, got {micro_batch}, {rank}, {world_size}"
            )
        self.dataset = dataset
        self.seed = seed
        self.micro_batch = micro_batch
        self.world_size = world_size
        self.rank = rank
        self.cursor = 0  # positions of this rank consumed so far
        self.skips = SkipLog()
        self._perm: tuple[int, torch.Tensor] | None = None  # (epoch, permutation) of the current epoch

    def position(self, cursor: int) -> int:
        """The global stream position of this rank's cursor-th own position."""
        chunk = (cursor // self.micro_batch) * self.world_size + self.rank
        return chunk * self.micro_batch + cursor % self.micro_batch

    def index(self, position: int) -> int:
        """Dataset index at a stream position."""
        n = len(self.dataset)
        epoch = position // n
        if self._perm is None or self._perm[0] != epoch:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            if self.weights is None:
                order = torch.randperm(n, generator=generator)
            else:
                order = _weighted_draws(self.weights, n, generator)
            self._perm = (epoch, order)
        return int(self._perm[1][position % n])

    @property
    def epoch(self) -> int:
        return self.position(self.cursor) // len(self.dataset)

    def next_batch(self) -> list[StreamSample]:
        batch: list[StreamSample] = []
        failures = 0
        while len(batch) < self.micro_batch:
            position = self.position(self.cursor)
            self.cursor += 1
            try:
                batch.append(StreamSample(self.dataset.get(self.index(position)), position))
                failures = 0
            except SampleError as exc:
                self.skips.add(exc)
                failures += 1
                if failures > len(self.dataset):
                    raise NoUsableSamplesError(
                        f"{failures} samples in a row failed to load (last: {exc}); "
                        f"skipped so far: {dict(self.skips.reasons)}"
                    ) from exc
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "micro_batch": self.micro_batch,
            "world_size": self.world_size,
            "rank": self.rank,
            "skips": self.skips.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["micro_batch"], state["world_size"], state["rank"]) != (
            self.micro_batch,
            self.world_size,
            self.rank,
        ):
            raise ValueError(
                f"data state of rank {state['rank']}/{state['world_size']} (micro-batch {state['micro_batch']}) "
                f"does not fit rank {self.rank}/{self.world_size} (micro-batch {self.micro_batch})"
            )
        self.cursor = int(state["cursor"])
        self.skips = SkipLog.from_dict(state["skips"])

    def restart_at(self, consumed: int) -> None:
        """Continue after `consumed` global positions (a resume on another world size: skips shift it a little)."""
        chunk = self.micro_batch * self.world_size
        self.cursor = (consumed // chunk) * self.micro_batch
