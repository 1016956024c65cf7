"""The latent and text cache: a dataset encoded once, so training never runs (or even loads) the VAE.

    OUT/
      index.json                 format, counts, shapes, which encoders, shard list with ids (and edit kinds),
                                 skipped samples
      empty_text.safetensors     the empty prompt's embedding (text dropout, identity samples)
      shard-000000.safetensors   source, target (N, C, F, H, W); tokens (N, L, D); mask (N, L) bool; pooled (N, P)

Shards are written to a temporary name and renamed, the index last, so a killed build leaves no index and no
half shard. Reading memory-maps a shard and slices one row per sample (`safe_open().get_slice`), which costs
microseconds against the milliseconds of a training step (see benchmarks/train_throughput.py).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import track
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from retake.checks import check_int, describe_changes, size_pair
from retake.errors import RetakeError
from retake.files import as_read_back, remove_leftovers, replacing, write_json
from retake.model.text import TextEmbedding
from retake.train.datasets import SampleError, TripletDataset
from retake.train.encode import LatentDataset, LatentSample
from retake.train.encode_pool import EncoderSpec, encode_in_workers

if TYPE_CHECKING:
    from retake.model.vae import VideoVAE

CACHE_FORMAT = "retake-latent-cache"
CACHE_VERSION = 1
INDEX_NAME = "index.json"
EMPTY_TEXT_NAME = "empty_text.safetensors"
MAX_LISTED_SKIPS = 1000  # skipped ids kept in the index (the count is always exact)


class CacheError(RetakeError):
    """A cache folder that is missing, unfinished or of another format."""


@dataclass(frozen=True)
class CacheSummary:
    """What a cache build wrote."""

    root: Path
    count: int
    shards: int
    skipped: dict[str, int]
    skipped_ids: list[str]
    resumed: int = 0  # dataset samples an interrupted build had already done (cached or skipped)
    existing: bool = False  # the cache was already finished (a rerun of the same build): nothing was encoded


def shard_file(index: int) -> str:
    return f"shard-{index:06d}.safetensors"


def _atomic_save(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    with replacing(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)


def _text_tensors(text: TextEmbedding, dtype: torch.dtype) -> dict[str, Tensor]:
    return {"tokens": text.tokens.to(dtype), "mask": text.mask.bool(), "pooled": text.pooled.to(dtype)}


@dataclass
class CacheWriter:
    """Collects encoded samples into fixed-size shards; `finish` writes the index. Samples must agree on the
    latent and text shapes (the first sample sets them).

    A folder left by an interrupted build (shards, no index) is resumed: each shard records in its metadata
    the ids it holds, how many dataset samples had been consumed and what was skipped, so the writer
    restores that state and `consumed` says where the encoder picks up. The shards must have been written
    with the same `info` (dataset, VAE, text encoder, clip size) and dtype; otherwise it is a CacheError.
    Skip counts are keyed by the reason's kind, the text before its first ':' ("cannot read video").
    """

    root: Path
    shard_size: int = 256
    dtype: torch.dtype = torch.float32
    info: dict[str, Any] = field(default_factory=dict)
    resume: bool = True  # False: an unfinished build's shards are written over, not taken over
    _pending: list[LatentSample] = field(default_factory=list)
    _shards: list[dict[str, Any]] = field(default_factory=list)
    _shapes: dict[str, tuple[int, ...]] | None = None
    _skipped: Counter = field(default_factory=Counter)
    _skipped_ids: list[str] = field(default_factory=list)
    _examples: dict[str, str] = field(default_factory=dict)  # skip kind -> its first sample and reason
    _created: list[Path] = field(default_factory=list)  # the folders this writer made, deepest first
    consumed: int = field(default=0, init=False)  # dataset samples cached or skipped: where encoding resumes
    resumed: int = field(default=0, init=False)  # of those, how many an interrupted build had done

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.root.exists() and not self.root.is_dir():  # else mkdir's bare "[Errno 17] File exists"
            raise FileExistsError(f"{self.root} is a file, not a folder for a latent cache; choose another")
        if (self.root / INDEX_NAME).exists():
            raise FileExistsError(
                f"{self.root} already holds a latent cache ({INDEX_NAME}); choose another folder"
            )
        self._created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self._resume()
        self.resumed = self.consumed

    def _resume(self) -> None:
        """Take over the readable shards an interrupted build left, in order, up to the first missing one."""
        remove_leftovers(self.root)  # half-written shards and index of a build killed outright
        while (path := self.root / shard_file(len(self._shards))).is_file():
            try:
                with safe_open(path, framework="pt") as handle:
                    meta = handle.metadata() or {}
                    shapes = {
                        "latents": tuple(handle.get_slice("source").get_shape()[1:]),
                        "tokens": tuple(handle.get_slice("tokens").get_shape()[1:]),
                        "pooled": tuple(handle.get_slice("pooled").get_shape()[1:]),
                    }
            except (SafetensorError, OSError):
                return  # a damaged shard is encoded again, as are the ones after it
            if "consumed" not in meta:
                return  # written by a retake without resumable shards: start over
            changed = _differences(json.loads(meta["info"]), self._resume_info())
            if changed:
                raise CacheError(
                    f"{self.root} holds the shards of an unfinished cache made with other settings ({changed}); "
                    "resume it with the settings it was started with, or delete the folder or choose another"
                )
            ids = json.loads(meta["ids"])
            self._shards.append({"file": path.name, "count": len(ids), "ids": ids})
            self._shapes = shapes
            self.consumed = int(meta["consumed"])
            self._skipped = Counter(json.loads(meta["skipped"]))
            self._skipped_ids = json.loads(meta["skipped_ids"])

    def check_resumed(self, ids: list[str]) -> None:
        """The resumed shards hold samples of the dataset's first `consumed` ids (`ids`), in order."""
        cached = (i for shard in self._shards for i in shard["ids"])
        if self.consumed > len(ids) or not _in_order(cached, ids[: self.consumed]):
            raise CacheError(
                f"the unfinished cache in {self.root} holds samples this dataset does not have in that order; "
                f"delete it or choose another folder"
            )

    def _resume_info(self) -> dict[str, Any]:
        """What shards must agree on to be resumed: the build's info and the stored dtype."""
        return as_read_back({**self.info, "dtype": str(self.dtype)})

    def add(self, sample: LatentSample) -> None:
        shapes = {
            "latents": tuple(sample.source.shape),
            "tokens": tuple(sample.text.tokens.shape[1:]),
            "pooled": tuple(sample.text.pooled.shape[1:]),
        }
        if self._shapes is None:
            self._shapes = shapes
        elif shapes != self._shapes:
            raise ValueError(f"sample {sample.id!r} has shapes {shapes}, the cache holds {self._shapes}")
        self._pending.append(sample)
        self.consumed += 1
        if len(self._pending) == self.shard_size:
            self._flush()

    def skip(self, sample_id: str, reason: str) -> None:
        self.consumed += 1
        kind, _, detail = reason.partition(":")  # the kind, not the file: one count per kind of problem
        self._skipped[kind] += 1
        self._examples.setdefault(kind, f"{sample_id!r}: {detail.strip()}" if detail else repr(sample_id))
        if len(self._skipped_ids) < MAX_LISTED_SKIPS:
            self._skipped_ids.append(sample_id)

    def discard(self) -> None:
        """Remove the folders this writer made while they hold nothing: a build that cached no sample leaves
        no empty cache folder behind."""
        for folder in self._created:
            if not folder.is_dir() or any(folder.iterdir()):
                return
            folder.rmdir()

    @contextmanager
    def discarded_on_error(self) -> Iterator[None]:
        """`discard` when the block fails (a bad VAE, Ctrl-C, no usable sample), then the error goes on."""
        try:
            yield
        except BaseException:
            self.discard()
            raise

    def _flush(self) -> None:
        if not self._pending:
            return
        batch = self._pending
        tensors = {
            "source": torch.stack([s.source for s in batch]).to(self.dtype),
            "target": torch.stack([s.target for s in batch]).to(self.dtype),
            "tokens": torch.cat([s.text.tokens for s in batch]).to(self.dtype),
            "mask": torch.cat([s.text.mask for s in batch]).bool(),
            "pooled": torch.cat([s.text.pooled for s in batch]).to(self.dtype),
        }
        name = shard_file(len(self._shards))
        ids = [s.id for s in batch]
        resume_state = {  # all a resumed build needs, should this be the last shard written
            "ids": json.dumps(ids),
            "consumed": str(self.consumed),
            "skipped": json.dumps(dict(self._skipped)),
            "skipped_ids": json.dumps(self._skipped_ids),
            "info": json.dumps(self._resume_info()),
        }
        _atomic_save(tensors, self.root / name, resume_state)
        self._shards.append({"file": name, "count": len(batch), "ids": ids})
        self._pending = []

    def finish(
        self, empty_text: TextEmbedding, kinds: Mapping[str, str | None] | None = None
    ) -> CacheSummary:
        """Write the last shard, the empty prompt and the index; returns the summary. `kinds` (sample id ->
        edit kind) goes into the index beside the ids, so a stage can train on some kinds only."""
        self._flush()
        if not self._shards:
            self.discard()
            raise CacheError(f"no usable samples to cache in {self.root} ({self._skip_summary()})")
        assert self._shapes is not None
        if tuple(empty_text.tokens.shape[1:]) != self._shapes["tokens"]:
            raise ValueError(
                f"empty prompt tokens {tuple(empty_text.tokens.shape[1:])} differ from the samples' "
                f"{self._shapes['tokens']}"
            )
        _atomic_save(_text_tensors(empty_text, self.dtype), self.root / EMPTY_TEXT_NAME)
        if kinds is not None:
            _label_shards(self._shards, kinds, self.root)
        count = sum(s["count"] for s in self._shards)
        self._write_index(count)
        skipped = dict(self._skipped)
        return CacheSummary(
            self.root, count, len(self._shards), skipped, list(self._skipped_ids), self.resumed
        )

    def _skip_summary(self) -> str:
        """Why samples were skipped, the commonest kinds first with an example each (for the error of a build
        that cached nothing)."""
        total = sum(self._skipped.values())
        if not total:
            return "the dataset has no samples"
        top = [
            f"{n} {kind} (e.g. {self._examples.get(kind, '?')})" for kind, n in self._skipped.most_common(3)
        ]
        more = "; ..." if len(self._skipped) > 3 else ""
        return f"{total} skipped: {'; '.join(top)}{more}"

    def _write_index(self, count: int) -> None:
        assert self._shapes is not None
        index = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "count": count,
            "latent_shape": list(self._shapes["latents"]),
            "text_shape": list(self._shapes["tokens"]),
            "pooled_dim": self._shapes["pooled"][0],
            "dtype": str(self.dtype).removeprefix("torch."),
            "shards": self._shards,
            "skipped": dict(self._skipped),
            "skipped_ids": self._skipped_ids,
            **self.info,
        }
        _write_index_file(self.root, index)


def _write_index_file(root: Path, index: dict[str, Any]) -> None:
    write_json(root / INDEX_NAME, index)


def _differences(then: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """'key: A -> B' for each setting that differs (what a refused rerun changed); '' when none."""
    return "; ".join(describe_changes(then, now))


def _in_order(some: Iterable[str], ids: Iterable[str]) -> bool:
    """Whether `some` are ids of `ids` in the same order (a subsequence: skipped ids may be left out)."""
    head = iter(ids)
    return all(i in head for i in some)  # `in` advances `head`


def _label_shards(shards: list[dict[str, Any]], kinds: Mapping[str, str | None], root: Path) -> None:
    """Each shard's `kinds` list beside its `ids` (left out when the dataset names no kind at all); CacheError
    when a cached sample has no entry in `kinds`."""
    if all(kind is None for kind in kinds.values()):
        for shard in shards:
            shard.pop("kinds", None)
        return
    missing = [i for shard in shards for i in shard["ids"] if i not in kinds]
    if missing:
        raise CacheError(
            f"{len(missing)} samples of the cache in {root} are not in the dataset (e.g. {missing[0]!r}); "
            "is it the dataset the cache was built from?"
        )
    for shard in shards:
        shard["kinds"] = [kinds[i] for i in shard["ids"]]


def write_cache(
    root: str | Path,
    samples: Iterable[LatentSample],
    empty_text: TextEmbedding,
    *,
    shard_size: int = 256,
    dtype: torch.dtype = torch.float32,
    info: dict[str, Any] | None = None,
    kinds: Mapping[str, str | None] | None = None,
) -> CacheSummary:
    """Write already encoded samples as a cache (what `build_cache` does after encoding). Every sample is
    written: an unfinished build's shards in `root` are replaced, not resumed. `kinds`: sample id -> edit kind."""
    writer = CacheWriter(Path(root).expanduser(), shard_size, dtype, dict(info or {}), resume=False)
    for sample in samples:
        writer.add(sample)
    return writer.finish(empty_text, kinds)


def build_cache(
    dataset: LatentDataset,
    root: str | Path,
    *,
    shard_size: int = 256,
    dtype: torch.dtype = torch.float32,
    info: dict[str, Any] | None = None,
    progress: bool = True,
) -> CacheSummary:
    """Encode every sample of `dataset` (e.g. an `EncodingDataset`) into a cache at `root`; corrupt or
    missing samples are skipped and counted in the index."""
    writer = CacheWriter(Path(root).expanduser(), shard_size, dtype, dict(info or {}))
    with writer.discarded_on_error():
        writer.check_resumed(dataset.ids())
        _write_all(writer, _encoded(dataset, writer.consumed), len(dataset) - writer.consumed, progress)
        return writer.finish(dataset.empty_text(), _kinds_by_id(dataset))


# What an encoder hands the writer: an encoded sample, or (sample id, reason) for one that cannot be used.
_Encoded = LatentSample | tuple[str, str]


def _encoded(dataset: LatentDataset, start: int) -> Iterator[_Encoded]:
    for index in range(start, len(dataset)):
        try:
            item: _Encoded = dataset.get(index)
        except SampleError as exc:
            item = (exc.sample_id, exc.reason)
        yield item


def _write_all(writer: CacheWriter, items: Iterable[_Encoded], total: int, progress: bool) -> None:
    if progress:
        items = track(items, description="caching latents", total=total, transient=True)
    for item in items:
        if isinstance(item, LatentSample):
            writer.add(item)
        else:
            writer.skip(*item)


def _kinds_by_id(dataset: LatentDataset | TripletDataset) -> dict[str, str | None]:
    return dict(zip(dataset.ids(), dataset.kinds(), strict=True))


def read_index(root: str | Path) -> dict[str, Any]:
    """The index of a finished cache; CacheError when there is none or it is of another format."""
    path = Path(root).expanduser() / INDEX_NAME
    if not path.is_file():
        raise CacheError(
            f"no latent cache at {Path(root).expanduser()} ({INDEX_NAME} missing; build one with `retake cache`)"
        )
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CacheError(f"{path}: not valid JSON ({exc}); the cache index is damaged") from None
    if (
        not isinstance(index, dict)
        or index.get("format") != CACHE_FORMAT
        or index.get("version") != CACHE_VERSION
    ):
        raise CacheError(f"{path}: not a {CACHE_FORMAT} v{CACHE_VERSION} index")
    return index


def sample_index(index: int, length: int) -> int:
    """`index` into `length` samples as a Python sequence reads it (negative counts from the end). An index
    out of range is an IndexError naming both: bisect would otherwise pick a shard for it and the read fail
    with a message about a tensor dimension."""
    index = check_int("sample index", index)  # a float or bool index is a mistake, not a row
    if not -length <= index < length:
        raise IndexError(f"sample index {index} is out of range for a cache of {length} samples")
    return index % length


class LatentCache:
    """A cache folder as a LatentDataset: samples are read row by row from memory-mapped shards."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.index = read_index(self.root)
        shards = self.index["shards"]
        self._files = [self.root / s["file"] for s in shards]
        self._ids = [i for s in shards for i in s["ids"]]
        self._starts = [0]
        for s in shards[:-1]:
            self._starts.append(self._starts[-1] + s["count"])
        self._handles: dict[int, Any] = {}
        self._empty: TextEmbedding | None = None

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.index["latent_shape"])

    @property
    def text_shape(self) -> tuple[int, int]:
        length, dim = self.index["text_shape"]
        return length, dim

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def kinds(self) -> list[str | None]:
        """Each sample's edit kind as recorded when the cache was built (None where the dataset had none, and
        for every sample of a cache built before caches kept kinds: see `label_cache`)."""
        return [k for s in self.index["shards"] for k in s.get("kinds", [None] * s["count"])]

    def get(self, index: int) -> LatentSample:
        index = sample_index(index, len(self))
        shard = bisect.bisect_right(self._starts, index) - 1
        row = index - self._starts[shard]
        sample_id = self._ids[index]
        try:
            handle = self._handle(shard)
            rows = {
                k: handle.get_slice(k)[row : row + 1]
                for k in ("source", "target", "tokens", "mask", "pooled")
            }
        except (
            OSError,
            RuntimeError,
            KeyError,
            ValueError,
            SafetensorError,
        ) as exc:  # missing or damaged shard
            raise SampleError(sample_id, f"cannot read shard: {self._files[shard].name}: {exc}") from exc
        text = TextEmbedding(rows["tokens"].float(), rows["mask"].bool(), rows["pooled"].float())
        return LatentSample(sample_id, rows["source"][0].float(), rows["target"][0].float(), text)

    def _handle(self, shard: int) -> Any:
        if shard not in self._handles:
            self._handles[shard] = safe_open(self._files[shard], framework="pt")
        return self._handles[shard]

    def empty_text(self) -> TextEmbedding:
        if self._empty is None:
            path = self.root / EMPTY_TEXT_NAME
            try:
                with safe_open(path, framework="pt") as f:
                    tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
            except (OSError, RuntimeError, SafetensorError) as exc:
                raise CacheError(f"cannot read the empty prompt embedding {path}: {exc}") from exc
            self._empty = TextEmbedding(
                tensors["tokens"].float(), tensors["mask"].bool(), tensors["pooled"].float()
            )
        return self._empty


class LatentCaches:
    """Several caches read as one LatentDataset, in the order given (how new data joins an old cache without
    encoding it again). They must hold latents and text of one shape and share a text encoder (the empty
    prompt's embedding is compared); ids become "<cache folder>/<id>" so that equal ids stay apart."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.parts = [LatentCache(root) for root in roots]
        if not self.parts:
            raise ValueError("LatentCaches needs at least one cache folder")
        _check_distinct(self.parts)
        first = self.parts[0]
        for part in self.parts[1:]:
            _check_joinable(first, part)
        names = [p.root.name for p in self.parts]
        labels = names if len(set(names)) == len(names) else [str(p.root) for p in self.parts]
        self._ids = [
            f"{label}/{i}" for label, part in zip(labels, self.parts, strict=True) for i in part.ids()
        ]
        self._starts = [0]
        for part in self.parts[:-1]:
            self._starts.append(self._starts[-1] + len(part))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.parts[0].latent_shape

    @property
    def text_shape(self) -> tuple[int, int]:
        return self.parts[0].text_shape

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def kinds(self) -> list[str | None]:
        return [k for part in self.parts for k in part.kinds()]

    def get(self, index: int) -> LatentSample:
        index = sample_index(index, len(self))
        part = bisect.bisect_right(self._starts, index) - 1
        sample = self.parts[part].get(index - self._starts[part])
        return LatentSample(self._ids[index], sample.source, sample.target, sample.text)

    def empty_text(self) -> TextEmbedding:
        return self.parts[0].empty_text()


def _check_distinct(parts: list[LatentCache]) -> None:
    """CacheError for a cache listed twice, or two caches of one dataset holding one sample: either would train
    those samples twice as often, silently. Caches of different datasets may share ids (every `retake flatland
    pairs` folder has a pair_00000): LatentCaches keeps them apart by folder."""
    seen: dict[Path, Path] = {}
    for part in parts:
        where = part.root.resolve()
        if where in seen:
            raise CacheError(f"cache {part.root} is listed twice (as {seen[where]} and {part.root})")
        seen[where] = part.root
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            dataset = a.index.get("dataset")
            # Only locations recorded absolute can be told the same: "pairs" may be two folders.
            if dataset is None or not Path(dataset).is_absolute() or dataset != b.index.get("dataset"):
                continue
            held = set(a.ids())
            shared = next((sample for sample in b.ids() if sample in held), None)
            if shared is not None:
                raise CacheError(
                    f"caches {a.root} and {b.root} both hold sample {shared!r} of {dataset}; list one of them"
                )


def _check_joinable(first: LatentCache, other: LatentCache) -> None:
    """CacheError unless `other` can train beside `first`: same latent and text shapes, same text encoder (the
    empty prompt's embedding, up to float noise)."""
    for what in ("latent_shape", "text_shape"):
        if getattr(first, what) != getattr(other, what):
            raise CacheError(
                f"caches {first.root} and {other.root} differ in {what}: "
                f"{getattr(first, what)} vs {getattr(other, what)}"
            )
    a, b = first.empty_text(), other.empty_text()
    if not (torch.equal(a.mask, b.mask) and _close(a.tokens, b.tokens) and _close(a.pooled, b.pooled)):
        raise CacheError(
            f"caches {first.root} ({first.index.get('text_encoder')}) and {other.root} "
            f"({other.index.get('text_encoder')}) were made with different text encoders"
        )


def _close(a: Tensor, b: Tensor) -> bool:
    """One text encoder's embeddings, up to float noise: another thread count moves the last bits (~1e-5) and a
    bf16 cache rounds to ~0.4%; another encoder differs by the embeddings' own scale."""
    return a.shape == b.shape and bool((a - b).abs().max() <= 0.02 * a.abs().max().clamp_min(1e-6))


def open_caches(roots: Iterable[str | Path]) -> LatentCache | LatentCaches:
    """One cache folder as a LatentCache (its own ids), several as LatentCaches."""
    roots = list(roots)
    return LatentCache(roots[0]) if len(roots) == 1 else LatentCaches(roots)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside the block (None: unchanged), then restored."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _location(path_or_name: str | Path) -> str:
    """An existing path made absolute; anything else (a registered name such as "minilm") as given."""
    path = Path(path_or_name).expanduser()
    return str(path.resolve()) if path.exists() else str(path_or_name)


_LOCATIONS = ("dataset", "vae", "text_encoder")  # index entries that name folders


def _same_location(recorded: Any, now: str) -> bool:
    """Whether a location an index records is `now`. Indexes written before locations were made absolute
    hold the folder as it was typed ("data/pairs"): that matches any absolute `now` ending in it, since the
    folder it was relative to is not known."""
    if recorded is None or recorded == now:
        return True
    recorded = str(recorded)
    return not Path(recorded).is_absolute() and Path(now).is_absolute() and now.endswith(f"/{recorded}")


def cache_dataset(
    dataset: str | Path,
    root: str | Path,
    *,
    vae: str | Path,
    vae_subfolder: str | None = None,
    text_encoder: str = "minilm",
    frames: int = 17,
    size: int | tuple[int, int] = (64, 64),
    format: str = "auto",
    shard_size: int = 256,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    workers: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> CacheSummary:
    """Encode a dataset folder (Flatland pairs or `retake curate` output) once: what `retake cache` runs.

    workers > 1 (CPU only) encodes in that many processes (`retake.train.encode_pool`); the cache is the same.
    threads: torch threads per encoding process, for the duration of the encoding. None keeps torch's
    default (all cores) for one process and uses 1 per worker process, where the processes are the
    parallelism; set it to leave cores to other work (a training run beside the encoding).

    A rerun finds its work done: a finished cache of the same dataset and settings at `root` is returned as it
    is (`existing`), an unfinished one is resumed; one of other settings is refused. Both are checked before
    the VAE and text encoder load.
    """
    from retake.model.vae import VideoVAE, spatial_compression
    from retake.train.datasets import ClipSpec, check_flatland_crop, open_triplets
    from retake.train.encode import check_clip_size

    size = size_pair(size)  # N or (H, W), as every size argument takes it
    frames = check_int("frames", frames, minimum=1)
    if workers < 1 or (workers > 1 and device != "cpu"):
        raise ValueError(f"workers must be >= 1, and 1 unless device is 'cpu'; got {workers} on {device!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for the default), got {threads}")
    triplets = open_triplets(dataset, ClipSpec(frames, size), format)
    check_flatland_crop(triplets, spatial_compression(vae, vae_subfolder))
    # Absolute paths: a rerun that spells a folder differently (relative vs absolute) still resumes the build.
    info = {
        "dataset": _location(dataset),
        "vae": _location(Path(vae) / vae_subfolder if vae_subfolder else vae),
        "text_encoder": _location(text_encoder),
        "frames": frames,
        "size": list(size),
    }
    finished = _finished_cache(Path(root).expanduser(), info, dtype, triplets.ids())
    if finished is not None:
        return finished
    # Takes over the shards of an unfinished build of these settings; refuses those of others.
    writer = CacheWriter(Path(root).expanduser(), shard_size, dtype, info)
    with writer.discarded_on_error():
        writer.check_resumed(triplets.ids())
        video_vae = VideoVAE.from_pretrained(vae, subfolder=vae_subfolder, device=device)
        check_clip_size(video_vae, frames, size)
        if workers == 1:
            empty_text = _encode_here(writer, triplets, video_vae, text_encoder, device, threads, progress)
        else:
            clips = (str(dataset), format, frames, tuple(size))
            spec = EncoderSpec(*clips, str(vae), vae_subfolder, text_encoder, threads=threads or 1)
            items, empty_text = encode_in_workers(spec, len(triplets), workers, start=writer.consumed)
            _write_all(writer, items, len(triplets) - writer.consumed, progress)
        return writer.finish(empty_text, _kinds_by_id(triplets))


def _encode_here(
    writer: CacheWriter,
    triplets: TripletDataset,
    vae: VideoVAE,
    text_encoder: str,
    device: str,
    threads: int | None,
    progress: bool,
) -> TextEmbedding:
    """Encode the samples `writer` still lacks in this process; returns the empty prompt's embedding."""
    from retake.model.text import load_text_encoder
    from retake.train.encode import EncodingDataset

    encoded = EncodingDataset(triplets, vae, load_text_encoder(text_encoder, device=device))
    with _torch_threads(threads):
        _write_all(writer, _encoded(encoded, writer.consumed), len(encoded) - writer.consumed, progress)
        return encoded.empty_text()


def _finished_cache(
    root: Path, info: dict[str, Any], dtype: torch.dtype, ids: list[str]
) -> CacheSummary | None:
    """The cache a rerun finds already built at `root` from these samples (`ids`) with these settings; None
    when `root` holds no finished cache; CacheError when it holds another (other settings, or other samples:
    a dataset that has grown since is not silently left half cached)."""
    if not (root / INDEX_NAME).exists():
        return None
    index = read_index(root)
    now = as_read_back({**info, "dtype": str(dtype).removeprefix("torch.")})
    then = {k: index.get(k) for k in now}
    for key in _LOCATIONS:  # an older index's relative spelling of the same folder is no change
        if key in now and index.get(key) is not None and _same_location(index[key], str(now[key])):
            then[key] = now[key]
    changed = _differences(then, now)
    if changed:
        raise CacheError(
            f"{root} already holds a latent cache made with other settings ({changed}); choose another "
            "folder, or delete it to build it again"
        )
    cached = [i for shard in index["shards"] for i in shard["ids"]]
    skipped = dict(index.get("skipped", {}))
    done = len(cached) + sum(skipped.values())
    if done != len(ids) or not _in_order(cached, ids):
        raise CacheError(
            f"{root} already holds a latent cache of {info['dataset']}, but not of the {len(ids)} samples it "
            f"has now ({len(cached)} cached, {done - len(cached)} skipped); cache new samples in another "
            "folder, or delete it to build it again"
        )
    skipped_ids = list(index.get("skipped_ids", []))
    return CacheSummary(root, len(cached), len(index["shards"]), skipped, skipped_ids, done, existing=True)


def label_cache(
    root: str | Path, dataset: str | Path, format: str = "auto", *, force: bool = False
) -> Counter:
    """Record the edit kinds of `dataset`'s samples in the index of a cache built from it before caches kept
    them (no encoding: only the index is rewritten, atomically). Returns how many samples of each kind the
    cache holds (None: no kind).

    `dataset` must be the folder the index records the cache was built from (CacheError otherwise: sample ids
    such as pair_00000 recur in every Flatland pairs folder, so another one would label the cache wrongly
    without a missing id to notice); `force` accepts another, e.g. the same data moved."""
    from retake.train.datasets import ClipSpec, open_triplets

    root = Path(root).expanduser()
    index = read_index(root)
    triplets = open_triplets(dataset, ClipSpec(1, (1, 1)), format)  # only the manifest is read
    built_from, given = index.get("dataset"), _location(Path(dataset).expanduser())
    if not force and not _same_location(built_from, given):
        raise CacheError(
            f"the cache in {root} was built from {built_from}, not {given}; label it from the dataset it was "
            "built from, or pass --force if this is that dataset moved"
        )
    kinds = _kinds_by_id(triplets)
    if all(kind is None for kind in kinds.values()):
        raise ValueError(
            f"{dataset} names no edit kinds (no 'kind' in a Flatland manifest, no 'edit_type' in a `retake "
            "synth` one; `retake curate` pairs have none), so there are none to record"
        )
    _label_shards(index["shards"], kinds, root)
    _write_index_file(root, index)
    return Counter(LatentCache(root).kinds())
