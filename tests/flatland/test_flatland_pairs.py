"""Paired edits: identical motion, masks that match the changed pixels, seeded and byte-identical files."""

from __future__ import annotations

import json
import math
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
    assert len(a) == 8 * 4 + 2 and a == b  # 4 files per pair, the manifest and run.json
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


def _pair_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("pair_"))


def test_a_folder_of_other_pairs_is_refused_unless_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    settings = {"frames": 5, "size": 32, "kinds": ["remove"], "progress": False}
    make_pairs(out, n=3, seed=0, **settings)
    before = _files(out)
    with pytest.raises(FileExistsError, match="other settings: seed: 0 -> 1; pass --overwrite"):
        make_pairs(out, n=3, seed=1, **settings)  # would silently replace every pair
    with pytest.raises(FileExistsError, match="n: 3 -> 2"):
        make_pairs(out, n=2, seed=0, **settings)  # would leave pair_00002 outside the manifest
    assert _files(out) == before  # refused before anything was written
    manifest = make_pairs(out, n=2, seed=1, overwrite=True, **settings)
    assert _pair_files(out) == [f"pair_0000{i}{end}" for i in (0, 1) for end in _ENDS]  # no stale pair_00002
    fresh = make_pairs(tmp_path / "fresh", n=2, seed=1, **settings)
    assert manifest.read_text() == fresh.read_text() and _files(out) == _files(tmp_path / "fresh")


_ENDS = (".json", "_mask.png", "_source.mp4", "_target.mp4")


def test_a_stopped_run_resumes_and_other_files_are_never_deleted(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "pairs"
    settings = {"n": 3, "frames": 5, "size": 32, "kinds": ["remove"], "seed": 2, "progress": False}
    make_pairs(out, **settings)
    complete = _files(out)
    (out / "pair_00001.json").write_text('{"id": "pair_0')  # killed while writing pair 1's record
    (out / "manifest.jsonl").unlink()
    (out / ".manifest.jsonl.1234.5678.tmp").write_text("")  # and a temporary file of a write killed outright
    made = []
    monkeypatch.setattr("retake.flatland.pairs.write_pair", _recording(made))
    make_pairs(out, **settings)  # the same settings: pairs 0 and 2 are kept, pair 1 is redone
    assert made == ["pair_00001"] and _files(out) == complete
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds files this command does not write \(notes\.txt\)"):
        make_pairs(out, **settings | {"seed": 3}, overwrite=True)  # a mistyped path loses nothing
    assert (out / "notes.txt").read_text() == "mine" and _files(out)["pair_00000.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        make_pairs(tmp_path / "file", **settings)
    early = tmp_path / "early"  # killed while writing run.json, before any pair
    early.mkdir()
    (early / ".run.json.1234.5678.tmp").write_text('{"format"')
    make_pairs(early, **settings)
    assert _files(early) == complete


def _recording(made: list[str]):
    from retake.flatland import pairs

    write = pairs.write_pair

    def record(sample, out_dir, name, **kwargs):
        made.append(name)
        return write(sample, out_dir, name, **kwargs)

    return record


def test_odd_sizes_and_bad_rates_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    # H.264 pads an odd side, so the videos would be a pixel larger than the masks and records
    with pytest.raises(ValueError, match=r"even sides .* got 61x96"):
        make_pairs(tmp_path / "odd", n=1, size=(61, 96), progress=False)
    for fps in (math.inf, math.nan, 0):
        with pytest.raises(ValueError, match=f"fps must be a finite number > 0, got {fps}"):
            make_pairs(tmp_path / "odd", n=1, fps=fps, progress=False)
    assert not (tmp_path / "odd").exists()
    assert make_pair("remove", size=(61, 97), frames=3, seed=0).source.shape == (3, 61, 97, 3)  # in memory
