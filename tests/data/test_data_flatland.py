"""The pipeline on Flatland footage, against the footage's ground truth: cuts, scenes and instructions."""

from __future__ import annotations

from pathlib import Path

import pytest

from retake.data.recipes import get_recipe
from retake.data.runner import curate
from retake.data.shards import read_manifest
from retake.flatland.describe import describe_clips
from retake.flatland.footage import make_footage
from retake.flatland.truth import FootageTruth

CONFIG = get_recipe("icve-pretrain").replace(
    writer="flatland", clip_frames=9, output_short_side=64, min_duration_s=1.0, verb_mode="off", shard_size=2
)


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    footage = tmp_path_factory.mktemp("footage")
    make_footage(footage, videos=3, seconds=10, size=64, fps=24, seed=0, progress=False)
    out = tmp_path_factory.mktemp("curated")
    curate(footage, out, CONFIG, workers=1, progress=False)
    return footage, read_manifest(out).to_pylist()


def _truth(footage: Path, row: dict):
    return FootageTruth.load(footage / Path(row["source_video"]).with_suffix(".json"))


def test_no_clip_crosses_a_ground_truth_cut(curated) -> None:
    footage, rows = curated
    pairs = [r for r in rows if r["scene"] is not None]
    assert len(pairs) >= 6
    for row in pairs:
        truth = _truth(footage, row)
        for start, end in ((row["src_start"], row["src_end"]), (row["tgt_start"], row["tgt_end"])):
            assert truth.scene_of(start) == truth.scene_of(end - 1), (row["pair_id"], start, end, truth.cuts)


def test_emitted_pairs_come_from_one_ground_truth_scene(curated) -> None:
    footage, rows = curated
    emitted = [r for r in rows if r["status"] == "ok"]
    assert len(emitted) >= 5
    # every one (a share >= 0.95 of these few pairs would allow none to cross, but would read as if one could)
    crossing = [
        r["pair_id"]
        for r in emitted
        if _truth(footage, r).scene_of(r["src_start"]) != _truth(footage, r).scene_of(r["tgt_start"])
    ]
    assert crossing == []


def test_oracle_instructions_match_the_ground_truth_difference(curated) -> None:
    footage, rows = curated
    labelled = [r for r in rows if r["scene"] is not None and r["status"] != "error"]
    for row in labelled:
        truth = _truth(footage, row)
        expected = describe_clips(
            truth, (row["src_start"], row["src_end"]), (row["tgt_start"], row["tgt_end"]), seed=row["seed"]
        )
        assert row["instruction"] == expected, row["pair_id"]
        if expected is None:  # nothing describable differs: the trivial filter drops it
            assert (row["status"], row["reason"]) == ("dropped", "no_change")
    assert any(r["status"] == "ok" and r["instruction"] for r in labelled)
