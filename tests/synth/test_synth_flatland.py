"""The factory on Flatland: triplets made by each recipe with the oracles pass the oracle judge (>= 95%)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from synth_helpers import oracle_verdicts, read_triplets

from retake.data.shards import read_manifest
from retake.synth.recipes import with_overrides
from retake.synth.runner import synthesize


def test_insvie_oracle_triplets_pass_the_oracle_judge(
    flatland_sources: Path, insvie_oracle, tmp_path: Path
) -> None:
    result = synthesize(flatland_sources, tmp_path / "out", insvie_oracle, workers=1, progress=False)
    verdicts = oracle_verdicts(tmp_path / "out")
    assert len(verdicts) >= 11, result.stats  # one edit per source, nearly all kept
    assert sum(verdicts.values()) >= 0.95 * len(verdicts), verdicts
    rows = [r for r in read_manifest(tmp_path / "out").to_pylist() if r["status"] == "ok"]
    # selection kept the full-strength candidate (the weaker ones are blends of the edit)
    assert {r["strength"] for r in rows} == {10.0} and all(r["candidates"] == 3 for r in rows)
    assert {r["edit_type"] for r in rows} == {"add", "remove", "replace", "recolour", "background", "style"}


def test_icve_sft_oracle_pairs_pass_the_oracle_judge_and_are_balanced(
    flatland_sources: Path, sft_oracle, tmp_path: Path
) -> None:
    config = with_overrides(sft_oracle, {"pairs.proportions": [2.0, 1.0, 1.0]})
    result = synthesize(flatland_sources, tmp_path / "out", config, workers=1, progress=False)
    verdicts = oracle_verdicts(tmp_path / "out")
    assert sum(verdicts.values()) >= 0.95 * len(verdicts) and len(verdicts) >= 8, result.stats
    kept = Counter(
        row["edit_type"] for row, _, _ in read_triplets(tmp_path / "out").values() if row["status"] == "ok"
    )
    assert kept["remove"] == 2 * kept["add"] == 2 * kept["replace"]  # re-balanced to 2:1:1
    assert result.stats["edit_types"] == dict(kept)
    assert result.stats["dropped"]["rebalance"]["over_target"]["triplet"] > 0


def test_an_add_pair_is_its_remove_pair_reversed(flatland_sources: Path, sft_oracle, tmp_path: Path) -> None:
    config = with_overrides(sft_oracle, {"pairs.types": ["remove", "add"], "pairs.proportions": [1.0, 1.0]})
    synthesize(flatland_sources, tmp_path / "out", config, workers=1, progress=False)
    triplets = read_triplets(tmp_path / "out")
    pairs = 0
    for key, (row, source, edited) in triplets.items():
        if row["edit_type"] != "add" or row["status"] != "ok":
            continue
        video_key, index = key.rsplit("-t", 1)
        remove_row, remove_source, remove_edited = triplets[f"{video_key}-t{int(index) - 1:03d}"]
        assert remove_row["edit_type"] == "remove"
        assert np.array_equal(source, remove_edited) and np.array_equal(edited, remove_source)
        removed, added = json.loads(remove_row["edit"]), json.loads(row["edit"])
        assert (removed["target_colour"], removed["target_shape"]) == (
            added["new_colour"],
            added["new_shape"],
        )
        pairs += 1
    assert pairs >= 5
