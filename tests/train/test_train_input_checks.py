"""Bad arguments to the latent cache and the checkpoint writer: sequence-like indexing with errors naming the
index and the length; checkpoint roots as str or ~, refused bad steps and keeps, numpy steps that write, and
no temporary folder left behind by a failed write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import random_sample, write_random_cache

from retake.train.cache import LatentCache, LatentCaches
from retake.train.checkpoint import list_checkpoints, write_checkpoint

TENSORS = {"model": {"w": torch.ones(2)}}


def test_cache_indices_work_like_a_sequence(tmp_path: Path) -> None:
    cache = LatentCache(write_random_cache(tmp_path / "cache", 7, shard_size=3))
    assert cache.get(-1).id == random_sample(6).id and cache.get(-7).id == random_sample(0).id
    assert cache.get(np.int64(4)).id == random_sample(4).id
    torch.testing.assert_close(cache.get(-3).source, random_sample(4).source)
    for index in (7, -8, 100):
        with pytest.raises(
            IndexError, match=rf"sample index {index} is out of range for a cache of 7 samples"
        ):
            cache.get(index)
    for index in (1.0, True, "1"):
        with pytest.raises(ValueError, match="sample index must be an integer"):
            cache.get(index)


def test_joined_caches_index_like_a_sequence_too(tmp_path: Path) -> None:
    a = write_random_cache(tmp_path / "a", 3)
    b = write_random_cache(tmp_path / "b", 2, start=3)
    both = LatentCaches([a, b])
    assert both.get(-1).id == f"b/{random_sample(4).id}" and both.get(-5).id == f"a/{random_sample(0).id}"
    with pytest.raises(IndexError, match="sample index 5 is out of range for a cache of 5 samples"):
        both.get(5)


def test_a_checkpoint_root_may_be_a_str_with_a_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    final = write_checkpoint("~/run/checkpoints", 2, TENSORS, {"step": 2}, keep=1)
    assert final == tmp_path / "run" / "checkpoints" / "step-00000002"
    assert [c.step for c in list_checkpoints(tmp_path / "run" / "checkpoints")] == [2]


def test_a_negative_step_or_a_keep_below_one_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        write_checkpoint(tmp_path / "c", -1, TENSORS, {"step": -1}, keep=1)
    with pytest.raises(ValueError, match=r"step must be an integer, got 1\.5"):
        write_checkpoint(tmp_path / "c", 1.5, TENSORS, {}, keep=1)
    for keep in (0, -2):
        with pytest.raises(ValueError, match=f"keep must be >= 1, got {keep}"):
            write_checkpoint(tmp_path / "c", 1, TENSORS, {"step": 1}, keep=keep)
    assert not (tmp_path / "c").exists()


def test_a_numpy_step_writes_a_plain_checkpoint(tmp_path: Path) -> None:
    final = write_checkpoint(
        tmp_path, np.int64(1), TENSORS, {"step": np.int64(1), "loss": np.float32(0.5)}, keep=1
    )
    assert final.name == "step-00000001"
    assert json.loads((final / "state.json").read_text()) == {"step": 1, "loss": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]


def test_a_failed_write_leaves_no_temporary_folder(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 1, TENSORS, {"step": 1}, keep=2)
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_checkpoint(tmp_path, 2, TENSORS, {"step": 2, "bad": object()}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # the earlier one untouched


def test_stage_and_data_configs_from_python_take_numpy_ints_and_refuse_floats(tmp_path):
    from retake.train.config import DataConfig, StageConfig

    data = DataConfig(path="~/pairs", frames=np.int64(5), size=32)
    assert data.path == Path.home() / "pairs" and type(data.frames) is int and data.size == (32, 32)
    stage = StageConfig("s", np.int64(3), DataConfig(cache=str(tmp_path)), batch=np.int32(2))
    assert (type(stage.steps), type(stage.batch)) == (int, int) and (stage.steps, stage.batch) == (3, 2)
    with pytest.raises(ValueError, match=r"data frames must be an integer, got 17\.0"):
        DataConfig(path="x", frames=17.0)
    with pytest.raises(ValueError, match=r"steps must be an integer, got 2\.5"):
        StageConfig("s", 2.5, DataConfig(cache=str(tmp_path)))
    with pytest.raises(ValueError, match="size must be"):
        DataConfig(path="x", size=(16, 16, 3))
