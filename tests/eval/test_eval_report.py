"""Reports: the JSON holds every number, the HTML its tables and GIFs, compare puts two runs side by side,
and the `retake eval` commands tie it together."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retake.cli import main
from retake.eval.benchmark import BenchmarkConfig, build_flatland_benchmark
from retake.eval.editors import FolderEditor
from retake.eval.report import (
    ReportConfig,
    compare,
    load_report,
    metric_info,
    summary_table,
    write_report,
)
from retake.eval.runner import RESULTS_FILE, aggregate, read_rows, run_benchmark
from retake.flatland.edits import EDIT_KINDS

SIZE, FRAMES = 64, 9


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return build_flatland_benchmark(
        root / "bench", BenchmarkConfig(per_kind=1, frames=FRAMES), progress=False
    )


def _run(bench, root: Path, name: str, folder: str) -> Path:
    """Run a folder editor that hands back the benchmark's `folder` files; write its report; return its dir."""
    videos = root / name
    shutil.copytree(bench.root / folder, videos, ignore=shutil.ignore_patterns("*.safetensors"))
    result = run_benchmark(bench, FolderEditor(videos, bench.ids), root / f"{name}-report", progress=False)
    write_report(result, bench, config=ReportConfig(gifs_per_kind=1))
    return result.out_dir


@pytest.fixture(scope="module")
def perfect(bench, tmp_path_factory):
    return _run(bench, tmp_path_factory.mktemp("perfect"), "perfect", "truth")


@pytest.fixture(scope="module")
def null(bench, tmp_path_factory):
    return _run(bench, tmp_path_factory.mktemp("null"), "null", "sources")


def _strict_json(path: Path) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_the_json_has_every_number(bench, perfect):
    report = _strict_json(perfect / "report.json")
    rows = read_rows(perfect / RESULTS_FILE)
    assert report["samples"] == rows and len(rows) == len(bench.samples)
    assert report["benchmark"]["fingerprint"] == bench.fingerprint and report["complete"]
    assert report["editor"]["type"] == "folder" and report["config"]["seed"] == 0 and report["judge"] is None
    summary = report["summary"]
    assert set(summary["per_kind"]) == set(EDIT_KINDS)
    for group in [summary["overall"], *summary["per_kind"].values()]:
        assert set(group["success"]) == {"count", "rate", "low", "high", "confidence"}
        assert set(group["metrics"]) == set(report["metrics"])  # every number is explained...
    for row in rows:
        assert set(row["metrics"]) <= set(report["metrics"])  # ...including every sample's
    for name, info in report["metrics"].items():
        assert info == metric_info(name) and info["description"]
    assert load_report(perfect) == report


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self.tables += tag == "table"


def test_the_html_has_the_tables_and_shows_gifs_that_exist(perfect):
    page = (perfect / "index.html").read_text()
    parser = _Images()
    parser.feed(page)
    assert parser.tables == 3  # summary, every metric, every sample
    gifs = [s for s in parser.sources if s.endswith(".gif")]
    assert sorted(gifs) == sorted(f"gifs/{kind}-000.gif" for kind in EDIT_KINDS)
    assert {"plots/success.png", "plots/metrics.png"} <= set(parser.sources)
    for source in parser.sources:
        assert (perfect / source).is_file(), source
    for kind in (*EDIT_KINDS, "overall"):
        assert f"<td class=l>{kind}</td>" in page
    assert "100.0% [61%, 100%]" in page  # 6 of 6, with its Wilson interval
    with Image.open(perfect / gifs[0]) as gif:
        assert gif.n_frames == FRAMES and gif.size == (3 * SIZE + 2 * 2, SIZE)


def _panels(gif_path: Path) -> list[np.ndarray]:
    """The three panels of a report GIF's first frame."""
    with Image.open(gif_path) as gif:
        frame = np.asarray(gif.convert("RGB")).astype(int)
    return [frame[:, i * (SIZE + 2) : i * (SIZE + 2) + SIZE] for i in range(3)]


def test_gifs_show_source_edit_and_reference_side_by_side(bench, perfect, null):
    sample = next(s for s in bench.samples if s.kind == "recolour")
    source, target = (v.frames[0].astype(int) for v in (sample.source(), sample.target()))
    for run, edit in ((perfect, target), (null, source)):
        panels = _panels(run / "gifs" / f"{sample.id}.gif")
        for panel, expected in zip(panels, (source, edit, target), strict=True):
            assert np.abs(panel - expected).mean() < 4  # 256-colour palette rounding only
    assert np.abs(source - target).mean() > 4 * 2  # so the panels are told apart


def test_compare_shows_both_runs_and_the_differences(perfect, null):
    page = compare(perfect, null)
    assert "A = <b>perfect</b>" in page and "B = <b>null</b>" in page
    assert '<td>100.0% [61%, 100%]</td><td>0.0% [0%, 39%]</td><td class="worse">-100.0%</td>' in page
    assert 'src="data:image/png;base64,' in page and "Warning" not in page
    assert page.count("the video does not look") == 1  # the null run's style verdict in the changed list
    assert all(f"<td class=l>{kind}-000</td>" in page for kind in EDIT_KINDS)  # every verdict flipped
    report = load_report(null)
    report["benchmark"]["fingerprint"] = "elsewhere"
    assert "different benchmarks" in compare(load_report(perfect), report)
    same = compare(perfect, perfect)
    assert "perfect (A)" in same and "perfect (B)" in same and "None: both runs" in same


def _without_kind(report: dict, kind: str) -> dict:
    """The report of the same run on a benchmark without `kind`."""
    rows = [row for row in report["samples"] if row["kind"] != kind]
    kinds = [k for k in report["summary"]["per_kind"] if k != kind]
    return report | {"samples": rows, "summary": aggregate(rows, kinds)}


def _row(page: str, label: str) -> str:
    """The cells of the comparison table's row labelled `label`."""
    return page.split(f"<td class=l>{label}</td>", 1)[1].split("</tr>", 1)[0]


def test_compare_covers_the_kinds_of_both_reports(perfect, null):
    a, b = load_report(perfect), _without_kind(load_report(null), "remove")
    page = compare(a, b)
    assert "only A has edit kinds remove" in page  # said, not silently dropped
    # success: A, B (a dash), Δ (a dash); then per metric A, a dash, a dash
    assert _row(page, "remove (not in B)").startswith("<td>100.0% [21%, 100%]</td><td>–</td><td>–</td>")
    for kind in (*[k for k in EDIT_KINDS if k != "remove"], "overall"):
        assert f"<td class=l>{kind}</td>" in page
    page = compare(b, a)  # the other way round: the kinds of B are not dropped either
    assert "only B has edit kinds remove" in page
    assert _row(page, "remove (not in A)").startswith("<td>–</td><td>100.0% [21%, 100%]</td><td>–</td>")


def _table_rows(summary: dict) -> dict[str, list[str]]:
    """summary_table's rows as text, by kind."""
    table = summary_table(summary)
    cells = [[str(cell) for cell in column.cells] for column in table.columns]
    return {row[0]: list(row[1:]) for row in zip(*cells, strict=True)}


def test_the_terminal_table_shows_kinds_without_scores_and_errors():
    rows = [
        {"kind": "add", "success": True, "metrics": {"psnr": 30.0, "ssim": 0.9}},
        {"kind": "remove", "success": False, "metrics": {}, "error": "the edit has 13 frames, the source 16"},
    ]
    table = _table_rows(aggregate(rows, ["add", "remove", "style"]))  # style: not run (--limit)
    assert table["add"] == ["1", "0", "100.0%", "21%-100%", "30.00", "0.900"]
    assert table["remove"] == ["1", "1", "0.0%", "0%-79%", "–", "–"]  # every sample errored: no metrics
    assert table["style"] == ["0", "0", "–", "–", "–", "–"]
    assert table["overall"][:2] == ["2", "1"]


def test_the_eval_commands(tmp_path, capsys):
    bench = tmp_path / "bench"
    main(
        ["eval", "flatland-set", str(bench), "--per-kind", "1", "--kinds", "recolour,remove", "--frames", "9"]
    )
    assert "wrote 2 samples" in capsys.readouterr().err
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(bench / "truth" / "recolour-000.mp4", videos)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "run", str(bench), "--videos", str(videos), "-o", str(tmp_path / "a"), "--no-progress"])
    assert exit_info.value.code == 2
    error = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "1 of 2 edited videos are missing (expected <id>.mp4): remove-000" in error
    shutil.copy(bench / "truth" / "remove-000.mp4", videos)
    with pytest.raises(SystemExit) as exit_info:  # a sampler setting cannot reach edits made elsewhere
        main(["eval", "run", str(bench), "--videos", str(videos), "-o", str(tmp_path / "a"), "--steps", "4"])
    assert exit_info.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "sampler settings {'steps': 4} apply to a bundle, not to a folder of edited videos" in error
    main(["eval", "run", str(bench), "--videos", str(videos), "-o", str(tmp_path / "a"), "--no-progress"])
    assert load_report(tmp_path / "a")["summary"]["overall"]["success"]["rate"] == 1.0
    page = (tmp_path / "a" / "index.html").read_text()
    assert "2 of 2 samples scored" in page and "(partial run)" not in page
    assert "<b>recolour-000</b>" in page and "<b>remove-000</b>" in page  # each sample's example
    main(
        [
            "eval",
            "run",
            str(bench),
            "--videos",
            str(bench / "sources"),
            "-o",
            str(tmp_path / "b"),
            "--no-progress",
        ]
    )
    main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "ab.html")])
    assert "-100.0%" in (tmp_path / "ab.html").read_text()


def test_eval_run_passes_the_sampler_settings_to_the_bundle(tmp_path, monkeypatch):
    from retake.eval import editors

    bench = str(tmp_path / "bench")
    main(["eval", "flatland-set", bench, "--per-kind", "1", "--kinds", "remove", "--frames", "9"])
    opened = {}

    def fake_open(bundle, config):  # stands in for loading the bundle's model; stops the run right after
        opened.update(bundle=bundle, config=config)
        raise ValueError("stop here")

    monkeypatch.setattr(editors.BundleEditor, "from_pretrained", staticmethod(fake_open))
    sampler = ["--steps", "7", "--guidance", "2.5", "--video-guidance", "1.5"]
    with pytest.raises(SystemExit):
        main(["eval", "run", bench, "--model", str(tmp_path), "-o", str(tmp_path / "o"), *sampler])
    assert opened["bundle"] == tmp_path
    assert opened["config"] == editors.BundleEditConfig(steps=7, guidance=2.5, video_guidance=1.5)
