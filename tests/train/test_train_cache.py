"""The latent/text cache: exact round trip, skip-and-count while building, training that never loads a VAE,
and a damaged shard's samples skipped rather than crashing the run."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import (
    CLIP,
    LATENT,
    StubTextEncoder,
    random_sample,
    random_text,
    run_config,
    stage,
    write_flatland_pairs,
    write_random_cache,
)

from retake.model.text import TextEmbedding
from retake.model.vae import VideoVAE
from retake.train.cache import (
    CacheError,
    LatentCache,
    LatentCaches,
    build_cache,
    read_index,
    shard_file,
    write_cache,
)
from retake.train.datasets import ClipSpec, FlatlandPairs, SampleError
from retake.train.encode import EncodingDataset
from retake.train.export import transformer_dir
from retake.train.logs import read_metrics
from retake.train.loop import train


def test_cache_round_trip_is_exact_across_shards(tmp_path):
    root = write_random_cache(tmp_path / "cache", 7, shard_size=3)
    cache = LatentCache(root)
    assert len(cache) == 7 and len(read_index(root)["shards"]) == 3
    for i in (0, 3, 6):
        want, got = random_sample(i), cache.get(i)
        assert got.id == want.id
        assert torch.equal(got.source, want.source) and torch.equal(got.target, want.target)
        assert torch.equal(got.text.tokens, want.text.tokens) and torch.equal(got.text.mask, want.text.mask)
        assert torch.equal(got.text.pooled, want.text.pooled)
    assert cache.empty_text().mask.tolist() == [[True, False, False, False, False, False]]


def test_build_cache_encodes_with_the_vae_and_counts_broken_samples(tmp_path, vae_dir):
    vae = VideoVAE.from_pretrained(vae_dir, tiling=None)
    pairs = FlatlandPairs(
        write_flatland_pairs(tmp_path / "pairs", 3, broken=[1]), ClipSpec(CLIP[0], CLIP[1:])
    )
    encoder = StubTextEncoder()
    summary = build_cache(
        EncodingDataset(pairs, vae, encoder), tmp_path / "cache", shard_size=2, progress=False
    )
    assert (summary.count, summary.skipped_ids) == (2, ["pair001"])
    index = read_index(tmp_path / "cache")
    assert index["skipped"] == {"cannot read video": 1} and index["latent_shape"] == [4, 2, 2, 2]
    cache = LatentCache(tmp_path / "cache")
    triplet = pairs.load(2)
    expected = vae.encode(torch.from_numpy(triplet.source))[0]
    torch.testing.assert_close(cache.get(1).source, expected)
    assert torch.equal(cache.empty_text().tokens, encoder.encode([""]).tokens)
    with pytest.raises(FileExistsError, match="already holds"):
        build_cache(EncodingDataset(pairs, vae, encoder), tmp_path / "cache", progress=False)


def test_training_from_a_cache_never_loads_the_vae(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 4)
    config = run_config(
        tmp_path / "run",
        [stage("s", cache, steps=2)],
        vae=str(tmp_path / "no-vae-here"),
        text_encoder=str(tmp_path / "no-text-encoder"),
    )
    result = train(config)
    assert result.stages[0].steps == 2 and not (tmp_path / "no-vae-here").exists()


def test_a_damaged_shard_is_skipped_and_counted(tmp_path):
    root = write_random_cache(tmp_path / "cache", 6, shard_size=3)
    (root / "shard-000001.safetensors").write_bytes(b"\0" * 64)
    config = run_config(tmp_path / "run", [stage("s", root, steps=2, batch=2)])
    train(config)
    skipped = read_metrics(config.out)[-1]["skipped"]
    assert skipped >= 1
    state = json.loads(next((config.out / "stages/s/checkpoints").glob("*/state.json")).read_text())
    assert set(state["data"][0]["skips"]["ids"]) <= {"s003", "s004", "s005"}


def test_missing_cache_and_mismatched_model_are_clear_errors(tmp_path):
    with pytest.raises(CacheError, match="no latent cache"):
        LatentCache(tmp_path)
    cache = write_random_cache(tmp_path / "cache", 2)
    config = run_config(tmp_path / "run", [stage("s", cache)], model={"in_channels": 8})
    with pytest.raises(
        ValueError, match=r"in_channels: model 8, data 4 \(set in_channels = 4 under \[model\]\)"
    ):
        train(config)


def test_several_caches_read_as_one_in_order_with_their_folder_in_the_ids(tmp_path):
    a = write_random_cache(tmp_path / "a", 4, shard_size=3)
    b = write_random_cache(tmp_path / "b", 3, start=10, shard_size=2)
    both = LatentCaches([a, b])
    assert len(both) == 7 and both.latent_shape == LATENT
    assert both.ids() == ["a/s000", "a/s001", "a/s002", "a/s003", "b/s010", "b/s011", "b/s012"]
    for index, want in ((3, random_sample(3)), (4, random_sample(10)), (6, random_sample(12))):
        got = both.get(index)
        assert torch.equal(got.source, want.source) and torch.equal(got.target, want.target)
        assert torch.equal(got.text.tokens, want.text.tokens)
    # folders of one name are told apart by their whole path
    same_name = write_random_cache(tmp_path / "x" / "a", 1, start=20)
    assert LatentCaches([a, same_name]).ids()[-1] == f"{same_name}/s020"


def test_caches_of_other_shapes_or_text_encoders_do_not_join(tmp_path):
    a = write_random_cache(tmp_path / "a", 2)
    wide = write_random_cache(tmp_path / "wide", 2, latent=(4, 2, 4, 8))
    with pytest.raises(CacheError, match=r"differ in latent_shape: \(4, 2, 4, 4\) vs \(4, 2, 4, 8\)"):
        LatentCaches([a, wide])
    # the same encoder run with other threads (last bits) or stored in bf16 joins
    empty = random_text(7)
    write_cache(tmp_path / "exact", [random_sample(4)], empty, shard_size=2)
    noisy = TextEmbedding(empty.tokens + 1e-5, empty.mask, empty.pooled.bfloat16().float())
    write_cache(tmp_path / "noisy", [random_sample(5)], noisy, shard_size=2)
    assert len(LatentCaches([tmp_path / "exact", tmp_path / "noisy"])) == 2
    other_text = tmp_path / "other_text"
    write_cache(other_text, [random_sample(0)], random_text(99), shard_size=2)  # another "empty" prompt
    with pytest.raises(CacheError, match="different text encoders"):
        LatentCaches([a, other_text])


def test_training_on_two_caches_equals_training_on_one_cache_of_both(tmp_path):
    """The joined dataset is exactly the concatenation: same batches, losses and weights."""
    a = write_random_cache(tmp_path / "a", 4)
    b = write_random_cache(tmp_path / "b", 3, start=4)
    union = write_random_cache(tmp_path / "union", 7)
    runs = {}
    for name, caches in (("joined", [str(a), str(b)]), ("one", str(union))):
        spec = stage("s", union, steps=5, batch=2)
        spec["data"] = {"cache": caches}
        runs[name] = run_config(tmp_path / name, [spec])
        train(runs[name])
    losses = [[r["loss"] for r in read_metrics(c.out)] for c in runs.values()]
    assert len(losses[0]) == 5 and losses[0] == losses[1]
    joined, one = (
        load_file(transformer_dir(c.out, "s") / "diffusion_pytorch_model.safetensors") for c in runs.values()
    )
    assert all(joined[k].equal(one[k]) for k in one)


def test_cache_threads_bound_torch_threads_while_encoding_then_restore_them(tmp_path, vae_dir, monkeypatch):
    """`retake cache --threads` leaves cores to work beside it: one process encodes with that many torch
    threads and gives the old count back; worker processes are told the count (default one each)."""
    import retake.train.cache as cache_module
    from retake.train.cache import cache_dataset

    pairs = write_flatland_pairs(tmp_path / "pairs", 2)
    args = {"vae": vae_dir, "frames": CLIP[0], "size": CLIP[1:], "progress": False}
    seen: list[int] = []
    encode = EncodingDataset.get

    def counting_threads(self, index):
        seen.append(torch.get_num_threads())
        return encode(self, index)

    monkeypatch.setattr(EncodingDataset, "get", counting_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cache_dataset(pairs, tmp_path / "one", threads=1, **args)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

    specs = []

    def no_workers(spec, count, workers, start=0):
        specs.append(spec.threads)
        return iter([random_sample(0)]), random_text(0)

    monkeypatch.setattr(cache_module, "encode_in_workers", no_workers)
    cache_dataset(pairs, tmp_path / "two", workers=2, threads=3, **args)
    cache_dataset(pairs, tmp_path / "three", workers=2, **args)
    assert specs == [3, 1]
    with pytest.raises(ValueError, match=r"threads must be >= 1.*got 0"):
        cache_dataset(pairs, tmp_path / "four", threads=0, **args)


class _Interrupted(Exception):
    pass


class _RandomLatents:
    """A LatentDataset of random samples; `broken` ones raise SampleError, `stop_at` interrupts the build."""

    def __init__(self, count: int, broken: tuple[int, ...] = (), stop_at: int | None = None) -> None:
        self.count, self.broken, self.stop_at = count, broken, stop_at
        self.encoded: list[int] = []

    def __len__(self) -> int:
        return self.count

    def ids(self) -> list[str]:
        return [f"s{i:03d}" for i in range(self.count)]

    def kinds(self) -> list[str | None]:
        return [None] * self.count

    def get(self, index: int):
        if index == self.stop_at:
            raise _Interrupted
        self.encoded.append(index)
        if index in self.broken:
            raise SampleError(f"s{index:03d}", f"cannot read s{index:03d}")
        sample = random_sample(index)
        return type(sample)(f"s{index:03d}", sample.source, sample.target, sample.text)

    def empty_text(self) -> TextEmbedding:
        return random_text(99)


def test_an_interrupted_cache_build_resumes_where_its_last_shard_ends(tmp_path):
    """Killed after two full shards, a rerun encodes only what they do not hold and writes the cache an
    uninterrupted build writes: same shards, ids, skip counts and tensors."""
    info = {"dataset": "d", "vae": "v"}
    whole = build_cache(
        _RandomLatents(11, broken=(2,)), tmp_path / "whole", shard_size=3, info=info, progress=False
    )
    with pytest.raises(_Interrupted):
        build_cache(
            _RandomLatents(11, broken=(2,), stop_at=8),
            tmp_path / "cut",
            shard_size=3,
            info=info,
            progress=False,
        )
    again = _RandomLatents(11, broken=(2,))
    resumed = build_cache(again, tmp_path / "cut", shard_size=3, info=info, progress=False)
    assert again.encoded == [7, 8, 9, 10] and resumed.resumed == 7  # shards 0-1: s000-s006 less broken s002
    assert (resumed.count, resumed.skipped, resumed.skipped_ids) == (
        whole.count,
        whole.skipped,
        whole.skipped_ids,
    )
    assert read_index(tmp_path / "cut")["shards"] == read_index(tmp_path / "whole")["shards"]
    a, b = LatentCache(tmp_path / "whole"), LatentCache(tmp_path / "cut")
    for i in range(whole.count):
        assert torch.equal(a.get(i).target, b.get(i).target) and a.get(i).id == b.get(i).id

    with pytest.raises(_Interrupted):
        build_cache(
            _RandomLatents(11, stop_at=8), tmp_path / "other", shard_size=3, info=info, progress=False
        )
    with pytest.raises(
        CacheError,
        match=r"unfinished cache made with other settings \(dataset: 'd' -> 'e'; vae: 'v' -> None\)",
    ):
        build_cache(
            _RandomLatents(11), tmp_path / "other", shard_size=3, info={"dataset": "e"}, progress=False
        )
    with pytest.raises(CacheError, match="does not have in that order"):
        build_cache(_RandomLatents(4), tmp_path / "other", shard_size=3, info=info, progress=False)


def test_worker_processes_resume_an_interrupted_cache(tmp_path, vae_dir, monkeypatch):
    from retake.train.cache import cache_dataset

    pairs = write_flatland_pairs(tmp_path / "pairs", 11, broken=[4])
    args = {"vae": vae_dir, "frames": CLIP[0], "size": CLIP[1:], "shard_size": 4, "progress": False}
    whole = cache_dataset(pairs, tmp_path / "whole", **args)
    encode = EncodingDataset.get

    def interrupted(self, index):
        if index == 9:
            raise _Interrupted
        return encode(self, index)

    with monkeypatch.context() as patch:
        patch.setattr(EncodingDataset, "get", interrupted)
        with pytest.raises(_Interrupted):
            cache_dataset(pairs, tmp_path / "cut", **args)
    assert [s["count"] for s in read_index(tmp_path / "whole")["shards"]] == [4, 4, 2]
    kept = [(tmp_path / "cut" / shard_file(i)).stat().st_ino for i in (0, 1)]  # pair000-pair008
    # The rerun names the same folders relatively: still the same build, so it resumes.
    monkeypatch.chdir(tmp_path)
    args["vae"] = os.path.relpath(vae_dir)
    resumed = cache_dataset("pairs", "cut", workers=2, **args)
    assert [(tmp_path / "cut" / shard_file(i)).stat().st_ino for i in (0, 1)] == kept  # not written again
    assert (resumed.count, resumed.skipped_ids) == (whole.count, whole.skipped_ids) == (10, ["pair004"])
    assert (resumed.resumed, whole.resumed) == (9, 0)
    assert read_index(tmp_path / "cut")["shards"] == read_index(tmp_path / "whole")["shards"]
    a, b = LatentCache(tmp_path / "whole"), LatentCache(tmp_path / "cut")
    torch.testing.assert_close(a.get(9).source, b.get(9).source, rtol=0, atol=1e-6)


def _fail(*args, **kwargs):
    raise AssertionError("the VAE was loaded")


def test_skips_are_counted_by_kind_of_problem_not_by_file(tmp_path, vae_dir):
    """The index counts "cannot read video" once per broken sample, not one entry per file name."""
    pairs = write_flatland_pairs(tmp_path / "pairs", 4, broken=[0, 2])
    summary = build_cache(
        EncodingDataset(
            FlatlandPairs(pairs, ClipSpec(CLIP[0], CLIP[1:])),
            VideoVAE.from_pretrained(vae_dir),
            StubTextEncoder(),
        ),
        tmp_path / "cache",
        progress=False,
    )
    assert summary.skipped == read_index(tmp_path / "cache")["skipped"] == {"cannot read video": 2}
    assert summary.skipped_ids == ["pair000", "pair002"]


def test_a_build_that_caches_nothing_says_why_and_leaves_no_folder(tmp_path, vae_dir):
    from retake.train.cache import cache_dataset

    pairs = write_flatland_pairs(tmp_path / "pairs", 3)
    args = {"vae": vae_dir, "size": CLIP[1:], "progress": False}
    out = tmp_path / "new" / "cache"
    with pytest.raises(
        CacheError,
        match=r"no usable samples .*\(3 skipped: 3 too few frames \(e\.g\. 'pair000': pair000\.src\.mp4 has 5 frames",
    ):
        cache_dataset(pairs, out, frames=9, **args)
    assert not (tmp_path / "new").exists()  # made by this run, so removed again
    with pytest.raises(FileNotFoundError, match="no VAE"):  # a build stopped before any sample: the same
        cache_dataset(pairs, out, frames=CLIP[0], **{**args, "vae": tmp_path / "no-vae"})
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made is left alone
    with pytest.raises(CacheError, match="3 too few frames"):
        cache_dataset(pairs, tmp_path / "mine", frames=9, **args)
    assert (tmp_path / "mine").is_dir()


def test_rerunning_a_finished_cache_returns_it_before_loading_the_encoders(tmp_path, vae_dir, monkeypatch):
    from retake.train.cache import cache_dataset

    pairs = write_flatland_pairs(tmp_path / "pairs", 3, broken=[1])
    args = {"vae": vae_dir, "frames": CLIP[0], "size": CLIP[1:], "progress": False}
    first = cache_dataset(pairs, tmp_path / "cache", **args)
    index = (tmp_path / "cache" / "index.json").read_text()
    monkeypatch.setattr(VideoVAE, "from_pretrained", _fail)
    again = cache_dataset(pairs, tmp_path / "cache", **args)
    assert again.existing and not first.existing and again.resumed == 3
    assert (again.count, again.shards, again.skipped, again.skipped_ids) == (
        first.count,
        first.shards,
        first.skipped,
        first.skipped_ids,
    )
    assert (tmp_path / "cache" / "index.json").read_text() == index
    with pytest.raises(CacheError, match=r"other settings \(dtype: 'float32' -> 'bfloat16'\)"):
        cache_dataset(pairs, tmp_path / "cache", dtype=torch.bfloat16, **args)
    with pytest.raises(CacheError, match=r"other settings \(frames: 5 -> 1; size: \[16, 16\] ->"):
        cache_dataset(pairs, tmp_path / "cache", **{**args, "frames": 1, "size": (8, 8)})
    manifest = pairs / "manifest.jsonl"
    record = json.loads(manifest.read_text().splitlines()[0])
    manifest.write_text(manifest.read_text() + json.dumps({**record, "id": "pair003"}) + "\n")
    with pytest.raises(CacheError, match=r"not of the 4 samples it has now \(2 cached, 1 skipped\)"):
        cache_dataset(pairs, tmp_path / "cache", **args)


def test_resuming_with_other_settings_names_what_changed(tmp_path):
    info = {"dataset": "d", "vae": "v"}
    with pytest.raises(_Interrupted):
        build_cache(_RandomLatents(6, stop_at=4), tmp_path / "cut", shard_size=2, info=info, progress=False)
    with pytest.raises(CacheError, match=r"other settings \(dtype: 'torch.float32' -> 'torch.bfloat16'\)"):
        build_cache(
            _RandomLatents(6), tmp_path / "cut", shard_size=2, dtype=torch.bfloat16, info=info, progress=False
        )
    with pytest.raises(CacheError, match=r"\(vae: 'v' -> 'w'; frames: None -> 9\)"):
        build_cache(
            _RandomLatents(6),
            tmp_path / "cut",
            shard_size=2,
            info={**info, "vae": "w", "frames": 9},
            progress=False,
        )


def test_one_cache_twice_or_two_caches_of_one_sample_do_not_join(tmp_path, monkeypatch):
    a = write_random_cache(tmp_path / "a", 3)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CacheError, match=r"cache a is listed twice"):
        LatentCaches([a, "a"])
    # Caches of two datasets may share ids (each Flatland pairs folder starts at pair_00000); of one may not.
    empty = random_text(7)
    write_cache(tmp_path / "d1", [random_sample(0), random_sample(1)], empty, info={"dataset": "/data/one"})
    write_cache(tmp_path / "d2", [random_sample(0)], empty, info={"dataset": "/data/two"})
    assert LatentCaches(["d1", "d2"]).ids() == ["d1/s000", "d1/s001", "d2/s000"]
    write_cache(
        tmp_path / "again", [random_sample(2), random_sample(1)], empty, info={"dataset": "/data/one"}
    )
    with pytest.raises(CacheError, match=r"caches d1 and again both hold sample 's001' of /data/one"):
        LatentCaches(["d1", "d2", "again"])


def test_cache_workers_draw_no_weight_loading_bars(tmp_path, vae_dir, monkeypatch):
    """N workers' bars from transformers and diffusers broke the parent's progress bar, even with
    --no-progress."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from retake.train import encode_pool

    pairs = write_flatland_pairs(tmp_path / "pairs", 2)
    spec = encode_pool.EncoderSpec(str(pairs), "auto", CLIP[0], CLIP[1:], str(vae_dir), None, "minilm")
    monkeypatch.setattr(encode_pool, "_ENCODED", None)
    try:
        encode_pool._start_worker(spec)  # what each worker process runs first
        assert not transformers_logging.is_progress_bar_enabled()
        assert not diffusers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()
        diffusers_logging.enable_progress_bar()
