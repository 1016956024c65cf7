"""What training reads from the real-video data commands: `retake curate` pairs that have no instructions (its
default writer is `none`) are refused with what to change, and `retake synth` triplets keep their edit type as
the sample's kind, so a stage can select or weigh kinds of real SFT data."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from train_fixtures import CLIP, write_curated

from retake.cli import main
from retake.train.datasets import ClipSpec, CuratedPairs, open_triplets

SPEC = ClipSpec(frames=CLIP[0], size=CLIP[1:])


def test_curated_pairs_without_instructions_name_the_writer_to_use(tmp_path):
    root = write_curated(tmp_path / "curated", 2, unlabelled=[0, 1])
    with pytest.raises(ValueError, match=r"none of its 2 pairs has an instruction .*--writer vlm"):
        open_triplets(root, SPEC)


def test_cache_refuses_unlabelled_pairs_in_one_line_before_the_vae_loads(tmp_path, capsys):
    root = write_curated(tmp_path / "curated", 2, unlabelled=[0, 1])
    with pytest.raises(SystemExit) as exit_info:  # a VAE that does not exist: the data is refused first
        main(["cache", str(root), str(tmp_path / "cache"), "--vae", str(tmp_path / "no-vae")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--writer vlm" in err and len(err.splitlines()) == 1 and "has no samples" not in err
    assert not (tmp_path / "cache").exists()


def test_synth_triplets_carry_their_edit_type_as_kind(tmp_path):
    root = write_curated(tmp_path / "synth", 3)
    manifest = pq.read_table(root / "manifest.parquet")
    types = ["remove", "add", "", "remove"]  # "" (a precomputed edit of no known type) is no kind
    pq.write_table(manifest.append_column("edit_type", [types]), root / "manifest.parquet")
    assert CuratedPairs(root, SPEC).kinds() == ["remove", "add", None]


def test_curated_pairs_have_no_kinds(tmp_path):
    assert CuratedPairs(write_curated(tmp_path / "curated", 2), SPEC).kinds() == [None, None]
