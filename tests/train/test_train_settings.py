"""Training and caching at settings other than the defaults: data whose latents the model's patches do not
tile is refused when the stage starts, naming the clip size to change; Flatland pairs are not cropped to
another aspect ratio, which could cut the edited object out of the frames its instruction talks about."""

from __future__ import annotations

import json
import re

import pytest
import torch
from train_fixtures import (
    CHANNELS,
    POOLED_DIM,
    TEXT_DIM,
    TEXT_LEN,
    random_sample,
    run_config,
    stage,
    write_flatland_pairs,
)

from retake.model.text import TextEmbedding
from retake.train.cache import cache_dataset, read_index, write_cache
from retake.train.datasets import ClipSpec, check_flatland_crop, open_triplets
from retake.train.loop import train


def _empty_text() -> TextEmbedding:
    mask = torch.tensor([[True] + [False] * (TEXT_LEN - 1)])
    return TextEmbedding(torch.zeros(1, TEXT_LEN, TEXT_DIM), mask, torch.zeros(1, POOLED_DIM))


def test_a_cache_the_patches_do_not_tile_is_refused_before_the_first_step(tmp_path):
    # 40 px clips through an 8x VAE: 5 x 5 latents, which the tiny model's 2 x 2 patches do not tile.
    samples = [random_sample(i, latent=(CHANNELS, 2, 5, 5)) for i in range(2)]
    info = {"frames": 5, "size": [40, 40]}
    cache = tmp_path / "cache"
    write_cache(cache, samples, _empty_text(), info=info)
    config = run_config(tmp_path / "run", [stage("sft", cache, steps=2)])
    with pytest.raises(ValueError, match=r"stage 'sft'.*40x40 px.*multiples of 16 px.*--size"):
        train(config)
    assert not (tmp_path / "run" / "stages" / "sft" / "checkpoints").exists()


def test_videos_encoded_on_the_fly_at_a_size_the_patches_do_not_tile_are_refused(tmp_path, vae_dir):
    pairs = write_flatland_pairs(tmp_path / "pairs", 2)
    data = {"path": str(pairs), "frames": 5, "size": [24, 24]}  # 8x VAE: 3 x 3 latents
    minilm = {"preset": "tiny", "text_embed_dim": 384, "pooled_projection_dim": 384}
    stages = [stage("sft", pairs, data=data)]
    config = run_config(tmp_path / "run", stages, vae=str(vae_dir), model=minilm)
    with pytest.raises(ValueError, match=r"stage 'sft'.*\(2, 3, 3\).*multiples of 16 px"):
        train(config)


def _flatland_size(root, size):
    """Record `size` in every manifest line, as `retake flatland pairs` does."""
    manifest = root / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(r | {"size": list(size)}) + "\n" for r in records))
    return root


@pytest.mark.parametrize("size", [(16, 16), (32, 32), (8, 8)])
def test_flatland_pairs_at_their_own_aspect_ratio_are_accepted(tmp_path, size):
    pairs = _flatland_size(write_flatland_pairs(tmp_path / "pairs", 1), (16, 16))
    check_flatland_crop(open_triplets(pairs, ClipSpec(5, size)))


def test_the_sizes_a_refused_crop_suggests_are_taken(tmp_path, vae_dir):
    # Pairs of 48x80 asked at 64x64: the sizes suggested keep the pairs' shape within the crop allowed *and*
    # are multiples of the VAE's 8 px (rounding 64x107 from the ratio alone gave a size the VAE refuses).
    pairs = _flatland_size(write_flatland_pairs(tmp_path / "pairs", 1), (48, 80))
    with pytest.raises(ValueError, match=r"crop 40\.0% of a side \(at most 3%\)") as refused:
        cache_dataset(pairs, tmp_path / "cache", vae=vae_dir, frames=5, size=(64, 64), progress=False)
    suggested = re.findall(r"(\d+)x(\d+)", str(refused.value).split("e.g.")[1])
    assert suggested == [("48", "80"), ("56", "96")]
    for h, w in suggested:
        assert int(h) % 8 == 0 and int(w) % 8 == 0
        check_flatland_crop(open_triplets(pairs, ClipSpec(5, (int(h), int(w)))), multiple=8)


def test_flatland_pairs_cropped_to_another_aspect_ratio_are_refused(tmp_path, vae_dir):
    pairs = _flatland_size(write_flatland_pairs(tmp_path / "pairs", 1), (16, 16))
    with pytest.raises(
        ValueError, match=r"are 16x16 .*size.* 16x32 .*crop 50\.0%.*8 px, e\.g\. 24x24 or 16x16$"
    ):
        cache_dataset(pairs, tmp_path / "cache", vae=vae_dir, frames=5, size=(16, 32), progress=False)
    assert not (tmp_path / "cache").exists()
    data = {"path": str(pairs), "frames": 5, "size": [32, 16]}
    config = run_config(tmp_path / "run", [stage("sft", pairs, data=data)], vae=str(vae_dir))
    # Training also needs the model's 2 x 2 patches: multiples of 8 x 2 px (24x24 would be refused at step 0).
    with pytest.raises(ValueError, match=r"16x16.*32x16.*multiples of 16 px, e\.g\. 16x16 or 32x32$"):
        train(config)


def test_cache_takes_one_int_for_a_square_and_names_a_file_in_its_place(tmp_path, vae_dir):
    pairs = _flatland_size(write_flatland_pairs(tmp_path / "pairs", 1), (16, 16))
    summary = cache_dataset(pairs, tmp_path / "cache", vae=vae_dir, frames=5, size=16, progress=False)
    assert read_index(summary.root)["size"] == [16, 16]
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(FileExistsError, match="taken is a file, not a folder for a latent cache"):
        cache_dataset(pairs, tmp_path / "taken", vae=vae_dir, frames=5, size=16, progress=False)
