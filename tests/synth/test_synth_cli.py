"""`retake synth` from the command line, and the typed recipe configs it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from retake.cli import main
from retake.data.shards import read_manifest
from retake.synth.recipes import (
    IcveSftConfig,
    InsVieConfig,
    SourceConfig,
    config_from_dict,
    get_recipe,
    with_overrides,
)


def test_synth_command_writes_the_dataset_and_prints_the_stats(
    flatland_sources: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("".join(f"{p}\n" for p in sorted(flatland_sources.glob("*.mp4"))[:3]))
    options = [
        "--recipe",
        "icve-sft",
        "--masks",
        "flatland",
        "--inpainter",
        "flatland",
        "--types",
        "remove,add",
    ]
    main(
        [
            "synth",
            str(inputs),
            str(tmp_path / "out"),
            *options,
            "--frames",
            "5",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert "3 inputs ->" in err and "manifest.parquet" in err
    rows = read_manifest(tmp_path / "out").to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and {r["edit_type"] for r in ok} == {"remove", "add"} and {r["frames"] for r in ok} == {5}
    assert all(r["recipe"] == "icve-sft" for r in rows)


def test_synth_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")  # an input, so that the settings are what is wrong
    for args, message in [
        (["--recipe", "nope"], "unknown synth recipe 'nope'"),
        (["--recipe", "icve-sft", "--editor", "flatland"], "unknown config section 'editor'"),
        (["--editor", "magic"], "editor must be one of"),
        (["--frames", "6"], "clip_frames must be 4k+1"),
        (
            ["--strengths", "5,abc"],
            "--strengths must be comma-separated numbers such as 5,7.5,10, got '5,abc'",
        ),
        ([], "editor 'precomputed' needs editor.path (--edits)"),
        (["--recipe", "icve-sft"], "mask source 'files' needs masks.path (--masks-dir)"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["synth", str(tmp_path), str(tmp_path / "out"), *args])
        assert exited.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_recipes_round_trip_and_validate() -> None:
    for name, kind in (("insvie", InsVieConfig), ("icve-sft", IcveSftConfig)):
        config = get_recipe(name)
        assert isinstance(config, kind) and config_from_dict(config.to_dict()) == config
    changed = with_overrides(
        get_recipe("insvie"), {"editor.strengths": [2, 4], "seed": 5, "stills.enabled": None}
    )
    assert changed.editor.strengths == (2, 4) and changed.seed == 5 and changed.stills.enabled
    for bad, message in [
        ({"editor.name": "x"}, "editor must be one of"),
        ({"editor.strengths": []}, "strengths"),
        ({"selection.min_score": 11}, "min_score"),
        ({"propagation.texture_weight": 2}, "texture_weight"),
        ({"stills.motions": ["spin"]}, "camera motion"),
        ({"nope.x": 1}, "unknown config section 'nope'"),
        ({"editor.colour": 1}, "unknown config field 'editor.colour'"),
    ]:
        with pytest.raises(ValueError, match=message):
            with_overrides(get_recipe("insvie"), bad)
    with pytest.raises(ValueError, match="proportions"):
        with_overrides(get_recipe("icve-sft"), {"pairs.proportions": [1, 1]})
    with pytest.raises(ValueError, match="min_area < max_area"):
        with_overrides(get_recipe("icve-sft"), {"masks.min_area": 0.5})
    with pytest.raises(ValueError, match="clip_frames"):
        SourceConfig(clip_frames=8)
    with pytest.raises(ValueError, match="unknown synth recipe"):
        config_from_dict({"recipe": "curate"})


def test_overrides_of_the_wrong_type_and_ranges_that_pass_no_video_are_refused() -> None:
    """A str seed used to be stored as is; NaN or inverted ranges made a run that made nothing."""
    for bad, message in [
        ({"seed": "3"}, "seed must be an integer, got '3'"),
        ({"shard_size": 2.0}, r"shard_size must be an integer, got 2\.0"),
        ({"editor.strengths": "5"}, "strengths must be a sequence, got '5'"),
        ({"editor.strengths": ["5"]}, "strengths item must be a number, got '5'"),
        ({"source.target_fps": float("nan")}, "target_fps must be finite, got nan"),
        ({"source.min_duration_s": 10, "source.max_duration_s": 1}, "min_duration_s <= max_duration_s"),
        ({"source.min_fps": 100, "source.max_fps": 10}, "min_fps <= max_fps.* 100, 10"),
    ]:
        with pytest.raises(ValueError, match=message):
            with_overrides(get_recipe("insvie"), bad)


def test_a_synth_run_that_made_nothing_because_inputs_failed_exits_with_the_first_failure(
    flatland_sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sorted(flatland_sources.glob("*.mp4"))[0]
    empty = tmp_path / "no-weights"
    empty.mkdir()
    args = [
        "--editor",
        "diffusers",
        "--edits",
        str(empty),
        "--instruction",
        "make it red",
        "--selection",
        "none",
    ]
    args += ["--propagator", "flow"]
    with pytest.raises(SystemExit) as exited:  # it would fail the same way on every rerun: not a success
        main(["synth", str(source), str(tmp_path / "out"), *args, "--frames", "5", "--no-progress"])
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "nothing was made: 1 failed; the first," in err and "model_index.json" in err
    assert "manifest.parquet" in err


def test_the_headline_counts_inputs_dropped_before_any_triplet() -> None:
    from retake.synth.stats import headline

    stats = {"videos": 6, "videos_dropped": 6, "triplets_ok": 0, "triplets_dropped": 0, "triplets_error": 0}
    assert (
        headline(stats)
        == "6 inputs -> 0 triplets (6 inputs and 0 triplets dropped, 0 inputs and 0 triplets failed)"
    )
    stats = {**stats, "videos_dropped": 1, "videos_error": 2, "triplets_ok": 3, "triplets_dropped": 1}
    assert (
        headline(stats)
        == "6 inputs -> 3 triplets (1 inputs and 1 triplets dropped, 2 inputs and 0 triplets failed)"
    )


def test_set_changes_any_synth_setting_by_dotted_name() -> None:
    from retake.synth.recipes import with_settings

    config = with_settings(get_recipe("insvie"), {"source.target_fps": None, "editor.strengths": [3, 6]})
    assert config.source.target_fps is None and config.editor.strengths == (3, 6)


def test_a_run_that_dropped_everything_names_the_settings_to_loosen() -> None:
    from retake.data.summary import all_dropped_note

    stats = {"dropped": {"sft": {"blurry_fill": {"triplet": 2}}, "source": {"too_short": {"video": 1}}}}
    note = all_dropped_note(0, stats, get_recipe("icve-sft").to_dict())
    assert note == (
        "nothing was made: filters dropped every input, most for blurry_fill at sft (2 triplets); "
        "loosen pairs.min_sharpness_ratio (now 0.4) with --set KEY=VALUE"
    )
    assert all_dropped_note(1, stats) is None
