"""Drawing some edit kinds more often (`data.kind_weights`): draws with replacement in proportion to the
weights, per epoch and seeded (so resume stays exact), named on the start line, checked when read."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
import torch
from train_fixtures import run_config, stage, write_random_cache

from retake.cli import main
from retake.train.config import DataConfig
from retake.train.loader import SampleStream
from retake.train.logs import read_metrics
from retake.train.loop import TrainingInterrupted, train
from retake.train.subset import kind_shares, sample_weights

KINDS = ["add", "style", "remove", "remove", "remove", "remove"]


class _Kinds:
    """A dataset of only ids and kinds: enough for the stream's order."""

    def __init__(self, kinds):
        self._kinds = kinds

    def __len__(self):
        return len(self._kinds)

    def get(self, index):
        return index

    def kinds(self):
        return list(self._kinds)


def _drawn(stream: SampleStream, count: int) -> Counter:
    return Counter(stream.index(position) for position in range(count))


def test_draws_follow_the_weights_and_unweighted_epochs_take_every_sample_once():
    data = _Kinds(KINDS)
    plain = SampleStream(data, seed=0, micro_batch=2)
    assert sorted(plain.index(p) for p in range(6)) == list(range(6))
    weights = sample_weights(data.kinds(), {"add": 8.0})  # add: 8 of 13 parts
    assert weights.tolist() == [8, 1, 1, 1, 1, 1]
    drawn = _drawn(SampleStream(data, seed=0, micro_batch=2, weights=weights), 6000)
    assert drawn[0] / 6000 == pytest.approx(8 / 13, abs=0.03) and drawn[1] / 6000 == pytest.approx(
        1 / 13, abs=0.02
    )
    again = SampleStream(data, seed=0, micro_batch=2, weights=weights)
    assert [again.index(p) for p in range(50)] == [
        SampleStream(data, seed=0, micro_batch=2, weights=weights).index(p) for p in range(50)
    ]


def test_shares_and_bad_weights():
    weights = sample_weights(KINDS, {"add": 2.0, "style": 2.0})
    assert kind_shares(KINDS, weights) == {"add": 0.25, "remove": 0.5, "style": 0.25}
    assert sample_weights(KINDS, {}) is None
    with pytest.raises(ValueError, match=r"holds no samples of kind \['sparkle'\]"):
        sample_weights(KINDS, {"sparkle": 2.0})
    with pytest.raises(ValueError, match="records no edit kinds"):
        sample_weights([None, None], {"add": 2.0})
    with pytest.raises(ValueError, match="weights must be 6 values >= 0"):
        SampleStream(_Kinds(KINDS), seed=0, micro_batch=1, weights=torch.zeros(6, dtype=torch.float64))


def test_configs_take_a_table_and_refuse_weights_on_kinds_left_out():
    assert DataConfig(cache=("c",), kind_weights={"add": 3}).kind_weights == (("add", 3.0),)
    with pytest.raises(ValueError, match=r"kind_weights\.add must be > 0, got 0\.0"):
        DataConfig(cache=("c",), kind_weights={"add": 0})
    with pytest.raises(ValueError, match=r"kind_weights\.add must be a number, got '3'"):
        DataConfig(cache=("c",), kind_weights={"add": "3"})
    with pytest.raises(
        ValueError, match=r"kind_weights names kinds \['add'\] that `kinds` \['style'\] leaves out"
    ):
        DataConfig(cache=("c",), kinds=("style",), kind_weights={"add": 2})


def test_a_weighted_stage_resumes_exactly_and_says_how_it_draws(tmp_path, capsys):
    cache = write_random_cache(tmp_path / "cache", 6, kinds=KINDS)
    spec = stage("s", cache, steps=6, data={"cache": str(cache), "kind_weights": {"add": 4}})
    straight = run_config(tmp_path / "straight", [spec], checkpoint_every=100)
    split = run_config(tmp_path / "split", [spec], checkpoint_every=100)
    train(straight)

    def stop_at_three(info) -> None:
        if info.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train(split, callbacks=[stop_at_three])
    assert train(split).stages[0].resumed_from == 3
    assert [r["loss"] for r in read_metrics(straight.out)] == [r["loss"] for r in read_metrics(split.out)]
    (tmp_path / "run.toml").write_text(
        f'out = "run"\nprogress = false\n[model]\npreset = "tiny"\n[[stages]]\nname = "sft"\nsteps = 1\n'
        f'batch = 2\ndata = {{ cache = "{cache}", kind_weights = {{ add = 4 }} }}\n'
    )
    main(["train", str(tmp_path / "run.toml")])
    assert "on 6 samples drawn as add 44%, remove 44%, style 11%, from fresh" in capsys.readouterr().err


def test_a_weighted_stage_trains_on_the_weighted_kind_more_often(tmp_path):
    cache = write_random_cache(tmp_path / "cache", 6, kinds=KINDS)  # one add among six samples
    seen: list[str] = []
    weighted = stage("s", cache, steps=6, batch=4, data={"cache": str(cache), "kind_weights": {"add": 20}})
    train(run_config(tmp_path / "run", [weighted]), callbacks=[lambda info: seen.extend(info.ids)])
    assert len(seen) == 24 and seen.count("s000") >= 12  # expected 80% of the draws, 1/6 unweighted
