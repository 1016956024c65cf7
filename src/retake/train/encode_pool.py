"""Encoding a dataset in worker processes, for `retake cache --workers N` on CPU machines.

VAE encoding is the slow part of caching (about 0.4 s a 64x64 Flatland pair on one core) and one PyTorch
process does not use many cores well on such small convolutions, so N processes each load the VAE and text
encoder once and encode chunks of samples. Results come back in dataset order through a bounded window of
chunks, so the cache written is the one a single process writes and memory stays flat however large the
dataset.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from retake.model.text import TextEmbedding
from retake.train.datasets import SampleError
from retake.train.encode import LatentSample

CHUNK = 8  # samples per task: enough to hide the round trip, small enough to spread the tail


@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to rebuild the `EncodingDataset` (everything picklable)."""

    dataset: str
    format: str
    frames: int
    size: tuple[int, int]
    vae: str
    vae_subfolder: str | None
    text_encoder: str
    threads: int = 1  # torch threads per worker: the processes are the parallelism


_ENCODED = None  # the worker's EncodingDataset, built once by _start_worker


def _start_worker(spec: EncoderSpec) -> None:
    global _ENCODED
    from retake.model.text import load_text_encoder
    from retake.model.vae import VideoVAE
    from retake.model.weights import quiet_loading_bars
    from retake.train.datasets import ClipSpec, open_triplets
    from retake.train.encode import EncodingDataset

    torch.set_num_threads(spec.threads)
    quiet_loading_bars()  # N workers' weight-loading bars would break the parent's own progress bar
    triplets = open_triplets(Path(spec.dataset), ClipSpec(spec.frames, spec.size), spec.format)
    vae = VideoVAE.from_pretrained(spec.vae, subfolder=spec.vae_subfolder)
    _ENCODED = EncodingDataset(triplets, vae, load_text_encoder(spec.text_encoder))


def _encode_chunk(indices: range) -> list[LatentSample | tuple[str, str]]:
    """Each sample of `indices` encoded, or (sample id, reason) when it cannot be."""
    out: list[LatentSample | tuple[str, str]] = []
    for index in indices:
        try:
            out.append(_ENCODED.get(index))
        except SampleError as exc:
            out.append((exc.sample_id, exc.reason))
    return out


def _empty_text() -> TextEmbedding:
    return _ENCODED.empty_text()


def encode_in_workers(
    spec: EncoderSpec, count: int, workers: int, start: int = 0
) -> tuple[Iterator[LatentSample | tuple[str, str]], TextEmbedding]:
    """(an iterator over samples start..count-1 in order, each encoded or (id, reason); the empty prompt's
    embedding). The pool lives until the iterator is exhausted or closed."""
    if workers < 2:
        raise ValueError(f"encode_in_workers needs workers >= 2, got {workers}")
    methods = multiprocessing.get_all_start_methods()
    # forkserver/spawn: a fresh interpreter per worker, no copy of the parent's threads or torch state.
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(spec,))
    try:
        empty = pool.submit(_empty_text).result()
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise

    def ordered() -> Iterator[LatentSample | tuple[str, str]]:
        chunks = iter(range(first, min(first + CHUNK, count)) for first in range(start, count, CHUNK))
        window: deque = deque()
        try:
            for chunk in chunks:
                window.append(pool.submit(_encode_chunk, chunk))
                if len(window) >= 2 * workers:
                    break
            while window:
                yield from window.popleft().result()
                chunk = next(chunks, None)
                if chunk is not None:
                    window.append(pool.submit(_encode_chunk, chunk))
        finally:
            pool.shutdown(cancel_futures=True)

    return ordered(), empty
