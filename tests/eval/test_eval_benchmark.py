"""Flatland benchmark sets: what is written, that it is seeded, and that broken folders are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import retake.eval.benchmark as benchmark_module
from retake.cli import main
from retake.eval.benchmark import (
    BenchmarkConfig,
    BenchmarkError,
    build_flatland_benchmark,
    grow_masks,
    load_benchmark,
    sample_seed,
)
from retake.eval.psnr import psnr
from retake.flatland.edits import EDIT_KINDS
from retake.flatland.judge import judge
from retake.flatland.pairs import make_pair

CONFIG = BenchmarkConfig(per_kind=2, frames=9, seed=7)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return build_flatland_benchmark(tmp_path_factory.mktemp("bench") / "set", CONFIG, progress=False)


def test_build_writes_sources_instructions_and_ground_truth(bench):
    assert bench.ids == [f"{kind}-{i:03d}" for kind in EDIT_KINDS for i in range(2)]
    tasks = [json.loads(line) for line in (bench.root / "instructions.jsonl").read_text().splitlines()]
    assert [t["id"] for t in tasks] == bench.ids
    for task, sample in zip(tasks, bench.samples, strict=True):
        assert task["instruction"] == sample.instruction and sample.instruction
        assert (bench.root / task["source"]).resolve() == sample.source_path.resolve()
        assert sample.edit.kind == sample.kind
    sample = bench.samples[0]
    source, target, masks = sample.source(), sample.target(), sample.masks()
    assert source.frames.shape == target.frames.shape == (9, 64, 64, 3) and source.fps == 8.0
    assert masks.shape == (9, 64, 64) and masks.dtype == bool and 0 < masks.mean() < 0.5  # one object
    assert "instructions.jsonl" in (bench.root / "README.md").read_text()
    assert load_benchmark(bench.root / "benchmark.json").fingerprint == bench.fingerprint


def test_the_ground_truth_is_the_flatland_pair_of_the_recorded_seed(bench):
    sample = next(s for s in bench.samples if s.kind == "recolour")
    pair = make_pair("recolour", size=64, frames=9, fps=8, seed=sample.seed)
    assert (pair.instruction, pair.edit) == (sample.instruction, sample.edit)
    # crf 0 loses only 4:2:0 chroma (~32 dB at saturated edges); the unedited source scores far lower.
    assert psnr(pair.target, sample.target().frames) > 30 > psnr(pair.source, sample.target().frames)
    np.testing.assert_array_equal(sample.masks(), grow_masks(pair.masks, CONFIG.mask_margin))


def test_every_sample_is_scorable_after_encoding(bench):
    for sample in bench.samples:
        source, target = sample.source().frames, sample.target().frames
        assert judge(source, target, sample.edit), sample.id  # a perfect editor passes...
        assert not judge(source, source, sample.edit), sample.id  # ...and one that changes nothing fails


def test_draws_the_judge_cannot_score_after_encoding_are_redrawn(tmp_path, monkeypatch):
    verdicts = []

    def picky_judge(source, edited, edit):
        verdict = judge(source, edited, edit)
        verdicts.append(verdict)
        return verdict if len(verdicts) > 1 else type(verdict)(False, "pretend 4:2:0 blurred the ring")

    monkeypatch.setattr(benchmark_module, "oracle_judge", picky_judge)
    config = BenchmarkConfig(per_kind=1, frames=9, seed=7, kinds=("remove",))
    bench = build_flatland_benchmark(tmp_path / "set", config, progress=False)
    assert bench.samples[0].seed == sample_seed(7, "remove", 0, draw=1) != sample_seed(7, "remove", 0)
    assert json.loads((bench.root / "benchmark.json").read_text())["redrawn"] == 1


def test_same_seed_gives_the_same_samples_and_a_subset_of_kinds_the_same_subset(bench, tmp_path):
    subset = build_flatland_benchmark(
        tmp_path / "sub", BenchmarkConfig(per_kind=2, frames=9, seed=7, kinds=("style",)), progress=False
    )
    full = {s.id: s for s in bench.samples}
    for sample in subset.samples:
        assert (sample.seed, sample.instruction, sample.edit) == tuple(
            getattr(full[sample.id], k) for k in ("seed", "instruction", "edit")
        )
        np.testing.assert_array_equal(sample.source().frames, full[sample.id].source().frames)
    assert subset.fingerprint != bench.fingerprint
    other = BenchmarkConfig(per_kind=2, frames=9, seed=8, kinds=("style",))
    reseeded = build_flatland_benchmark(tmp_path / "other", other, progress=False)
    assert [s.seed for s in reseeded.samples] != [s.seed for s in subset.samples]


def test_broken_or_foreign_folders_are_refused(bench, tmp_path):
    with pytest.raises(BenchmarkError, match=r"no benchmark\.json"):
        load_benchmark(tmp_path)
    copy = Path(shutil.copytree(bench.root, tmp_path / "copy"))
    (copy / "truth" / "add-001.mp4").unlink()
    (copy / "sources" / "style-000.mp4").unlink()
    with pytest.raises(
        BenchmarkError, match=r"2 benchmark files are missing: .*add-001\.mp4.*style-000\.mp4"
    ):
        load_benchmark(copy)
    manifest = json.loads((copy / "benchmark.json").read_text())
    (copy / "benchmark.json").write_text(json.dumps(manifest | {"format": "something/9"}))
    with pytest.raises(BenchmarkError, match="something/9"):
        load_benchmark(copy)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        build_flatland_benchmark(copy, CONFIG, progress=False)


def test_a_benchmark_of_another_shape_renders_and_scores_at_it(tmp_path):
    config = BenchmarkConfig(per_kind=1, kinds=("recolour", "add"), size=(48, 80), frames=5, seed=3)
    bench = build_flatland_benchmark(tmp_path / "wide", config, progress=False)
    for sample in bench.samples:
        source, target = sample.source().frames, sample.target().frames
        assert source.shape == target.shape == (5, 48, 80, 3) and sample.masks().shape == (5, 48, 80)
        assert judge(source, target, sample.edit) and not judge(source, source, sample.edit)
    loaded = load_benchmark(bench.root / "benchmark.json")
    assert loaded.config.shape == (48, 80) and loaded.fingerprint == bench.fingerprint
    assert "48x80 px (HxW)" in (bench.root / "README.md").read_text()
    # A square asked as (N, N) is the benchmark asked as N: the same config, so the same fingerprint.
    assert (
        BenchmarkConfig(size=(64, 64)) == BenchmarkConfig(size=64)
        and BenchmarkConfig(size=[64, 64]).size == 64
    )


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"per_kind": 0}, "per_kind must be >= 1, got 0"),
        ({"kinds": ("add", "paint")}, "unknown edit kind 'paint'"),
        ({"kinds": ("add", "add")}, "without repeats"),
        ({"frames": 1}, "frames >= 2"),
        ({"crf": 60}, "crf in 0..51"),
        ({"size": 61}, "even sides .* got 61x61"),  # H.264 would pad the videos to 62, not the masks
        ({"fps": float("inf")}, "fps > 0 and finite; got 64x64, 17, inf"),
        ({"fps": float("nan")}, "fps > 0 and finite; got 64x64, 17, nan"),
        ({"size": (48, 14)}, "sides >= 16.* got 48x14"),
        ({"size": (48, 80, 3)}, r"size must be N or \(H, W\) in whole pixels, got \(48, 80, 3\)"),
        ({"size": 64.0}, "size must be N or"),
    ],
)
def test_bad_configs_name_the_bad_value(options, problem):
    with pytest.raises(ValueError, match=problem):
        BenchmarkConfig(**options)


def test_grow_masks_dilates_by_a_disc_of_the_margin():
    masks = np.zeros((2, 15, 15), bool)
    masks[1, 7, 7] = True
    grown = grow_masks(masks, 3)
    assert not grown[0].any() and grown[1, 7, 7]
    assert grown[1, 7, 10] and grown[1, 10, 7] and not grown[1, 7, 11]  # 3 px out, not 4
    assert not grown[1, 10, 10]  # a disc, not a square
    np.testing.assert_array_equal(grow_masks(masks, 0), masks)


def test_an_interrupted_build_continues_to_the_same_benchmark(bench, tmp_path, monkeypatch):
    drawn = []
    real = benchmark_module._draw_sample

    def dies_after_three(root, kind, index, config):
        if len(drawn) == 3:
            raise KeyboardInterrupt  # as if the process were stopped mid-build
        drawn.append((kind, index))
        return real(root, kind, index, config)

    monkeypatch.setattr(benchmark_module, "_draw_sample", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_flatland_benchmark(tmp_path / "set", CONFIG, progress=False)
    with pytest.raises(
        FileExistsError, match=r"another benchmark config \(per_kind: 2 -> 1; frames: 9 -> 17"
    ):
        build_flatland_benchmark(tmp_path / "set", BenchmarkConfig(per_kind=1), progress=False)
    redrawn = []

    def counted(root, kind, index, config):
        redrawn.append((kind, index))
        return real(root, kind, index, config)

    monkeypatch.setattr(benchmark_module, "_draw_sample", counted)
    resumed = build_flatland_benchmark(tmp_path / "set", CONFIG, progress=False)
    assert not set(drawn) & set(redrawn) and len(drawn) + len(redrawn) == len(bench.samples)
    assert resumed.fingerprint == bench.fingerprint  # what an uninterrupted build writes
    assert sorted(p.name for p in resumed.root.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(FileExistsError, match="not an empty folder"):  # finished: never rebuilt in place
        build_flatland_benchmark(tmp_path / "set", CONFIG, progress=False)


def test_a_progress_line_cut_by_a_kill_does_not_swallow_the_next_sample(tmp_path, monkeypatch):
    real, drawn = benchmark_module._draw_sample, []

    def dies_after(count):
        def draw(root, kind, index, config):
            if len(drawn) == count:
                raise KeyboardInterrupt
            drawn.append((kind, index))
            return real(root, kind, index, config)

        return draw

    monkeypatch.setattr(benchmark_module, "_draw_sample", dies_after(2))
    with pytest.raises(KeyboardInterrupt):
        build_flatland_benchmark(tmp_path / "set", CONFIG, progress=False)
    progress = tmp_path / "set" / benchmark_module.PROGRESS
    with progress.open("a") as log:
        log.write('{"index": 0, "dr')  # the kill came while the third sample's line was written
    monkeypatch.setattr(benchmark_module, "_draw_sample", dies_after(3))
    with pytest.raises(KeyboardInterrupt):
        build_flatland_benchmark(tmp_path / "set", CONFIG, progress=False)
    rows = [json.loads(line) for line in progress.read_text().splitlines()]  # every line whole
    assert [(row["kind"], row["index"]) for row in rows] == drawn


def test_an_interrupted_build_of_another_shape_continues_from_the_command(tmp_path, monkeypatch):
    real, drawn = benchmark_module._draw_sample, []

    def dies_after_one(root, kind, index, config):
        if drawn:
            raise KeyboardInterrupt
        drawn.append(kind)
        return real(root, kind, index, config)

    args = ["eval", "flatland-set", str(tmp_path / "set"), "--size", "48x80", "--frames", "5"]
    args += ["--per-kind", "1", "--kinds", "recolour,remove", "--no-progress"]
    monkeypatch.setattr(benchmark_module, "_draw_sample", dies_after_one)
    with pytest.raises(SystemExit) as stopped:  # the command turns Ctrl-C into exit code 130
        main(args)
    assert stopped.value.code == 130
    monkeypatch.setattr(benchmark_module, "_draw_sample", real)
    main(args)  # the pending (48, 80) config read back from JSON is the same config: resumed, not refused
    bench = load_benchmark(tmp_path / "set" / "benchmark.json")
    assert bench.config.shape == (48, 80) and [s.kind for s in bench.samples] == ["recolour", "remove"]
    assert bench.samples[1].source().frames.shape == (5, 48, 80, 3)


def test_a_limited_pick_takes_every_kind_in_turn(bench):
    kinds = [bench.samples[i].kind for i in bench.pick(len(EDIT_KINDS))]
    assert kinds == list(EDIT_KINDS)  # one of each, in benchmark order
    assert bench.pick(3) == [0, 2, 4] and set(bench.pick(3)) < set(bench.pick(8))  # a larger limit only adds
    assert bench.pick(None) == bench.pick(100) == list(range(len(bench.samples)))


def test_a_size_too_small_to_judge_a_kind_says_which_option_to_raise(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_module, "oracle_judge", lambda *args: False)  # as at 16 px, now and then
    tiny = BenchmarkConfig(per_kind=1, kinds=("replace",), size=16, frames=5)
    with pytest.raises(BenchmarkError, match=r"no replace sample .* at size 16x16 .* use a larger --size"):
        build_flatland_benchmark(tmp_path / "set", tiny, progress=False)


def test_a_new_benchmark_must_have_a_length_editors_edit_but_an_old_one_still_loads(tmp_path):
    with pytest.raises(
        ValueError, match=r"frames must be 4k \+ 1 \(5, 9, 13, 17, ...\) as editors edit, got 8"
    ):
        build_flatland_benchmark(tmp_path / "new", BenchmarkConfig(per_kind=1, frames=8), progress=False)
    assert not (tmp_path / "new").exists()
    assert BenchmarkConfig.from_json({"frames": 16}).frames == 16  # what a manifest built before holds
