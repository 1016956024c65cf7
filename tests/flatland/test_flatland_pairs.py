"""Paired edits: identical motion, masks that match the changed pixels, seeded and byte-identical files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retake.flatland.edits import EDIT_KINDS
from retake.flatland.pairs import load_pair, make_pair, make_pairs
from retake.flatland.render import render


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_masks_match_the_changed_pixels(kind: str) -> None:
    for seed in range(4):
        pair = make_pair(kind, size=(48, 80), frames=9, seed=seed)
        assert pair.source.shape == pair.target.shape == (9, 48, 80, 3) and pair.masks.shape == (9, 48, 80)
        changed = (pair.source != pair.target).any(-1)
        assert not (changed & ~pair.masks).any(), "a pixel outside the mask changed"
        assert changed.any(axis=(1, 2)).all(), "the edit must show in every frame"
        same_look_replace = kind == "replace" and pair.edit.new_colour is None
        if kind != "style" and not same_look_replace:
            assert changed[pair.masks].mean() > 0.9  # the mask is not padded with unchanged pixels
        assert pair.instruction and pair.fps == 8.0


def test_target_is_the_edited_scene_with_identical_motion() -> None:
    pair = make_pair("recolour", seed=5)
    np.testing.assert_array_equal(render(pair.scene, 17, 64).frames, pair.source)
    np.testing.assert_array_equal(render(pair.target_scene, 17, 64).frames, pair.target)
    outside = ~pair.masks
    np.testing.assert_array_equal(pair.source[outside], pair.target[outside])


def test_make_pair_is_seeded() -> None:
    a, b, c = make_pair(None, seed=11), make_pair(None, seed=11), make_pair(None, seed=12)
    assert a.edit == b.edit and a.instruction == b.instruction
    np.testing.assert_array_equal(a.target, b.target)
    assert a.edit != c.edit or not np.array_equal(a.source, c.source)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_make_pairs_writes_byte_identical_files_per_seed(tmp_path: Path) -> None:
    manifest = make_pairs(tmp_path / "a", n=8, frames=9, seed=3, progress=False)
    make_pairs(tmp_path / "b", n=8, frames=9, seed=3, progress=False)
    make_pairs(tmp_path / "c", n=8, frames=9, seed=4, progress=False)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 8 * 4 + 1 and a == b
    assert a["pair_00000_source.mp4"] != c["pair_00000_source.mp4"]
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["kind"] for r in records] == [*EDIT_KINDS, *EDIT_KINDS[:2]]  # balanced
    assert {"id", "source", "target", "instruction", "edit", "scene", "mask"} <= records[0].keys()
    assert json.loads((tmp_path / "a" / "pair_00003.json").read_text()) == records[3]


def test_load_pair_round_trip(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2, frames=9, kinds=["remove"], seed=1, progress=False)
    loaded = load_pair(tmp_path / "pair_00001.json")
    fresh = make_pair("remove", frames=9, seed=json.loads((tmp_path / "pair_00001.json").read_text())["seed"])
    assert loaded.edit == fresh.edit and loaded.scene == fresh.scene
    np.testing.assert_array_equal(loaded.masks, fresh.masks)  # masks are stored losslessly
    assert np.abs(loaded.target.astype(int) - fresh.target).mean() < 3  # videos went through H.264


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'warp'"):
        make_pair("warp", seed=0)
    with pytest.raises(ValueError, match="frames"):
        make_pair("add", frames=0, seed=0)
