"""`retake bundle --transformer RUN` on a training run folder: the run keeps its weights per stage, so the
error names the newest stage's export instead of only saying there is no config.json."""

from __future__ import annotations

import os

import pytest

from retake.sample.bundle import find_part


def test_a_run_folder_names_the_newest_stages_weights(tmp_path):
    for i, stage in enumerate(("pretrain", "sft")):
        folder = tmp_path / "run" / "stages" / stage / "transformer"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        os.utime(folder, (1000 + i, 1000 + i))  # sft was written last
    with pytest.raises(FileNotFoundError, match=r"per stage, e\.g\. .*stages/sft/transformer \(or .*-ema\)"):
        find_part(tmp_path / "run", "transformer")


def test_another_folder_keeps_the_plain_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config.json in .* or .*transformer$"):
        find_part(tmp_path, "transformer")


def test_an_ema_export_a_stage_never_made_points_to_the_plain_one(tmp_path):
    plain = tmp_path / "run" / "stages" / "sft" / "transformer"
    plain.mkdir(parents=True)
    (plain / "config.json").write_text("{}")
    with pytest.raises(
        FileNotFoundError, match=r"kept no EMA \(optim\.ema_decay\), so its weights are in .*sft/transformer$"
    ):
        find_part(tmp_path / "run" / "stages" / "sft" / "transformer-ema", "transformer")
