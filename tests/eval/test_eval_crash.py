"""Crash safety of the eval commands: a build, run, probe or comparison killed outright (SIGKILL, so no
cleanup code runs) is rerun to what an uninterrupted one writes, with no temporary files left behind.

A kill is simulated by stopping the work with an exception and then planting the files a kill at that moment
leaves (the cleanup that an exception runs is exactly what a SIGKILL skips)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import retake.eval.benchmark as benchmark_module
from retake.cli import main
from retake.eval.benchmark import PENDING, PROGRESS, BenchmarkConfig, build_flatland_benchmark
from retake.eval.report import REPORT_JSON, write_comparison, write_report
from retake.eval.runner import EDITS_DIR, RUN_FILE, SEEDS_FILE, run_benchmark, run_seeds
from retake.video import Video

CONFIG = BenchmarkConfig(per_kind=1, kinds=("add", "recolour"), size=32, frames=9)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return build_flatland_benchmark(tmp_path_factory.mktemp("crash") / "bench", CONFIG, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _temporaries(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".*") if p.name not in (PENDING, PROGRESS)]


class _Killed(BaseException):
    """Stops a build or run where a kill would."""


# ---- retake eval flatland-set -------------------------------------------------------------------------------


def test_a_build_killed_while_writing_its_first_file_is_rebuilt(bench, tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    (root / f".{PENDING}.123.456.tmp").write_text("{")  # killed before renaming .pending.json into place
    rebuilt = build_flatland_benchmark(root, CONFIG, progress=False)
    assert rebuilt.fingerprint == bench.fingerprint
    assert _files(root) == _files(bench.root) and _temporaries(root) == []


def test_a_build_killed_before_its_progress_log_continues(bench, tmp_path, monkeypatch):
    root = tmp_path / "set"
    monkeypatch.setattr(Path, "write_text", _killing(Path.write_text, PROGRESS))
    with pytest.raises(_Killed):
        build_flatland_benchmark(root, CONFIG, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in root.iterdir()) == [PENDING]
    assert _files(build_flatland_benchmark(root, CONFIG, progress=False).root) == _files(bench.root)


def _killing(method, name: str):
    def write(self, *args, **kwargs):
        if self.name == name:
            raise _Killed
        return method(self, *args, **kwargs)

    return write


def test_a_build_killed_mid_sample_leaves_no_temporary_files(bench, tmp_path, monkeypatch):
    root = tmp_path / "set"
    real = benchmark_module._draw_sample

    def dies_on_the_second(root, kind, index, config):
        if kind == "recolour":
            raise _Killed
        return real(root, kind, index, config)

    monkeypatch.setattr(benchmark_module, "_draw_sample", dies_on_the_second)
    with pytest.raises(_Killed):
        build_flatland_benchmark(root, CONFIG, progress=False)
    monkeypatch.undo()
    # What a kill inside the second sample's writes leaves: our video temporaries and safetensors' own.
    (root / "sources" / ".recolour-000.partial.mp4").write_bytes(b"\0" * 10)
    (root / "truth" / ".tmpAbC123").write_bytes(b"\0" * 10)
    (root / f".{benchmark_module.INSTRUCTIONS}.1.2.tmp").write_text("")
    resumed = build_flatland_benchmark(root, CONFIG, progress=False)
    assert resumed.fingerprint == bench.fingerprint
    assert _files(root) == _files(bench.root) and _temporaries(root) == []


def test_a_build_killed_after_its_manifest_is_finished_and_refused(bench, tmp_path):
    root = tmp_path / "set"
    build_flatland_benchmark(root, CONFIG, progress=False)
    (root / PENDING).write_text(json.dumps(CONFIG.to_json()))  # killed before deleting these two
    (root / PROGRESS).write_text("")
    with pytest.raises(FileExistsError, match="already holds a finished benchmark"):
        build_flatland_benchmark(root, CONFIG, progress=False)
    assert _files(root) == _files(bench.root)


# ---- retake eval run / ceiling -------------------------------------------------------------------------------


class TruthEditor:
    """Hands back each sample's ground truth."""

    def __init__(self, benchmark) -> None:
        self.samples = {s.id: s for s in benchmark.samples}

    def edit(self, source: Video, instruction: str, *, seed: int, sample_id: str) -> Video:
        return self.samples[sample_id].target()

    def describe(self) -> dict:
        return {"name": "truth"}


def _stable(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "edit_seconds"} for row in rows]


def test_a_run_killed_while_writing_run_json_starts_again(bench, tmp_path):
    whole = run_benchmark(bench, TruthEditor(bench), tmp_path / "whole", progress=False)
    out = tmp_path / "run"
    out.mkdir()
    (out / f".{RUN_FILE}.123.456.tmp").write_text("{")
    run = run_benchmark(bench, TruthEditor(bench), out, progress=False)
    assert run.complete and _stable(out / "samples.jsonl") == _stable(whole.out_dir / "samples.jsonl")
    assert _temporaries(out) == []


def test_a_rerun_clears_what_a_killed_run_and_report_left(bench, tmp_path):
    out = tmp_path / "run"
    write_report(run_benchmark(bench, TruthEditor(bench), out, progress=False), bench)
    planted = [
        out / EDITS_DIR / ".recolour-000.partial.mp4",  # killed while saving an edit
        out / "gifs" / ".add-000.partial.gif",
        out / "plots" / ".success.png.1.2.tmp",
        out / f".{REPORT_JSON}.1.2.tmp",
        out / ".index.html.1.2.tmp",
    ]
    for path in planted:
        path.write_bytes(b"\0" * 10)
    write_report(run_benchmark(bench, TruthEditor(bench), out, progress=False), bench)
    assert _temporaries(out) == []


def test_a_multi_seed_rerun_clears_a_killed_write_of_seeds_json(bench, tmp_path):
    out = tmp_path / "seeds"
    out.mkdir()
    (out / f".{SEEDS_FILE}.1.2.tmp").write_text("{")
    run_seeds(bench, TruthEditor(bench), out, [0, 1], progress=False)
    assert _temporaries(out) == []
    record = json.loads((out / SEEDS_FILE).read_text())  # the whole record, not the killed write's "{"
    assert record["seeds"] == [0, 1]
    assert record["per_seed"] == {"0": {"n": 2, "success": 2}, "1": {"n": 2, "success": 2}}


def test_a_plot_cut_short_never_replaces_the_last_one(bench, tmp_path, monkeypatch):
    run = run_benchmark(bench, TruthEditor(bench), tmp_path / "run", progress=False)
    write_report(run, bench)
    plot = run.out_dir / "plots" / "success.png"
    before = plot.read_bytes()
    real = Figure.savefig

    def cut_short(self, fname, *args, **kwargs):
        real(self, fname, *args, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:100])
        raise _Killed

    monkeypatch.setattr(Figure, "savefig", cut_short)
    with pytest.raises(_Killed):
        write_report(run, bench)
    assert plot.read_bytes() == before and _temporaries(run.out_dir) == []


# ---- retake eval compare / probe ----------------------------------------------------------------------------


def test_a_comparison_rerun_clears_a_killed_write(bench, tmp_path):
    run = run_benchmark(bench, TruthEditor(bench), tmp_path / "run", progress=False)
    write_report(run, bench)
    out = tmp_path / "out" / "compare.html"
    out.parent.mkdir()
    (out.parent / ".compare.html.1.2.tmp").write_text("<html")
    write_comparison(run.out_dir, run.out_dir, out)
    assert out.read_text().rstrip().endswith("</html>")
    assert [p.name for p in out.parent.iterdir()] == ["compare.html"]


def test_a_probe_rerun_clears_a_killed_write_of_its_json(bench, tmp_path, monkeypatch):
    monkeypatch.setattr("retake.eval.editors.open_editor", lambda **kwargs: TruthEditor(bench))
    out = tmp_path / "probe" / "probe.json"
    out.parent.mkdir()
    (out.parent / ".probe.json.1.2.tmp").write_text("{")
    main(["eval", "probe", str(bench.root), "--model", str(tmp_path), "-o", str(out), "--no-progress"])
    assert json.loads(out.read_text())["attribute"] == "shape"
    assert [p.name for p in out.parent.iterdir()] == ["probe.json"]
