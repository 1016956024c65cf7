"""Flatland sources for the factory: `retake flatland sources` writes them, resumes, and refuses to mix runs;
a sidecar of another kind is named, not a KeyError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retake.cli import main
from retake.synth.flatland import read_source, write_sources


def test_the_command_writes_sources_the_oracles_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sources"
    args = ["flatland", "sources", str(out), "--n", "2", "--frames", "5", "--kinds", "recolour"]
    main([*args, "--no-progress"])
    assert "wrote 2 Flatland sources" in capsys.readouterr().err  # messages go to stderr
    source = read_source(out / "flat_0001.mp4")
    assert source.fps == 8.0 and [edit.kind for edit, _ in source.edits] == ["recolour"]


def test_a_stopped_run_resumes_and_other_settings_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "sources"
    first = write_sources(out, n=2, frames=5, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    first[1].unlink()  # the run stopped before its last video
    assert write_sources(out, n=2, frames=5, progress=False) == first
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the same bytes, nothing else
    with pytest.raises(FileExistsError, match="n: 2 -> 3"):
        write_sources(out, n=3, frames=5, progress=False)
    assert len(write_sources(out, n=3, frames=5, progress=False, overwrite=True)) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"frames": 2.5}, "frames must be an integer"),
        ({"size": 63}, "even sides"),
        ({"kinds": ("sparkle",)}, "sparkle"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_sources(tmp_path / "sources", **{"n": 1, **kwargs})


def test_a_footage_sidecar_is_named_as_the_wrong_kind(tmp_path: Path) -> None:
    video = tmp_path / "footage_0000.mp4"
    video.write_bytes(b"")
    video.with_suffix(".json").write_text(json.dumps({"fps": 24.0, "segments": []}))
    with pytest.raises(
        ValueError, match=r"footage_0000\.json is not a Flatland source sidecar .*`retake flatland sources`"
    ):
        read_source(video)
