"""The factory on the shared shard runner: a row for every input (broken ones with reasons), SIGKILL-resume to
the very dataset of an uninterrupted run, and executors that agree."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synth_helpers import INSVIE_ORACLE

from retake.data.shards import read_manifest
from retake.synth.recipes import get_recipe, with_overrides
from retake.synth.runner import synthesize

CONFIG = with_overrides(get_recipe("insvie"), {**INSVIE_ORACLE, "shard_size": 1})


@pytest.fixture(scope="module")
def inputs(flatland_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Flatland sources plus broken inputs: an empty mp4, text named .mp4, a still without edits."""
    folder = tmp_path_factory.mktemp("inputs")
    for path in flatland_sources.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


@pytest.fixture(scope="module")
def reference(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    synthesize(inputs, out, CONFIG, workers=1, progress=False)
    return out


def _same_dataset(out: Path, reference: Path) -> None:
    assert read_manifest(out).equals(read_manifest(reference))
    tars = sorted(p.name for p in (reference / "shards").glob("*.tar"))
    assert tars == sorted(p.name for p in (out / "shards").glob("*.tar"))
    for name in tars:
        assert (out / "shards" / name).read_bytes() == (reference / "shards" / name).read_bytes(), name
    assert json.loads((out / "stats.json").read_text()) == json.loads((reference / "stats.json").read_text())


def test_every_input_gets_rows_and_broken_ones_get_reasons(reference: Path) -> None:
    rows = read_manifest(reference).to_pylist()
    by_source = {r["source_video"]: r for r in rows if r["triplet"] is None}
    assert (by_source["zero.mp4"]["status"], by_source["zero.mp4"]["reason"]) == ("error", "not_media")
    assert (by_source["text.mp4"]["status"], by_source["text.mp4"]["reason"]) == ("error", "not_media")
    assert (by_source["broken.png"]["status"], by_source["broken.png"]["stage"]) == ("error", "read")
    ok = [r for r in rows if r["status"] == "ok"]
    dropped = [r for r in rows if r["status"] == "dropped"]
    assert (
        len(ok) == 11 and len(dropped) == 1
    )  # every Flatland source has a row; one failed the second filter
    assert (dropped[0]["stage"], dropped[0]["reason"]) == ("quality_filter", "clipped")
    stats = json.loads((reference / "stats.json").read_text())
    assert stats["videos"] == 15 and stats["triplets_ok"] == 11 and stats["videos_error"] == 3
    assert stats["errors"]["read"]["not_media"] == {"video": 2}


def test_resume_after_sigkill_gives_the_uninterrupted_dataset(
    inputs: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    script = (
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom test_synth_runner import CONFIG\n"
        "from retake.synth.runner import synthesize\n"
        f"synthesize({str(inputs)!r}, {str(out)!r}, CONFIG, workers=1, progress=False)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "parts").glob("*.parquet")) and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = len(list((out / "parts").glob("*.parquet")))
    assert 1 <= finished < 15 and not (out / "manifest.parquet").exists()
    result = synthesize(inputs, out, CONFIG, workers=1, progress=False)
    assert result.shards_skipped == finished
    _same_dataset(out, reference)
    assert not list(out.rglob(".*.tmp"))


def test_a_restart_with_another_config_is_refused(inputs: Path, reference: Path) -> None:
    with pytest.raises(ValueError, match="editor"):
        synthesize(
            inputs, reference, with_overrides(CONFIG, {"editor.strengths": [1.0]}), workers=1, progress=False
        )


def test_a_process_pool_gives_the_same_dataset(inputs: Path, reference: Path, tmp_path: Path) -> None:
    synthesize(inputs, tmp_path / "pool", CONFIG, workers=2, progress=False)
    _same_dataset(tmp_path / "pool", reference)


def test_missing_folders_and_vlm_settings_fail_before_any_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RETAKE_VLM_BASE_URL", raising=False)
    video_file = tmp_path / "in.mp4"
    video_file.write_bytes(b"")
    with pytest.raises(ValueError, match=r"editor\.path"):
        synthesize(video_file, tmp_path / "a", get_recipe("insvie"), progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        config = with_overrides(get_recipe("insvie"), {"editor.path": str(tmp_path / "nowhere")})
        synthesize(video_file, tmp_path / "b", config, progress=False)
    with pytest.raises(Exception, match="RETAKE_VLM_BASE_URL"):
        config = with_overrides(get_recipe("insvie"), {"editor.path": str(tmp_path)})
        synthesize(video_file, tmp_path / "c", config, progress=False)
    with pytest.raises(ValueError, match="only remove"):
        config = with_overrides(get_recipe("icve-sft"), {"masks.name": "flatland"})
        synthesize(video_file, tmp_path / "d", config, progress=False)
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.slow  # Ray's start-up alone takes 20-50 s on a shared 2-core machine
def test_ray_gives_the_same_dataset(inputs: Path, reference: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    synthesize(inputs, tmp_path / "ray", CONFIG, executor="ray", workers=2, progress=False)
    _same_dataset(tmp_path / "ray", reference)


def test_synthesize_takes_a_recipe_by_name(monkeypatch, tmp_path: Path) -> None:
    from retake.synth import runner
    from retake.synth.recipes import get_recipe

    seen = []
    monkeypatch.setattr(runner, "run_shards", lambda inputs, out, config, family, **_: seen.append(config))
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    synthesize(clip, tmp_path / "out", "insvie", progress=False)
    assert seen == [get_recipe("insvie")]
    with pytest.raises(ValueError, match="config must be a synth recipe config or name, got dict"):
        synthesize(clip, tmp_path / "out", {"seed": 1}, progress=False)
