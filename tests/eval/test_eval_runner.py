"""The benchmark runner: ground truth scores as a perfect editor, the unedited source as a null editor,
aggregation, resuming, and editors of every kind (folders, bundles, Python objects)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from retake.eval.benchmark import BenchmarkConfig, build_flatland_benchmark
from retake.eval.editors import (
    AutoencoderCeiling,
    BundleEditConfig,
    BundleEditor,
    FolderEditor,
    MissingEditsError,
    open_editor,
)
from retake.eval.psnr import MAX_PSNR_DB
from retake.eval.report import ReportConfig, build_report, compare, load_report, write_report
from retake.eval.runner import (
    RESULTS_FILE,
    RUN_FILE,
    SEEDS_FILE,
    NoUsableEditError,
    RunConfig,
    RunMismatchError,
    ShortEditError,
    aggregate,
    check_errors,
    conform,
    run_benchmark,
    run_seeds,
    seed_dir,
    unscored_motion,
    wilson_interval,
)
from retake.flatland.edits import EDIT_KINDS
from retake.video import Video, read, write


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    return build_flatland_benchmark(root / "bench", BenchmarkConfig(per_kind=2, frames=9), progress=False)


def edit_folder(bench, folder: Path, pick) -> Path:
    """A folder of `<id>.mp4` as another system would hand back: `pick(index)` says which benchmark file
    (truth/ or sources/) sample `index` of each kind gets."""
    folder.mkdir()
    for sample in bench.samples:
        index = int(sample.id.rsplit("-", 1)[1])
        shutil.copy(bench.root / pick(index) / f"{sample.id}.mp4", folder / f"{sample.id}.mp4")
    return folder


@pytest.fixture(scope="module")
def perfect(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("perfect")
    editor = FolderEditor(edit_folder(bench, root / "videos", lambda i: "truth"), bench.ids)
    return run_benchmark(bench, editor, root / "run", progress=False)


@pytest.fixture(scope="module")
def null(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("null")
    editor = FolderEditor(edit_folder(bench, root / "videos", lambda i: "sources"), bench.ids)
    return run_benchmark(bench, editor, root / "run", progress=False)


@pytest.fixture(scope="module")
def mixed_videos(bench, tmp_path_factory):
    """The first sample of every kind edited perfectly, the second left unedited: 50% success per kind."""
    return edit_folder(bench, tmp_path_factory.mktemp("mixed") / "videos", ["truth", "sources"].__getitem__)


@pytest.fixture(scope="module")
def mixed(bench, mixed_videos):
    return run_benchmark(bench, FolderEditor(mixed_videos), mixed_videos.parent / "run", progress=False)


def test_ground_truth_targets_score_as_a_perfect_editor(perfect):
    assert perfect.complete and len(perfect.rows) == 12
    for row in perfect.rows:
        assert row["success"], row
        assert row["metrics"]["psnr"] == MAX_PSNR_DB and row["metrics"]["ssim"] == pytest.approx(1.0)
        # Outside the (grown) mask the target is the source, pixel for pixel; style edits change everything.
        expected = None if row["kind"] == "style" else MAX_PSNR_DB
        assert row["metrics"]["preservation_psnr"] == expected
        assert row["metrics"]["flicker"] >= 0
    overall = perfect.summary["overall"]
    assert overall["success"]["rate"] == 1.0 and overall["metrics"]["psnr"]["mean"] == MAX_PSNR_DB
    assert all(group["success"]["rate"] == 1.0 for group in perfect.summary["per_kind"].values())


def test_unedited_sources_score_as_a_null_editor(null):
    assert null.summary["overall"]["success"]["count"] == 0
    for row in null.rows:
        assert not row["success"] and row["reason"]
        assert row["metrics"]["psnr"] < 35  # far from the target...
        if row["kind"] != "style":
            assert row["metrics"]["preservation_psnr"] == MAX_PSNR_DB  # ...and nothing else changed
    low, high = (null.summary["overall"]["success"][k] for k in ("low", "high"))
    assert low == 0.0 and high == pytest.approx(wilson_interval(0, 12)[1]) and 0.2 < high < 0.3


def test_per_kind_aggregation_equals_a_manual_computation(mixed):
    result = mixed
    assert result.summary["overall"]["success"]["count"] == 6
    for kind in EDIT_KINDS:
        rows = [r for r in result.rows if r["kind"] == kind]
        group = result.summary["per_kind"][kind]
        assert [r["success"] for r in rows] == [True, False] and group["success"]["rate"] == 0.5
        assert (group["success"]["low"], group["success"]["high"]) == pytest.approx(wilson_interval(1, 2))
        for name in ("psnr", "ssim", "flicker", "warp_error"):
            values = [r["metrics"][name] for r in rows]
            assert group["metrics"][name]["mean"] == pytest.approx(np.mean(values))
            assert group["metrics"][name]["std"] == pytest.approx(np.std(values))
    flicker = [r["metrics"]["flicker"] for r in result.rows]
    assert result.summary["overall"]["metrics"]["flicker"]["mean"] == pytest.approx(np.mean(flicker))


def test_aggregate_skips_metrics_that_do_not_apply_and_counts_errors():
    rows = [
        {"kind": "add", "success": True, "metrics": {"psnr": 30.0, "preservation_psnr": 40.0}},
        {"kind": "add", "success": False, "metrics": {"psnr": 20.0, "preservation_psnr": None}},
        {"kind": "style", "success": False, "metrics": {}, "error": "no video"},
    ]
    summary = aggregate(rows, ["add", "style", "remove"])
    add = summary["per_kind"]["add"]
    assert add["metrics"]["psnr"] == {"mean": 25.0, "std": 5.0, "n": 2}
    assert add["metrics"]["preservation_psnr"] == {"mean": 40.0, "std": 0.0, "n": 1}
    assert summary["per_kind"]["style"]["errors"] == 1 and summary["overall"]["errors"] == 1
    assert summary["overall"]["success"]["count"] == 1 and summary["overall"]["success"]["rate"] == 1 / 3
    assert (
        summary["per_kind"]["remove"]["n"] == 0 and summary["per_kind"]["remove"]["success"]["rate"] is None
    )


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 0/10 -> (0, 0.2775); 5/10 -> (0.2366, 0.7634); 10/10 -> (0.7225, 1).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def _stable(report: dict) -> dict:
    """A report without what legitimately differs between two runs: times and paths."""
    report = json.loads(json.dumps(report))
    report.pop("created")
    report["editor"].pop("path")
    for row in report["samples"]:
        row.pop("edit_seconds")
    for group in [report["summary"]["overall"], *report["summary"]["per_kind"].values()]:
        group["metrics"].pop("edit_seconds")
    return report


def test_a_resumed_run_gives_the_same_report(bench, mixed_videos, mixed, tmp_path):
    editor = FolderEditor(mixed_videos)
    partial = run_benchmark(bench, editor, tmp_path / "resumed", RunConfig(limit=5), progress=False)
    assert not partial.complete and [r["id"] for r in partial.rows] == [bench.ids[i] for i in bench.pick(5)]
    with (tmp_path / "resumed" / RESULTS_FILE).open("a") as results:
        results.write('{"id": "replace-001", "kind": "repl')  # a crash in the middle of a line
    resumed = run_benchmark(bench, editor, tmp_path / "resumed", progress=False)
    assert resumed.complete and [r["id"] for r in resumed.rows] == bench.ids
    assert len((tmp_path / "resumed" / RESULTS_FILE).read_text().splitlines()) == 12
    assert _stable(build_report(resumed)) == _stable(build_report(mixed))  # mixed: one uninterrupted run


def test_a_run_folder_refuses_another_editor(bench, mixed_videos, tmp_path):
    run_benchmark(bench, FolderEditor(mixed_videos), tmp_path / "run", RunConfig(limit=1), progress=False)
    other = FolderEditor(edit_folder(bench, tmp_path / "other", lambda i: "truth"))
    with pytest.raises(
        RunMismatchError, match=r"other settings \(editor\.name: 'videos' -> 'other'; editor\.path: "
    ):
        run_benchmark(bench, other, tmp_path / "run", progress=False)
    with pytest.raises(RunMismatchError, match=r"other settings \(config\.seed: 0 -> 3\)"):
        run_benchmark(bench, FolderEditor(mixed_videos), tmp_path / "run", RunConfig(seed=3), progress=False)


def test_missing_videos_in_a_folder_are_all_named_before_anything_runs(bench, mixed_videos, tmp_path):
    folder = Path(shutil.copytree(mixed_videos, tmp_path / "videos"))
    (folder / "add-001.mp4").unlink()
    (folder / "style-000.mp4").unlink()
    with pytest.raises(MissingEditsError, match=r"2 of 12 edited videos are missing .*: add-001, style-000$"):
        FolderEditor(folder, bench.ids)
    with pytest.raises(MissingEditsError, match="add-001, style-000"):
        run_benchmark(bench, FolderEditor(folder), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / RESULTS_FILE).exists() or not (tmp_path / "run" / RESULTS_FILE).read_text()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FolderEditor(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"exactly one of a bundle \(--model\) .* got both$"):
        open_editor(bundle=tmp_path, videos=folder)
    with pytest.raises(ValueError, match=r"got neither$"):
        open_editor()


def test_edits_are_conformed_to_the_source_or_fail_when_frames_are_missing():
    source = Video(np.zeros((9, 64, 64, 3), np.uint8), 8)
    big = Video(np.full((11, 128, 96, 3), 200, np.uint8), 8)
    conformed, notes = conform(big, source)
    assert conformed.frames.shape == (9, 64, 64, 3) and conformed.fps == 8 and (conformed.frames == 200).all()
    assert notes == ["kept the first 9 of 11 frames", "resized 96x128 to 64x64"]
    assert conform(source, source)[1] == []
    with pytest.raises(ShortEditError, match="the edit has 5 frames, the source 9"):
        conform(Video(source.frames[:5], 8), source)


def test_an_edit_at_another_frame_rate_is_compared_at_the_same_instants():
    source = Video(np.zeros((9, 16, 16, 3), np.uint8), 8)
    numbered = np.arange(30, dtype=np.uint8)[:, None, None, None] * np.ones((1, 16, 16, 3), np.uint8)
    conformed, notes = conform(Video(numbered, 24), source)  # 1.25 s at 24 fps: every third frame
    assert conformed.frames[:, 0, 0, 0].tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert notes == ["resampled 30 frames at 24 fps to 8 fps"]
    # Too short in time for the source but with its frames: an editor that labels every video 24 fps.
    for count in (9, 11):
        conformed, notes = conform(Video(numbered[:count], 24), source)
        assert conformed.frames[:, 0, 0, 0].tolist() == list(range(9)) and conformed.fps == 8
        assert notes[0] == "paired one for one though the edit says 24 fps, the source 8"
    with pytest.raises(ShortEditError, match="the edit has 5 frames, the source 9"):
        conform(Video(numbered[:5], 24), source)


class ShortEditor:
    """A Python editor (any object with edit + describe) that drops frames: every sample fails cleanly."""

    def __init__(self) -> None:
        self.seeds: list[int] = []

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        self.seeds.append(seed)
        return Video(source.frames[:-2], source.fps)

    def describe(self) -> dict:
        return {"type": "python", "name": "short"}


def test_a_python_editor_whose_edits_are_unusable_fails_those_samples(bench, tmp_path):
    editor = ShortEditor()
    result = run_benchmark(bench, editor, tmp_path / "run", RunConfig(seed=100, limit=3), progress=False)
    assert editor.seeds == [100, 102, 104]  # add-000, remove-000, replace-000: seed + benchmark index
    assert [r["success"] for r in result.rows] == [False] * 3 and result.summary["overall"]["errors"] == 3
    assert "the edit has 7 frames, the source 9" in result.rows[0]["reason"]


def test_errored_samples_are_reported_and_a_run_of_nothing_but_errors_is_refused():
    ok = {"id": "add-000", "kind": "add", "success": True, "metrics": {}}
    short = {
        "id": "remove-000",
        "kind": "remove",
        "success": False,
        "metrics": {},
        "error": "13 frames, not 16",
    }
    assert check_errors([ok], "run/samples.jsonl") is None
    note = check_errors([ok, short, short | {"id": "style-000"}], "run/samples.jsonl")
    assert note == (
        "2 of 3 samples errored and count as failures; the first, remove-000: 13 frames, not 16; "
        "every error is in run/samples.jsonl"
    )
    with pytest.raises(NoUsableEditError, match=r"every sample errored \(1 of 1\); the first, remove-000"):
        check_errors([short], "run/samples.jsonl")


def _short_videos(bench, folder: Path) -> Path:
    """Every sample's edit two frames short, as a 4k+1-frame editor hands back on a 4k-frame benchmark."""
    folder.mkdir()
    for sample in bench.samples:
        source = sample.source()
        write(Video(source.frames[:-2], source.fps), folder / f"{sample.id}.mp4")
    return folder


def test_eval_run_shows_errored_samples_and_fails_when_all_errored(bench, tmp_path, capsys, monkeypatch):
    from retake.cli import console, main

    monkeypatch.setattr(console, "_width", 200)  # the terminal table's rows on one line each, as $COLUMNS
    videos = _short_videos(bench, tmp_path / "short")
    args = ["eval", "run", str(bench.root), "--videos", str(videos), "--no-progress", "--limit", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "-o", str(tmp_path / "none")])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert (
        "error: every sample errored (2 of 2); the first, add-000: the edit has 7 frames, the source 9" in err
    )
    assert f"every error is in {tmp_path / 'none' / RESULTS_FILE}" in err
    assert "│ replace │ 0 │ 0 │ – │ – │" in err  # the table came first, kinds --limit left out as dashes
    assert (tmp_path / "none" / "report.json").is_file()

    with pytest.raises(SystemExit) as exit_info:  # several seeds: each seed's folder holds its errors
        main([*args[:-2], "--limit", "1", "--seed", "0", "--seed", "1", "-o", str(tmp_path / "seeds")])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2 and "every sample errored (2 of 2); the first, add-000" in err
    assert f"every error is in {tmp_path / 'seeds'}/seed-<s>/{RESULTS_FILE}" in err

    shutil.copy(bench.samples[0].target_path, videos / "add-000.mp4")  # one usable edit: a warning
    main([*args, "-o", str(tmp_path / "some")])
    err = " ".join(capsys.readouterr().err.split())
    assert "│ remove │ 1 │ 1 │ 0.0% │" in err
    assert (
        "warning: 1 of 2 samples errored and count as failures; the first, remove-000: the edit has 7" in err
    )


class SeedThresholdEditor:
    """A sampling editor in miniature: edits perfectly under a seed below `below`, returns the source otherwise."""

    def __init__(self, bench, below: int = 10) -> None:
        self.bench, self.below, self.seeds = bench, below, []

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        self.seeds.append(seed)
        return read(self.bench.root / ("truth" if seed < self.below else "sources") / f"{sample_id}.mp4")

    def describe(self) -> dict:
        return {"type": "python", "name": f"below-{self.below}"}


def test_several_editor_seeds_run_apart_and_pool(bench, tmp_path):
    editor = SeedThresholdEditor(bench)
    pooled = run_seeds(bench, editor, tmp_path / "seeds", [0, 5], progress=False)
    # seed 0 gives samples 0..11 seeds 0..11 (10 below 10); seed 5 gives them 5..16 (5 below 10)
    record = json.loads((tmp_path / "seeds" / SEEDS_FILE).read_text())
    assert record["per_seed"] == {"0": {"n": 12, "success": 10}, "5": {"n": 12, "success": 5}}
    assert pooled.summary["overall"]["n"] == 24 and pooled.summary["overall"]["success"]["count"] == 15
    assert record["summary"] == json.loads(json.dumps(pooled.summary))
    for seed in (0, 5):
        run = json.loads((seed_dir(tmp_path / "seeds", seed) / RUN_FILE).read_text())
        assert run["config"]["seed"] == seed and pooled.runs[seed].complete
    assert sorted(editor.seeds) == sorted([*range(12), *range(5, 17)])
    again = run_seeds(bench, editor, tmp_path / "seeds", [0, 5], progress=False)  # done: nothing re-edited
    assert len(editor.seeds) == 24 and again.summary == pooled.summary
    with pytest.raises(ValueError, match=r"distinct integers, got \[3, 3\]"):
        run_seeds(bench, editor, tmp_path / "dup", [3, 3], progress=False)
    run_benchmark(bench, editor, tmp_path / "single", RunConfig(limit=1), progress=False)
    with pytest.raises(RunMismatchError, match="single-seed run"):
        run_seeds(bench, editor, tmp_path / "single", [0, 5], progress=False)


def test_eval_run_with_repeated_seeds_writes_a_report_per_seed(bench, mixed_videos, tmp_path, capsys):
    from retake.cli import main

    args = ["eval", "run", str(bench.root), "--videos", str(mixed_videos), "--no-progress"]
    main([*args, "--seed", "0", "--seed", "100", "-o", str(tmp_path / "r")])
    record = json.loads((tmp_path / "r" / SEEDS_FILE).read_text())
    assert record["per_seed"] == {"0": {"n": 12, "success": 6}, "100": {"n": 12, "success": 6}}
    assert record["summary"]["overall"]["success"]["count"] == 12
    assert (tmp_path / "r" / "seed-100" / "report.json").is_file()
    assert "seed 100: 6 / 12 edits succeed" in capsys.readouterr().err
    pooled = load_report(tmp_path / "r")  # the folder itself: both seeds' samples pooled
    assert pooled["seeds"] == [0, 100] and pooled["summary"] == record["summary"]
    assert len(pooled["samples"]) == 24
    assert load_report(tmp_path / "r" / "seed-0")["summary"]["overall"]["n"] == 12


def _seeds_report(bench, below: int, out, seeds=(0, 5)):
    result = run_seeds(bench, SeedThresholdEditor(bench, below), out, list(seeds), progress=False)
    for run in result.runs.values():
        write_report(run, bench, config=ReportConfig(gifs_per_kind=0))
    return out


def test_compare_reads_runs_over_several_seeds_sample_by_sample(bench, tmp_path):
    a = _seeds_report(bench, 10, tmp_path / "a")  # seed 0: 10 / 12 succeed, seed 5: 5 / 12
    b = _seeds_report(bench, 8, tmp_path / "b")  # seed 0: 8 / 12, seed 5: 3 / 12
    assert [row["editor_seed"] for row in load_report(a)["samples"]] == [0] * 12 + [5] * 12
    page = compare(a, b)
    # overall: 15 / 24 against 11 / 24
    assert "<td>62.5% [43%, 79%]</td><td>45.8% [28%, 65%]</td>" in page and "Warning" not in page
    # editor seeds 8 and 9 flip: samples 8 and 9 under seed 0, samples 3 and 4 under seed 5
    assert page.count(" (seed 0)</td>") == 2 and page.count(" (seed 5)</td>") == 2

    page = compare(a, seed_dir(b, 5))  # a single-seed run matches the pooled one on its seed only
    assert "different editor seeds ([0, 5] vs [5])" in page
    assert page.count(" (seed 5)</td>") == 2 and " (seed 0)</td>" not in page

    shutil.rmtree(seed_dir(b, 5))
    with pytest.raises(FileNotFoundError, match=r"lists editor seed 5 but .*seed-5 has no report"):
        load_report(b)


class FakePipeline:
    """Records the arguments `EditPipeline.edit` gets; returns the source brightened."""

    defaults = None

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def edit(self, video: Video, instruction: str, **kwargs) -> Video:
        self.calls.append({"instruction": instruction, **kwargs})
        return Video(np.clip(video.frames.astype(int) + 40, 0, 255).astype(np.uint8), video.fps)


def test_bundle_editor_passes_the_source_shape_and_seed_to_the_pipeline(bench, tmp_path):
    pipeline = FakePipeline()
    editor = BundleEditor(pipeline, BundleEditConfig(steps=4), name="fake")
    result = run_benchmark(bench, editor, tmp_path / "run", RunConfig(seed=5, limit=2), progress=False)
    first = pipeline.calls[0]
    assert first["instruction"] == bench.samples[0].instruction
    assert (first["steps"], first["seed"], first["frames"], first["size"]) == (4, 5, 9, (64, 64))
    assert first["guidance"] is None and first["progress"] is False and pipeline.calls[1]["seed"] == 7
    assert result.header["editor"] == {
        "type": "bundle",
        "name": "fake",
        "path": None,
        "overrides": {"steps": 4, "device": "cpu"},
        "defaults": None,
    }
    assert result.rows[0]["metrics"]["psnr"] < 30 and not result.rows[0]["success"]


@pytest.mark.slow
def test_bundle_editor_runs_a_tiny_random_bundle(bench, tmp_path):
    """The real `EditPipeline`, saved as a bundle and loaded by path: a random model edits badly but fully."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo

    from retake.model.presets import build_transformer
    from retake.model.text import load_text_encoder
    from retake.model.vae import VideoVAE
    from retake.sample import EditConfig, EditPipeline

    transformer = build_transformer(
        "tiny", in_channels=4, text_embed_dim=384, pooled_projection_dim=384, seed=0
    )
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        mid_block_add_attention=False,
    )
    defaults = EditConfig(steps=2, frames=9, height=64, width=64)
    pipeline = EditPipeline(transformer, VideoVAE(vae, tiling=None), load_text_encoder("minilm"), defaults)
    pipeline.save_pretrained(tmp_path / "bundle")
    editor = open_editor(bundle=tmp_path / "bundle")
    result = run_benchmark(bench, editor, tmp_path / "run", RunConfig(limit=1), progress=False)
    row = result.rows[0]
    assert "error" not in row and row["notes"] == [] and math.isfinite(row["metrics"]["psnr"])
    assert result.edit_path(row["id"]).is_file()
    assert result.header["editor"]["type"] == "bundle" and result.header["editor"]["defaults"]["steps"] == 2


class PassThroughVAE:
    """A perfect autoencoder: the "latents" are the frames themselves."""

    def encode(self, video):
        return video.clone()  # (F, H, W, 3) uint8

    def decode_to_uint8(self, latents):
        return latents[None]  # (1, F, H, W, 3)


def test_ceiling_of_a_perfect_autoencoder_is_every_sample(bench, tmp_path):
    result = run_benchmark(
        bench, AutoencoderCeiling(bench, PassThroughVAE()), tmp_path / "run", progress=False
    )
    assert result.complete and all(row["success"] for row in result.rows)
    assert result.header["editor"] == {"type": "vae-ceiling", "name": "vae-ceiling", "path": None}


def test_ceiling_is_the_ground_truth_through_the_vae(bench, tmp_path):
    """With the shipped Flatland VAE: the "edit" is exactly decode(encode(truth)), whatever the source."""
    import torch

    from retake.model.vae import VideoVAE
    from retake.train.autoencoder import FLATLAND_VAE_DIR

    ceiling = AutoencoderCeiling.from_pretrained(bench, FLATLAND_VAE_DIR)
    sample = bench.samples[0]
    edited = ceiling.edit(sample.source(), "anything", seed=0, sample_id=sample.id)
    vae = VideoVAE.from_pretrained(FLATLAND_VAE_DIR, tiling=None)
    truth = torch.from_numpy(sample.target().frames)
    expected = vae.decode_to_uint8(vae.encode(truth))[0].numpy()
    assert np.array_equal(edited.frames, expected) and edited.fps == sample.target().fps
    assert not np.array_equal(edited.frames, sample.target().frames)  # a real VAE loses something
    assert ceiling.describe() == {"type": "vae-ceiling", "name": "vae", "path": str(FLATLAND_VAE_DIR)}


def test_ceiling_command_writes_a_report(bench, tmp_path, capsys, monkeypatch):
    from retake.cli import console, main
    from retake.train.autoencoder import FLATLAND_VAE_DIR

    monkeypatch.setattr(console, "_width", 200)  # the terminal table's rows on one line each, as $COLUMNS

    args = [
        "eval",
        "ceiling",
        str(bench.root),
        "--vae",
        str(FLATLAND_VAE_DIR),
        "--limit",
        "2",
        "--no-progress",
    ]
    main([*args, "-o", str(tmp_path / "c")])
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    err = " ".join(capsys.readouterr().err.split())
    assert report["editor"]["type"] == "vae-ceiling" and "│ overall │ 2 │ 0 │" in err
    assert "│ style │ 0 │ 0 │ – │ – │ – │" in err  # a kind --limit left out: dashes, not a crash
    with pytest.raises(SystemExit) as exit_info:  # a folder without a VAE: one line, exit code 2
        main(
            [
                "eval",
                "ceiling",
                str(bench.root),
                "--vae",
                str(tmp_path),
                "-o",
                str(tmp_path / "d"),
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 2


def _chat_server():
    path = Path(__file__).resolve().parents[1] / "data" / "vlm_server.py"
    if not path.is_file():
        pytest.skip(f"the test chat server {path} is missing")
    spec = importlib.util.spec_from_file_location("retake_runner_test_vlm_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ChatServer


def test_vlm_judge_scores_are_recorded_with_model_and_prompt(bench, mixed_videos, tmp_path, monkeypatch):
    from retake.data.vlm import VLMClient
    from retake.eval.vlm_judge import PROMPT_HASH, USER_PROMPT, VLMJudge

    answer = '{"instruction_following": 2, "edit_quality": 3, "background_consistency": 1, "reason": "fine"}'
    monkeypatch.setenv("RETAKE_TEST_RUN_JUDGE_KEY", "k")
    server = _chat_server()(api_key="k", answer=lambda body: answer).start()
    try:
        client = VLMClient(server.base_url, "judge-x", api_key_env="RETAKE_TEST_RUN_JUDGE_KEY", timeout=5.0)
        judge = VLMJudge(client)
        result = run_benchmark(
            bench,
            FolderEditor(mixed_videos),
            tmp_path / "run",
            RunConfig(limit=2),
            judge=judge,
            progress=False,
        )
    finally:
        server.stop()
    for row in result.rows:
        assert row["metrics"]["vlm_total"] == 6.0 and row["metrics"]["vlm_instruction"] == 2.0
        assert row["judge"] == {"model": "judge-x", "prompt_hash": PROMPT_HASH, "reason": "fine", "cost": 0.0}
    assert result.header["judge"]["user_prompt"] == USER_PROMPT
    assert result.summary["overall"]["metrics"]["vlm_total"]["mean"] == 6.0


def test_every_sample_whose_motion_was_not_scored_says_so(mixed):
    # This benchmark has a still source (background-001 at seed 0) among moving ones: both cases are checked.
    assert {row["metrics"]["motion_epe"] is None for row in mixed.rows} == {True, False}
    for row in mixed.rows:
        unscored = [n for n in row["notes"] if n.startswith("motion not scored")]
        assert len(unscored) == (row["metrics"]["motion_epe"] is None), row


def test_the_motion_note_names_the_size_scored():
    still = Video(np.zeros((3, 32, 48, 3), np.uint8), 8.0)
    assert unscored_motion({"motion_epe": 0.4}, still, 0.5) == []
    assert unscored_motion({}, still, 0.5) == []  # no motion metric asked for: nothing to explain
    for value in (None, float("nan")):
        (note,) = unscored_motion({"motion_epe": value}, still, 0.5)
        assert note.startswith(
            "motion not scored: nothing in the source moves 0.5 px per frame at 32x48 (HxW"
        )
