"""Triplet adapters for Flatland pairs and `retake curate` output, and skip-and-count of broken samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_fixtures import CLIP, StubTextEncoder, clip, write_curated, write_flatland_pairs

from retake.model.vae import VideoVAE
from retake.train.datasets import (
    ClipSpec,
    CuratedPairs,
    FlatlandPairs,
    SampleError,
    detect_format,
    open_triplets,
)
from retake.train.encode import EncodingDataset
from retake.train.loader import NoUsableSamplesError, SampleStream

SPEC = ClipSpec(frames=CLIP[0], size=CLIP[1:])


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """H.264 at crf 18 keeps these smooth clips within a few levels."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean()) < 4


def test_flatland_pairs_give_source_target_and_instruction(tmp_path):
    root = write_flatland_pairs(tmp_path / "pairs", 2)
    data = open_triplets(root, SPEC)
    assert isinstance(data, FlatlandPairs) and data.ids() == ["pair000", "pair001"]
    triplet = data.load(1)
    assert triplet.source.shape == (5, 16, 16, 3) and triplet.source.dtype == np.uint8
    assert _close(triplet.source, clip(1)) and _close(triplet.target, clip(11))
    assert triplet.instruction == "recolour the square 1"


def test_reads_what_flatland_make_pairs_writes(tmp_path):
    from retake.flatland import load_pair, make_pairs

    make_pairs(tmp_path / "pairs", n=2, size=32, frames=5, seed=3, progress=False)
    data = open_triplets(tmp_path / "pairs", ClipSpec(frames=5, size=(32, 32)))
    assert isinstance(data, FlatlandPairs) and data.ids() == ["pair_00000", "pair_00001"]
    written = load_pair(tmp_path / "pairs" / "pair_00001.json")
    triplet = data.load(1)
    assert np.array_equal(triplet.source, written.source) and np.array_equal(triplet.target, written.target)
    assert triplet.instruction == written.instruction


def test_clips_are_cut_and_resized_to_the_stage(tmp_path):
    root = write_flatland_pairs(tmp_path / "pairs", 1)
    assert FlatlandPairs(root, ClipSpec(frames=3, size=(8, 12))).load(0).target.shape == (3, 8, 12, 3)
    with pytest.raises(SampleError, match="has 5 frames, the stage needs 9"):
        FlatlandPairs(root, ClipSpec(frames=9, size=(16, 16))).load(0)


def test_curated_pairs_use_clip_a_as_source_and_skip_unlabelled_rows(tmp_path):
    root = write_curated(tmp_path / "curated", 3, unlabelled=[1])
    data = open_triplets(root, SPEC)
    assert isinstance(data, CuratedPairs) and detect_format(root) == "curated"
    assert (
        data.ids() == ["vid0-s0-p0", "vid2-s0-p0"] and data.unlabelled == 1
    )  # the dropped row is not counted
    triplet = data.load(1)
    assert _close(triplet.source, clip(2)) and _close(triplet.target, clip(12))
    assert triplet.instruction == "zoom out and pan right 2"


def test_broken_and_missing_samples_raise_sample_errors(tmp_path):
    curated = CuratedPairs(write_curated(tmp_path / "curated", 2, broken=[0]), SPEC)
    with pytest.raises(SampleError, match=r"vid0-s0-p0\.src\.mp4"):
        curated.load(0)
    pairs = write_flatland_pairs(tmp_path / "pairs", 2)
    (pairs / "pairs/pair001.tgt.mp4").unlink()
    with pytest.raises(SampleError, match="pair001"):
        FlatlandPairs(pairs, SPEC).load(1)


def test_a_broken_mp4_in_the_set_is_skipped_and_counted(tmp_path, vae_dir):
    root = write_flatland_pairs(tmp_path / "pairs", 4, broken=[2])
    data = EncodingDataset(
        FlatlandPairs(root, SPEC), VideoVAE.from_pretrained(vae_dir, tiling=None), StubTextEncoder()
    )
    stream = SampleStream(data, seed=0, micro_batch=2)
    seen = [
        s.sample.id for _ in range(3) for s in stream.next_batch()
    ]  # 6 samples from 3 good ones per epoch
    assert "pair002" not in seen and len(seen) == 6
    assert stream.skips.count == 2 and stream.skips.ids == ["pair002", "pair002"]  # once per epoch
    sample = data.get(0)
    assert sample.source.shape == (4, 2, 2, 2) and sample.text.tokens.shape == (1, 6, 16)


def test_a_dataset_of_only_broken_samples_stops_with_an_error(tmp_path):
    from retake.train.datasets import InMemoryTriplets

    class Latents:
        def __init__(self):
            self.triplets = InMemoryTriplets([None, None])

        def __len__(self):
            return 2

        def get(self, index):
            self.triplets.load(index)

    with pytest.raises(NoUsableSamplesError, match="in a row failed"):
        SampleStream(Latents(), seed=0, micro_batch=1).next_batch()


def test_unknown_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_triplets(tmp_path / "nowhere", SPEC)
    with pytest.raises(ValueError, match="neither"):
        open_triplets(tmp_path, SPEC)


def _rewrite_manifest(root, edit) -> None:
    """Apply `edit` to the list of the manifest's records and write them back."""
    manifest = root / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    edit(records)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_sample_without_an_instruction_is_skipped_but_an_empty_one_is_a_prompt(tmp_path, vae_dir):
    from retake.train.cache import build_cache, read_index

    root = write_flatland_pairs(tmp_path / "pairs", 4)

    def edit(records):
        records[0]["instruction"] = None
        del records[1]["instruction"]
        records[2]["instruction"] = ""

    _rewrite_manifest(root, edit)
    pairs = FlatlandPairs(root, SPEC)
    for index in (0, 1):
        with pytest.raises(SampleError, match=r"no instruction: its manifest\.jsonl record gives no text"):
            pairs.load(index)
    assert pairs.load(2).instruction == ""
    encoded = EncodingDataset(pairs, VideoVAE.from_pretrained(vae_dir, tiling=None), StubTextEncoder())
    summary = build_cache(encoded, tmp_path / "cache", progress=False)
    assert (summary.count, summary.skipped_ids) == (2, ["pair000", "pair001"])
    assert read_index(tmp_path / "cache")["skipped"] == {"no instruction": 2}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "source": "x"', r"manifest\.jsonl, line 3: not valid JSON \(Expecting ',' delimiter"),
        ('["a", "x.mp4"]', r"manifest\.jsonl, line 3: not a JSON object"),
        (
            '{"id": "a", "source": "x.mp4", "target": null}',
            r"manifest\.jsonl, line 3: the sample lacks target",
        ),
    ],
)
def test_a_bad_manifest_line_is_named_by_file_and_line(tmp_path, line, message):
    root = write_flatland_pairs(tmp_path / "pairs", 1)
    manifest = root / "manifest.jsonl"
    manifest.write_text(manifest.read_text() + "\n" + line + "\n")  # line 2 is blank: the file's line 3
    with pytest.raises(ValueError, match=message):
        FlatlandPairs(root, SPEC)


def test_a_sample_id_given_twice_is_refused_naming_it(tmp_path):
    root = write_flatland_pairs(tmp_path / "pairs", 3)
    _rewrite_manifest(root, lambda records: records[2].update(id="pair000"))
    with pytest.raises(ValueError, match=r"manifest\.jsonl, line 3: sample id 'pair000' repeats line 1"):
        FlatlandPairs(root, SPEC)
