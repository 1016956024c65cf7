"""`retake curate` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_synth import write_video

from retake.cli import main
from retake.data.shards import read_manifest


def test_curate_command_writes_the_dataset_and_prints_the_stats_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # one table row per line
    write_video(tmp_path / "in" / "shots.mp4", [(80, 2), (80, 3)])
    (tmp_path / "in" / "broken.mp4").write_text("not a video")
    main(
        [
            "curate",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--workers",
            "1",
            "--no-progress",
            "--seed",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert "2 videos -> 4 pairs" in err and "manifest.parquet" in err
    assert any(
        line.split() == ["┃", "error", "┃", "probe", "┃", "not_media"] for line in err.splitlines()
    ) or ("│ error   │ probe │ not_media │ video │     1 │" in err)
    rows = read_manifest(tmp_path / "out").to_pylist()
    assert (
        sorted((r["source_video"], r["status"]) for r in rows)
        == [("broken.mp4", "error")] + [("shots.mp4", "ok")] * 4
    )
    assert {r["clip_frames"] for r in rows if r["status"] == "ok"} == {17}  # the icve-pretrain recipe


def test_curate_command_reports_user_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["curate", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "input not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["curate", str(tmp_path), str(tmp_path / "out"), "--recipe", "nope"])
    assert "unknown recipe 'nope'" in capsys.readouterr().err


def test_a_curate_run_whose_every_input_failed_exits_with_the_first_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.mp4").write_text("not a video")
    with pytest.raises(SystemExit) as exited:
        main(["curate", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1", "--no-progress"])
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "nothing was made: 1 failed; the first, broken.mp4: probe not_media" in err
    assert (tmp_path / "out" / "manifest.parquet").is_file()  # the run's record is kept for inspection


def test_set_changes_a_recipe_limit_and_a_run_that_filtered_everything_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    write_video(tmp_path / "in" / "shots.mp4", [(80, 2), (80, 3)])
    command = ["curate", str(tmp_path / "in"), "--workers", "1", "--no-progress"]
    main([*command[:2], str(tmp_path / "strict"), *command[2:], "--set", "min_short_side=4096"])
    err = capsys.readouterr().err
    assert "1 videos -> 0 pairs" in err
    assert (
        "note: nothing was made: filters dropped every input, most for low_resolution at basic_filter "
        "(1 videos); loosen min_short_side (now 4096) with --set KEY=VALUE" in err
    )
    main([*command[:2], str(tmp_path / "loose"), *command[2:], "--set", "pairs_per_scene=1"])
    assert "1 videos -> 2 pairs" in capsys.readouterr().err  # one pair for each of the two shots
    with pytest.raises(SystemExit) as exited:
        main([*command[:2], str(tmp_path / "bad"), *command[2:], "--set", "min_side=32"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "unknown config field 'min_side'; known there: " in err
    assert "min_short_side" in err and len(err.strip().splitlines()) == 1


def test_the_flatland_writer_on_videos_without_sidecars_is_refused_before_the_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_video(tmp_path / "in" / "real.mp4", [(40, 2)])
    with pytest.raises(SystemExit) as exited:
        main(["curate", str(tmp_path / "in"), str(tmp_path / "out"), "--writer", "flatland", "--no-progress"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "none of the 1 inputs has one" in err and "--writer vlm" in err
    assert not (tmp_path / "out").exists()


def test_a_run_with_nothing_dropped_says_so_instead_of_an_empty_table() -> None:
    from retake.data.summary import stats_table

    assert stats_table({"videos": 2, "pairs_ok": 4}) == "nothing dropped, nothing failed"
    assert stats_table({"dropped": {"motion": {"low_motion": {"scene": 1}}}}).row_count == 1
