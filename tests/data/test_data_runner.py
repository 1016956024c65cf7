"""The curation runner end to end on small synthetic inputs: rows for every input, the WebDataset shards,
SIGKILL-resume, and executors that agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from data_synth import write_inputs

from retake import video
from retake.data.recipes import get_recipe
from retake.data.runner import curate
from retake.data.shards import iter_shard, read_manifest

CONFIG = get_recipe("icve-pretrain").replace(
    clip_frames=5, shard_size=1, output_short_side=32, min_duration_s=1.0
)
TEST_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[int]]]:
    folder = tmp_path_factory.mktemp("inputs")
    return folder, write_inputs(folder)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted in-process run: the dataset every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    curate(inputs[0], out, CONFIG, workers=1, progress=False)
    return out


def _rows(out: Path) -> dict[str, dict]:
    return {r["pair_id"]: r for r in read_manifest(out).to_pylist()}


def _same_dataset(out: Path, reference: Path) -> None:
    assert read_manifest(out).equals(read_manifest(reference))
    tars = sorted(p.name for p in (reference / "shards").glob("*.tar"))
    assert tars == sorted(p.name for p in (out / "shards").glob("*.tar"))
    for name in tars:  # byte for byte: same members, same encoded clips
        assert (out / "shards" / name).read_bytes() == (reference / "shards" / name).read_bytes(), name
    strip = lambda s: {k: v for k, v in s.items() if k != "vlm_spend"}  # noqa: E731
    assert strip(json.loads((out / "stats.json").read_text())) == strip(
        json.loads((reference / "stats.json").read_text())
    )


def test_every_input_gets_rows_and_bad_ones_get_reasons(reference: Path) -> None:
    rows = list(_rows(reference).values())
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source_video"], []).append(row)
    video_level = {
        s: (r[0]["status"], r[0]["stage"], r[0]["reason"]) for s, r in by_source.items() if len(r) == 1
    }
    assert video_level["zero.mp4"] == ("error", "probe", "not_media")
    assert video_level["text.mp4"] == ("error", "probe", "not_media")
    assert video_level["audio.mp4"] == ("error", "probe", "no_video_stream")
    assert video_level["truncated.mp4"][0] == "error" and video_level["truncated.mp4"][2] in {
        "no_frames",
        "corrupt_stream",
    }
    assert video_level["short.mp4"] == ("dropped", "basic_filter", "too_short")
    assert video_level["still.mp4"] == ("dropped", "motion", "low_motion")
    for i in range(4):  # two scenes each, two pairs per scene
        pairs = by_source[f"good_{i}.mp4"]
        assert [(r["scene"], r["pair"], r["status"]) for r in pairs] == [
            (s, p, "ok") for s in (0, 1) for p in (0, 1)
        ]
    stats = json.loads((reference / "stats.json").read_text())
    assert stats["videos"] == 10 and stats["pairs_ok"] == 16 and stats["videos_error"] == 4
    assert stats["errors"]["probe"]["not_media"] == {"video": 2}
    assert stats["dropped"]["motion"]["low_motion"] == {"scene": 1, "video": 1}


def test_no_clip_crosses_a_cut_and_clips_sample_the_target_fps(inputs, reference: Path) -> None:
    _, cuts = inputs
    for row in _rows(reference).values():
        if row["status"] != "ok":
            continue
        bounds = [0, *cuts[row["source_video"]], 10**9]
        ends = [row["src_start"], row["src_end"] - 1, row["tgt_start"], row["tgt_end"] - 1]
        scenes = set(np.searchsorted(bounds, ends, side="right") - 1)
        assert len(scenes) == 1, row
        assert row["src_frames"] == list(range(row["src_start"], row["src_end"], 2))  # 24 fps -> 12 fps
        assert row["clip_fps"] == 12.0 and row["clip_frames"] == 5
        assert row["src_end"] <= row["tgt_start"] or row["tgt_end"] <= row["src_start"]  # never overlapping


def test_shards_are_webdataset_tars_of_two_clips_and_the_row(inputs, reference: Path) -> None:
    rows = _rows(reference)
    seen = {}
    for tar in sorted((reference / "shards").glob("*.tar")):
        for key, files in iter_shard(tar):
            assert set(files) == {"src.mp4", "tgt.mp4", "json"}
            seen[key] = files
    assert set(seen) == {k for k, r in rows.items() if r["status"] == "ok"}
    key = sorted(seen)[0]
    row = rows[key]
    assert json.loads(seen[key]["json"]) == row
    clip_path = reference / "clip.mp4"
    clip_path.write_bytes(seen[key]["src.mp4"])
    clip = video.read(clip_path)
    assert clip.frames.shape == (5, 32, 48, 3) and clip.fps == pytest.approx(12.0)
    source = video.read(inputs[0] / row["source_video"], size=(32, 48)).frames[row["src_frames"]]
    assert np.abs(clip.frames.astype(int) - source.astype(int)).mean() < 8  # the same frames, through H.264


def test_resume_after_sigkill_gives_the_uninterrupted_dataset(
    inputs, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    script = (
        "from retake.data.recipes import get_recipe\nfrom retake.data.runner import curate\n"
        f"config = get_recipe('icve-pretrain').replace(clip_frames=5, shard_size=1, output_short_side=32, "
        f"min_duration_s=1.0)\ncurate({str(inputs[0])!r}, {str(out)!r}, config, workers=1, progress=False)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, cwd=TEST_DIR)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "parts").glob("*.parquet")) and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = len(list((out / "parts").glob("*.parquet")))
    assert 1 <= finished < 10 and not (out / "manifest.parquet").exists()  # killed mid-run

    result = curate(inputs[0], out, CONFIG, workers=1, progress=False)
    assert result.shards_skipped == finished
    _same_dataset(out, reference)
    assert not list(out.rglob(".*.tmp"))  # the killed run's half-written files are gone


def test_a_restart_with_another_config_is_refused(inputs, reference: Path) -> None:
    with pytest.raises(
        ValueError, match=rf"another config \(pairs_per_scene: {CONFIG.pairs_per_scene} -> 3\)"
    ):
        curate(inputs[0], reference, CONFIG.replace(pairs_per_scene=3), workers=1, progress=False)


def test_pool_workers_take_their_share_of_the_cores_and_keep_freed_memory(monkeypatch) -> None:
    from retake.data import executors

    monkeypatch.setattr(executors, "default_workers", lambda: 8)  # read in this process, sent to the workers
    for workers, threads in ((2, 4), (8, 1), (3, 2)):
        settings = list(executors.LocalExecutor(workers).map(_settings_of_a_worker, [0, 1]))
        expected = {"cv2_threads": threads, "decoder_threads": threads, "heap_retained": True}
        assert settings == [expected] * 2, (workers, settings)


def _settings_of_a_worker(_: int) -> dict:
    from retake.data.executors import worker_settings

    return worker_settings()


def test_a_process_pool_gives_the_same_dataset(inputs, reference: Path, tmp_path: Path) -> None:
    curate(inputs[0], tmp_path / "pool", CONFIG, workers=2, progress=False)
    _same_dataset(tmp_path / "pool", reference)


@pytest.mark.slow  # Ray's start-up alone takes 20-50 s on this shared 2-core machine
def test_ray_gives_the_same_dataset(inputs, reference: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    curate(inputs[0], tmp_path / "ray", CONFIG, executor="ray", workers=2, progress=False)
    _same_dataset(tmp_path / "ray", reference)


def test_an_input_list_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    from retake.data.runner import list_inputs

    (tmp_path / "a.mp4").write_bytes(b"")
    listing = tmp_path / "inputs.txt"
    listing.write_text("# kept by hand\n\na.mp4\n  # the b clips are broken\n/abs/b.mp4\n")
    assert list_inputs(listing) == [(Path("/abs/b.mp4"), "/abs/b.mp4"), (tmp_path / "a.mp4", "a.mp4")]


def test_workers_none_means_one_per_cpu_and_zero_is_refused(monkeypatch) -> None:
    """`workers or default` used to turn 0 into every CPU without a word."""
    from retake.data import executors

    monkeypatch.setattr(executors, "default_workers", lambda: 8)
    assert executors.make_executor("local").workers == executors.RayExecutor().workers == 8
    for bad, message in ((0, "workers must be >= 1, got 0"), (2.5, r"workers must be an integer, got 2\.5")):
        for name in executors.EXECUTORS:
            with pytest.raises(ValueError, match=message):
                executors.make_executor(name, bad)
    with pytest.raises(ValueError, match="num_cpus must be >= 1, got 0"):
        executors.RayExecutor(num_cpus=0)


def test_curate_takes_a_recipe_by_name(monkeypatch, tmp_path: Path) -> None:
    from retake.data import runner

    seen = []
    monkeypatch.setattr(runner, "run_shards", lambda inputs, out, config, family, **_: seen.append(config))
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    curate(clip, tmp_path / "out", "icve-pretrain", progress=False)
    assert seen == [get_recipe("icve-pretrain")]  # the config, not its name, reached the pipeline
    with pytest.raises(ValueError, match="config must be a CurateConfig or a recipe name, got dict"):
        curate(clip, tmp_path / "out", {"clip_frames": 5}, progress=False)
    with pytest.raises(ValueError, match="unknown recipe 'icve'"):
        curate(clip, tmp_path / "out", "icve", progress=False)
