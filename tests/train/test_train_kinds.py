"""Training on some edit kinds only (`data.kinds`): kinds read from Flatland manifests, kept in cache indexes,
added to old caches (`retake cache --kinds-only`), and a stage that never sees the other kinds."""

from __future__ import annotations

import json
import os
import signal

import pytest
from train_fixtures import CLIP, run_config, stage, write_flatland_pairs, write_random_cache

from retake.cli import main
from retake.train.cache import CacheError, LatentCache, LatentCaches, label_cache, read_index
from retake.train.checkpoint import ResumeError
from retake.train.config import DataConfig
from retake.train.datasets import ClipSpec, FlatlandPairs
from retake.train.loop import NonFiniteLossError, TrainingInterrupted, train
from retake.train.subset import KindSubset

KINDS = ["add", "style", "add", "remove", "replace", "add"]


def _cache_cmd(pairs, cache, vae_dir, *extra: str) -> None:
    frames, size = str(CLIP[0]), f"{CLIP[1]}x{CLIP[2]}"
    main(["cache", str(pairs), str(cache), "--vae", str(vae_dir), "--frames", frames, "--size", size, *extra])


def test_flatland_manifests_give_each_sample_its_kind_or_none(tmp_path):
    spec = ClipSpec(CLIP[0], CLIP[1:])
    labelled = FlatlandPairs(write_flatland_pairs(tmp_path / "a", 3, kinds=KINDS[:3]), spec)
    assert labelled.kinds() == ["add", "style", "add"]
    assert FlatlandPairs(write_flatland_pairs(tmp_path / "b", 2), spec).kinds() == [None, None]


def test_a_cache_keeps_the_kinds_of_the_samples_it_holds_past_a_broken_one(tmp_path, vae_dir):
    pairs = write_flatland_pairs(tmp_path / "pairs", 5, broken=[1], kinds=KINDS[:5])
    _cache_cmd(pairs, tmp_path / "cache", vae_dir, "--shard-size", "2", "--no-progress")
    cache = LatentCache(tmp_path / "cache")
    assert cache.ids() == ["pair000", "pair002", "pair003", "pair004"]
    assert cache.kinds() == ["add", "add", "remove", "replace"]  # pair001 (style) was skipped
    assert [s["kinds"] for s in read_index(tmp_path / "cache")["shards"]] == [
        ["add", "add"],
        ["remove", "replace"],
    ]


def test_a_cache_without_kinds_gets_them_from_its_dataset_without_encoding(tmp_path, vae_dir, capsys):
    pairs = write_flatland_pairs(tmp_path / "pairs", 4)  # a manifest from before kinds: the cache has none
    _cache_cmd(pairs, tmp_path / "cache", vae_dir, "--no-progress")
    assert LatentCache(tmp_path / "cache").kinds() == [None] * 4
    shards = sorted(p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("shard-*"))

    with pytest.raises(ValueError, match="names no edit kinds"):
        label_cache(tmp_path / "cache", pairs)
    manifest = pairs / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text(
        "".join(json.dumps({**r, "kind": k}) + "\n" for r, k in zip(records, KINDS, strict=False))
    )
    main(["cache", str(pairs), str(tmp_path / "cache"), "--kinds-only"])  # no --vae needed
    assert "recorded the edit kinds of 4 samples" in capsys.readouterr().err
    assert LatentCache(tmp_path / "cache").kinds() == KINDS[:4]
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("shard-*")) == shards

    other = write_flatland_pairs(tmp_path / "other", 2, kinds=KINDS[:2])  # lacks pair002 and pair003
    with pytest.raises(CacheError, match=r"2 samples of the cache .* are not in the dataset"):
        label_cache(tmp_path / "cache", other, force=True)


def test_kinds_only_refuses_a_dataset_the_cache_was_not_built_from(tmp_path, vae_dir):
    """Every Flatland pairs folder names its samples alike, so another folder would label every sample wrongly."""
    pairs = write_flatland_pairs(tmp_path / "pairs", 3, kinds=KINDS[:3])
    _cache_cmd(pairs, tmp_path / "cache", vae_dir, "--no-progress")
    other = write_flatland_pairs(tmp_path / "other", 3, kinds=KINDS[3:])  # pair000-pair002 too
    with pytest.raises(CacheError, match=r"cache in .*cache was built from .*pairs, not .*other"):
        label_cache(tmp_path / "cache", other)
    assert LatentCache(tmp_path / "cache").kinds() == KINDS[:3]
    label_cache(tmp_path / "cache", other, force=True)  # e.g. the same dataset moved
    assert LatentCache(tmp_path / "cache").kinds() == KINDS[3:]
    assert label_cache(tmp_path / "cache", tmp_path / "." / "pairs") == {"add": 2, "style": 1}


def test_an_older_index_with_a_relative_dataset_labels_from_that_folder(tmp_path, vae_dir, monkeypatch):
    """Caches built before locations were recorded absolute hold the dataset as it was typed."""
    pairs = write_flatland_pairs(tmp_path / "pairs", 3, kinds=KINDS[:3])
    _cache_cmd(pairs, tmp_path / "cache", vae_dir, "--no-progress")
    index_file = tmp_path / "cache" / "index.json"
    index = json.loads(index_file.read_text())
    index["dataset"] = "pairs"
    index_file.write_text(json.dumps(index))
    monkeypatch.chdir(tmp_path)
    assert label_cache("cache", "pairs") == {"add": 2, "style": 1}
    other = write_flatland_pairs(tmp_path / "other", 3, kinds=KINDS[3:])
    with pytest.raises(CacheError, match="was built from pairs"):
        label_cache("cache", other)


def test_encoding_needs_a_vae(tmp_path, capsys):
    pairs = write_flatland_pairs(tmp_path / "pairs", 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", str(pairs), str(tmp_path / "cache")])
    assert exit_info.value.code == 2 and "--vae is needed to encode" in capsys.readouterr().err


def test_a_subset_keeps_the_named_kinds_in_order_and_names_what_it_cannot_select(tmp_path):
    a = write_random_cache(tmp_path / "a", 3, kinds=KINDS[:3])
    b = write_random_cache(tmp_path / "b", 3, start=3, kinds=KINDS[3:])
    both = LatentCaches([a, b])
    adds = KindSubset(both, ["add"])
    assert adds.ids() == ["a/s000", "a/s002", "b/s005"] and adds.kinds() == ["add"] * 3
    assert [adds.get(i).id for i in range(len(adds))] == adds.ids()
    assert len(KindSubset(both, ["remove", "replace"])) == 2

    with pytest.raises(
        ValueError, match=r"no samples of kind \['recolour'\].*\['add', 'remove', 'replace', 'style'\]"
    ):
        KindSubset(both, ["add", "recolour"])
    unlabelled = LatentCache(write_random_cache(tmp_path / "c", 2))
    with pytest.raises(
        ValueError, match=r"records no edit kinds.*free-text edits.*name no kind.*--kinds-only"
    ):
        KindSubset(unlabelled, ["add"], where="my cache")


def test_data_kinds_must_be_distinct_names():
    assert DataConfig(cache="c", kinds=["add", "replace"]).kinds == ("add", "replace")
    assert DataConfig(cache="c", kinds="add").kinds == ("add",)
    for bad in (["add", "add"], [""]):
        with pytest.raises(ValueError, match="kinds must be distinct non-empty names"):
            DataConfig(cache="c", kinds=bad)


def test_a_stage_on_some_kinds_never_reads_the_others(tmp_path):
    """Sample 1 (style) has a NaN target: training on every kind stops on it, training on adds never meets it."""
    cache = write_random_cache(tmp_path / "cache", 6, kinds=KINDS, nan_ids=[1])
    every = run_config(tmp_path / "every", [stage("s", cache, steps=6, batch=3)])
    with pytest.raises(NonFiniteLossError):
        train(every)

    adds = stage("s", cache, steps=6, batch=3, data={"cache": str(cache), "kinds": ["add"]})
    starts = []
    result = train(run_config(tmp_path / "adds", [adds]), on_stage_start=starts.append)
    assert result.stages[0].final_loss is not None and result.stages[0].skipped == 0
    assert (starts[0].samples, starts[0].kinds) == (3, ("add",))


def test_a_checkpoint_resumes_only_with_the_kinds_it_was_trained_on(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 6, kinds=KINDS)
    adds = stage("s", cache, steps=4, data={"cache": str(cache), "kinds": ["add"]})
    config = run_config(tmp_path / "run", [adds], checkpoint_every=100)

    def stop_at_two(info) -> None:
        if info.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train(config, callbacks=[stop_at_two])
    styles = stage("s", cache, steps=4, data={"cache": str(cache), "kinds": ["style"]})
    with pytest.raises(ResumeError, match=r"other settings \(data\.kinds: \['add'\] -> \['style'\]\)"):
        train(run_config(tmp_path / "run", [styles], checkpoint_every=100))
    assert train(config).stages[0].resumed_from == 2


def test_the_start_line_names_the_kinds(tmp_path, capsys):
    cache = write_random_cache(tmp_path / "cache", 6, kinds=KINDS)
    (tmp_path / "run.toml").write_text(
        f"""
out = "run"
progress = false
[model]
preset = "tiny"
[[stages]]
name = "sft"
steps = 1
batch = 2
data = {{ cache = "{cache}", kinds = ["add", "replace"] }}
"""
    )
    main(["train", str(tmp_path / "run.toml")])
    assert "on 4 samples (add, replace only), from fresh weights" in capsys.readouterr().err


def test_a_stage_that_encodes_on_the_fly_narrows_its_pairs_to_the_kinds(tmp_path, vae_dir):
    import torch

    from retake.train.loop import open_stage_data

    pairs = write_flatland_pairs(tmp_path / "pairs", 4, kinds=KINDS[:4])
    data = {"path": str(pairs), "frames": CLIP[0], "size": list(CLIP[1:]), "kinds": ["add", "remove"]}
    config = run_config(tmp_path / "run", [stage("s", pairs, data=data)], vae=str(vae_dir))
    dataset = open_stage_data(config, config.stages[0], torch.device("cpu"))
    assert dataset.ids() == ["pair000", "pair002", "pair003"] and dataset.get(2).id == "pair003"

    styles = {**data, "kinds": ["recolour"]}  # refused before the VAE, which is not there, is loaded
    config = run_config(tmp_path / "run", [stage("s", pairs, data=styles)], vae=str(tmp_path / "no-vae"))
    with pytest.raises(ValueError, match=r"stage 's'.s data holds no samples of kind \['recolour'\]"):
        open_stage_data(config, config.stages[0], torch.device("cpu"))
