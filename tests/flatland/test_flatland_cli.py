"""`retake flatland footage` and `retake flatland pairs` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retake.cli import app, main
from retake.flatland.truth import FootageTruth

runner = CliRunner()


def test_footage_command(tmp_path: Path) -> None:
    args = ["flatland", "footage", str(tmp_path), "--videos", "2", "--seconds", "2", "--size", "48x64"]
    result = runner.invoke(app, [*args, "--fps", "12", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "footage_0000.json",
        "footage_0000.mp4",
        "footage_0001.json",
        "footage_0001.mp4",
        "run.json",  # the settings: a rerun with others is refused
    ]
    truth = FootageTruth.load(tmp_path / "footage_0001.json")
    assert truth.size == (48, 64) and truth.num_frames == 24 and truth.fps == 12
    assert "note" not in result.output and "wrote 2 videos" in result.output  # 2 s at 12 fps: whole frames


def test_footage_says_when_its_length_is_rounded_to_whole_frames(tmp_path: Path) -> None:
    args = ["flatland", "footage", str(tmp_path), "--videos", "1", "--seconds", "0.5", "--fps", "3"]
    result = runner.invoke(app, [*args, "--size", "32", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert FootageTruth.load(tmp_path / "footage_0000.json").num_frames == 2
    assert "note: each video is 2 frames at 3 fps (0.667 s): --seconds 0.5 rounded" in result.output
    assert "wrote 1 video with" in result.output


def test_pairs_command(tmp_path: Path) -> None:
    args = ["flatland", "pairs", str(tmp_path), "--n", "3", "--size", "64", "--frames", "9"]
    result = runner.invoke(app, [*args, "--kinds", "remove,style", "--seed", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["remove", "style", "remove"]
    for record in records:
        for key in ("source", "target", "mask"):
            assert (tmp_path / record[key]).is_file()
        assert (tmp_path / f"{record['id']}.json").is_file() and record["frames"] == 9


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["flatland", "pairs", str(tmp_path), "--n", "1", "--kinds", "melt"])
    assert result.exit_code != 0 and "melt" in str(result.exception)
    result = runner.invoke(app, ["flatland", "footage", str(tmp_path), "--size", "big"])
    assert result.exit_code != 0 and "'big'" in str(result.exception)


def test_main_prints_user_errors_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["flatland", "pairs", str(tmp_path), "--n", "1", "--kinds", "melt", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown edit kind 'melt'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["pairs", "--size", "61x97"],
            "video size must have even sides (H.264 stores 4:2:0 chroma), got 61x97",
        ),
        (["footage", "--size", "61"], "got 61x61 (HxW)"),
        (["footage", "--seconds", "inf"], "seconds must be a finite number > 0, got inf"),
        (["footage", "--fps", "nan"], "fps must be a finite number > 0, got nan"),
    ],
)
def test_bad_sizes_and_rates_are_one_line_errors(tmp_path: Path, capsys, args, problem) -> None:
    command, *options = args
    with pytest.raises(SystemExit) as exit_info:
        main(["flatland", command, str(tmp_path / "out"), "--no-progress", *options])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and problem in " ".join(err.split()) and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pairs_command_refuses_other_pairs_unless_overwrite(tmp_path: Path, capsys) -> None:
    args = ["flatland", "pairs", str(tmp_path), "--n", "2", "--size", "32", "--frames", "5", "--no-progress"]
    main([*args, "--kinds", "remove"])
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--kinds", "remove", "--seed", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2 and "seed: 0 -> 1; pass --overwrite" in err
    main([*args, "--kinds", "style", "--seed", "1", "--overwrite"])
    records = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["style", "style"]
    assert all(json.loads((tmp_path / f"pair_0000{i}.json").read_text())["kind"] == "style" for i in (0, 1))
