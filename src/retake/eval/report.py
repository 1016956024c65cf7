"""Reports of benchmark runs: one JSON with every number, one HTML page to read them, and a side-by-side
comparison of two runs.

`write_report(result, benchmark, out_dir)` writes into `out_dir` (default: the run directory)
    report.json         benchmark, editor, judge (model, prompt hash and text), config, the summary per kind and
                        overall, every sample's verdict and metrics, and what each metric means
    index.html          tables, plots and example GIFs
    plots/*.png         success rate per kind (Wilson intervals), metric distributions per kind
    gifs/<id>.gif       source | edit | reference, side by side, for the first few samples of each kind
`compare(report_a, report_b)` returns one standalone HTML page (its plot is embedded) with both runs' numbers
and the differences B - A, coloured by whether they are improvements.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # the object API renders with Agg and leaves pyplot's state alone
from rich.table import Table

from retake import __version__, files
from retake.eval.benchmark import Benchmark
from retake.eval.metrics import METRICS
from retake.eval.runner import SEEDS_FILE, RunResult, seed_dir
from retake.eval.vlm_judge import MAX_SCORE, RUBRIC
from retake.video import Video, read, write_gif

FORMAT = "retake.eval.report/1"
REPORT_JSON = "report.json"
REPORT_HTML = "index.html"

# Metrics the runner adds, and the judge's, whose scale the rubric (vlm_judge.RUBRIC) defines.
_OWN_METRICS: dict[str, tuple[bool, str]] = {
    "edit_seconds": (False, "seconds the editor took per sample"),
    "vlm_overall": (True, f"VLM judge: mean of the three rubric scores (0-{MAX_SCORE})"),
    "vlm_total": (
        True,
        f"VLM judge: sum of the rubric scores (0-{len(RUBRIC) * MAX_SCORE}), EditVerseBench scale",
    ),
} | {f"vlm_{c.field}": (True, f"VLM judge: {c.key.replace('_', ' ')} (0-{MAX_SCORE})") for c in RUBRIC}


@dataclass(frozen=True)
class ReportConfig:
    gifs_per_kind: int = 3  # example GIFs per edit kind (the first samples of each kind)
    gif_scale: int = 1  # nearest-neighbour upscaling in the GIF files (GIF encoding time grows with it)
    display_scale: int = 2  # the page shows GIFs this much larger (pixelated): Flatland clips are 64 px
    columns: tuple[str, ...] = ("psnr", "ssim", "preservation_psnr", "flicker", "vlm_total")  # table metrics

    def __post_init__(self) -> None:
        if self.gifs_per_kind < 0 or self.gif_scale < 1 or self.display_scale < 1:
            raise ValueError(
                "need gifs_per_kind >= 0, gif_scale >= 1 and display_scale >= 1, got "
                f"{self.gifs_per_kind}, {self.gif_scale} and {self.display_scale}"
            )


def metric_info(name: str) -> dict[str, Any]:
    """Direction and meaning of a metric name, for tables and deltas."""
    if name in _OWN_METRICS:
        higher, description = _OWN_METRICS[name]
    elif name in METRICS:
        higher, description = METRICS[name].higher_is_better, METRICS[name].description
    else:
        raise ValueError(f"unknown metric {name!r}")
    return {"higher_is_better": higher, "description": description}


def write_report(
    result: RunResult,
    benchmark: Benchmark,
    out_dir: str | os.PathLike[str] | None = None,
    config: ReportConfig = ReportConfig(),
) -> Path:
    """Write report.json, index.html, plots and GIFs (see the module docstring); returns the HTML path."""
    out = Path(out_dir) if out_dir is not None else result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(result)
    report["files"] = {
        "plots": _write_plots(report["summary"], out / "plots"),
        "gifs": _write_gifs(result, benchmark, out / "gifs", config),
    }
    files.write_json(out / REPORT_JSON, report, allow_nan=False)
    files.write_text(out / REPORT_HTML, render_html(report, config))
    return out / REPORT_HTML


def build_report(result: RunResult) -> dict[str, Any]:
    """The report's JSON content (without the file lists `write_report` adds)."""
    names = sorted(result.summary["overall"]["metrics"])
    return {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "retake_version": __version__,
        "complete": result.complete,
        **{key: result.header[key] for key in ("benchmark", "editor", "judge", "config")},
        "metrics": {name: metric_info(name) for name in names},
        "summary": result.summary,
        "samples": result.rows,
    }


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A report.json, given itself or its folder; for a run over several editor seeds (`run_seeds`), the
    report of their samples pooled (`pooled_report`)."""
    path = Path(path)
    if path.is_dir() and (path / SEEDS_FILE).is_file() and not (path / REPORT_JSON).is_file():
        return pooled_report(path)
    path = path / REPORT_JSON if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no report at {path}")
    report = json.loads(path.read_text())
    if report.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a retake report (format {report.get('format')!r}, expected {FORMAT!r})"
        )
    return report


def pooled_report(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """One report over a multi-seed run's seed-<s>/ reports: seeds.json's pooled summary, every seed's samples
    (each with its `editor_seed`, so runs match sample by sample on the seeds they share) and `seeds`."""
    folder = Path(folder)
    record = json.loads((folder / SEEDS_FILE).read_text())
    seeds = record["seeds"]
    reports = []
    for seed in seeds:
        try:
            reports.append(load_report(seed_dir(folder, seed)))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{folder} lists editor seed {seed} but {seed_dir(folder, seed)} has no report"
            ) from None
    first = reports[0]
    config = {key: value for key, value in first["config"].items() if key != "seed"}
    return {
        **{
            key: first[key] for key in ("format", "retake_version", "benchmark", "editor", "judge", "metrics")
        },
        "created": max(r["created"] for r in reports),
        "complete": all(r["complete"] for r in reports),
        "config": config,
        "seeds": seeds,
        "summary": record["summary"],
        "samples": [
            {**row, "editor_seed": seed}
            for seed, report in zip(seeds, reports, strict=True)
            for row in report["samples"]
        ],
    }


def editor_seeds(report: dict[str, Any]) -> list[int]:
    """The editor seeds behind a report: a pooled report's, or a single run's one."""
    return report.get("seeds") or [report["config"]["seed"]]


# ---- files ------------------------------------------------------------------------------------------------


def _write_gifs(
    result: RunResult, benchmark: Benchmark, folder: Path, config: ReportConfig
) -> dict[str, Any]:
    """source | edit | reference GIFs of the first `gifs_per_kind` edited samples per kind:
    {"paths": {id: relative path}, "size": [width, height] of every GIF (they share the benchmark's size)}."""
    rows = {row["id"]: row for row in result.rows if "error" not in row}
    paths: dict[str, str] = {}
    size = [0, 0]
    for kind in benchmark.config.kinds:
        samples = [s for s in benchmark.samples if s.kind == kind and s.id in rows][: config.gifs_per_kind]
        for sample in samples:
            panels = side_by_side(
                [sample.source(), read(result.edit_path(sample.id)), sample.target()], config.gif_scale
            )
            write_gif(panels, folder / f"{sample.id}.gif")
            paths[sample.id] = f"gifs/{sample.id}.gif"
            size = [panels.width, panels.height]
    return {"paths": paths, "size": size}


def side_by_side(videos: list[Video], scale: int = 1, gap: int = 2) -> Video:
    """Videos of one shape in a row, `gap` white pixels apart, each pixel repeated `scale` times."""
    frames = [np.repeat(np.repeat(v.frames, scale, axis=1), scale, axis=2) for v in videos]  # (F, sH, sW, 3)
    count, height = frames[0].shape[:2]
    spacer = np.full((count, height, gap, 3), 255, np.uint8)
    row = [part for f in frames for part in (f, spacer)][:-1]
    return Video(np.concatenate(row, axis=2), videos[0].fps)


def _write_plots(summary: dict[str, Any], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"success.png": _success_figure({"": summary}), "metrics.png": _metrics_figure(summary)}
    for name, figure in figures.items():
        with files.replacing(folder / name) as tmp:  # a PNG cut short is never left behind the page
            figure.savefig(tmp, dpi=100, format="png")
    return [f"plots/{name}" for name in figures]


def _groups(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return summary["per_kind"] | {"overall": summary["overall"]}


def _group_names(summaries: Iterable[dict[str, Any]]) -> list[str]:
    """The kinds of every summary, in the order they first appear, then "overall": runs on benchmarks of
    other kinds still share one table and one plot."""
    kinds = dict.fromkeys(kind for summary in summaries for kind in summary["per_kind"])
    return [*kinds, "overall"]


def _success_figure(summaries: dict[str, dict[str, Any]]) -> Figure:
    """Success rate per kind with Wilson intervals; one bar per run (label -> summary) in each group."""
    figure = Figure(figsize=(7, 3.2))  # no layout engine: it costs more than the drawing
    figure.subplots_adjust(left=0.09, right=0.98, top=0.95, bottom=0.1)
    axes = figure.subplots()
    kinds = _group_names(summaries.values())
    width = 0.8 / len(summaries)
    for offset, (label, summary) in enumerate(summaries.items()):
        groups = _groups(summary)
        missing = {"rate": None, "low": None, "high": None}  # a kind this run lacks: no bar, its slot kept
        success = [groups[k]["success"] if k in groups else missing for k in kinds]
        rates = np.array([_none_to_nan(s["rate"]) for s in success])
        lows = np.array([_none_to_nan(s["low"]) for s in success])
        highs = np.array([_none_to_nan(s["high"]) for s in success])
        x = np.arange(len(kinds)) + (offset - (len(summaries) - 1) / 2) * width
        axes.bar(x, rates, width, yerr=[rates - lows, highs - rates], capsize=3, label=label or None)
    axes.set_xticks(np.arange(len(kinds)), kinds)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("oracle success rate")
    if len(summaries) > 1:
        figure.subplots_adjust(top=0.86)
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(summaries), frameon=False)
    return figure


def _metrics_figure(summary: dict[str, Any]) -> Figure:
    """Mean and standard deviation per kind of the quality, preservation and flicker metrics."""
    names = [
        n for n in ("psnr", "ssim", "preservation_psnr", "flicker") if n in summary["overall"]["metrics"]
    ]
    rows = max(1, (len(names) + 1) // 2)
    figure = Figure(figsize=(8, 2.4 * rows))
    figure.subplots_adjust(
        left=0.07, right=0.98, top=1 - 0.25 / rows, bottom=0.3 / rows, hspace=0.5, wspace=0.2
    )
    kinds = list(summary["per_kind"])
    for i, name in enumerate(names):
        axes = figure.add_subplot(rows, 2, i + 1)
        stats = [summary["per_kind"][k]["metrics"].get(name, {}) for k in kinds]
        means = [_none_to_nan(s.get("mean")) for s in stats]
        stds = [_none_to_nan(s.get("std")) for s in stats]
        axes.bar(np.arange(len(kinds)), means, yerr=stds, capsize=3, color="tab:gray")
        axes.set_xticks(np.arange(len(kinds)), kinds)  # positions, so a kind without values keeps its slot
        arrow = "higher is better" if metric_info(name)["higher_is_better"] else "lower is better"
        axes.set_title(f"{name} ({arrow})", fontsize=9)
        axes.tick_params(labelsize=7)
    return figure


def _none_to_nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


# ---- HTML -------------------------------------------------------------------------------------------------

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.ok{color:#17762e}.bad{color:#b3261e}
.better{background:#dff3e3}.worse{background:#fbe1df}pre{white-space:pre-wrap;background:#f7f7f7;padding:8px}
figure{display:inline-block;margin:6px;vertical-align:top;max-width:420px;font-size:90%}img{image-rendering:pixelated}"""


def html_page(title: str, body: list[str]) -> str:
    """A whole HTML page with the reports' style, around already-escaped body parts."""
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>'
    return (
        f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n<h1>{html.escape(title)}</h1>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def html_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """An HTML table of already-escaped cells; the first `left` columns are left-aligned."""

    def cells(row: list[str], tag: str) -> str:
        return "".join(f"<{tag}{' class=l' if i < left else ''}>{c}</{tag}>" for i, c in enumerate(row))

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def html_number(value: float | None, name: str = "") -> str:
    """A metric's value as a table shows it ('–' for none)."""
    if value is None:
        return "–"
    if name in ("ssim", "preservation_ssim", "motion_cosine") or abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:.2f}"


def _rate(success: dict[str, Any]) -> str:
    if success["rate"] is None:
        return "–"
    return f"{success['rate']:.1%} [{success['low']:.0%}, {success['high']:.0%}]"


def _columns(report: dict[str, Any], config: ReportConfig) -> list[str]:
    return [c for c in config.columns if c in report["summary"]["overall"]["metrics"]]


def _summary_rows(report: dict[str, Any], columns: list[str]) -> list[list[str]]:
    rows = []
    for kind, group in _groups(report["summary"]).items():
        stats = [group["metrics"].get(c, {}) for c in columns]
        numbers = [html_number(s.get("mean"), c) for s, c in zip(stats, columns, strict=True)]
        rows.append(
            [html.escape(kind), str(group["n"]), str(group["errors"]), _rate(group["success"]), *numbers]
        )
    return rows


def html_arrow(name: str) -> str:
    """Which way the metric is better: ↑ or ↓."""
    return "↑" if metric_info(name)["higher_is_better"] else "↓"


def render_html(report: dict[str, Any], config: ReportConfig = ReportConfig()) -> str:
    """The run's page: what was run, the summary table, every metric, plots, examples and every sample."""
    editor, bench = report["editor"], report["benchmark"]
    columns = _columns(report, config)
    done = report["summary"]["overall"]["n"]
    body = [
        f"<p>Editor <b>{html.escape(str(editor.get('name', '?')))}</b> on benchmark "
        f"<code>{html.escape(bench['path'])}</code> (fingerprint {bench['fingerprint']}): "
        f"{done} of {bench['samples']} samples scored{'' if report['complete'] else ' (partial run)'}; "
        f"retake {report['retake_version']}, {report['created']}.</p>",
        "<h2>Summary</h2>",
        f"<p>Success: the Flatland oracle judge's verdict, with {report['summary']['overall']['success']['confidence']:.0%} "
        "Wilson intervals. Metric columns are means.</p>",
        html_table(
            ["kind", "n", "errors", "success", *[f"{c} {html_arrow(c)}" for c in columns]],
            _summary_rows(report, columns),
        ),
        *[f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in report["files"]["plots"]],
        _all_metrics_html(report),
        _setup_html(report),
        _examples_html(report, config),
        _samples_html(report, columns),
    ]
    return html_page(f"retake eval: {editor.get('name', 'editor')}", body)


def _all_metrics_html(report: dict[str, Any]) -> str:
    groups = _groups(report["summary"])
    rows = []
    for name, info in report["metrics"].items():
        stats = [g["metrics"].get(name, {}) for g in groups.values()]
        cells = [
            f"{html_number(s.get('mean'), name)} ± {html_number(s.get('std'), name)}" if s.get("n") else "–"
            for s in stats
        ]
        rows.append([f"{html.escape(name)} {html_arrow(name)}", html.escape(info["description"]), *cells])
    table = html_table(["metric", "meaning", *map(html.escape, groups)], rows, left=2)
    return f"<h2>Every metric</h2><p>Mean ± standard deviation over the samples where it applies.</p>{table}"


def _setup_html(report: dict[str, Any]) -> str:
    parts = ["<h2>Setup</h2>"]
    for key in ("editor", "benchmark", "config"):
        parts.append(f"<h3>{key}</h3><pre>{html.escape(json.dumps(report[key], indent=1))}</pre>")
    judge = report["judge"]
    if judge is None:
        parts.append("<p>No VLM judge was used.</p>")
    else:
        parts.append(
            f"<h3>VLM judge</h3><p>model <code>{html.escape(judge['model'])}</code>, prompt hash "
            f"<code>{judge['prompt_hash']}</code>, {html.escape(judge['scale'])}</p><details><summary>prompt</summary>"
            f"<pre>{html.escape(judge['system_prompt'])}\n\n{html.escape(judge['user_prompt'])}</pre></details>"
        )
    return "\n".join(parts)


def _examples_html(report: dict[str, Any], config: ReportConfig) -> str:
    rows = {row["id"]: row for row in report["samples"]}
    figures = []
    gifs = report["files"]["gifs"]
    width, height = (side * config.display_scale for side in gifs["size"])
    for sample_id, path in gifs["paths"].items():
        row = rows[sample_id]
        mark = '<span class="ok">success</span>' if row["success"] else '<span class="bad">failure</span>'
        figures.append(
            f'<figure><img src="{html.escape(path)}" alt="{html.escape(sample_id)}" width="{width}" '
            f'height="{height}"><figcaption>'
            f"<b>{html.escape(sample_id)}</b>: “{html.escape(row['instruction'])}” — {mark}: "
            f"{html.escape(row['reason'])}</figcaption></figure>"
        )
    return "<h2>Examples</h2><p>source | edit | reference</p>" + "".join(figures)


def _samples_html(report: dict[str, Any], columns: list[str]) -> str:
    rows = []
    for row in report["samples"]:
        mark = '<span class="ok">yes</span>' if row["success"] else '<span class="bad">no</span>'
        numbers = [html_number(row["metrics"].get(c), c) for c in columns]
        text = [html.escape(row[k]) for k in ("id", "kind", "instruction")]
        rows.append([*text, mark, html.escape(row["reason"]), *numbers])
    table = html_table(["id", "kind", "instruction", "success", "reason", *columns], rows, left=5)
    return f"<h2>Every sample</h2>{table}"


# ---- comparison -------------------------------------------------------------------------------------------


def compare(
    report_a: dict[str, Any] | str | os.PathLike[str], report_b: dict[str, Any] | str | os.PathLike[str]
) -> str:
    """A standalone HTML page with two runs side by side: per kind, A, B and B - A for the success rate and
    the table metrics (deltas coloured by direction), a success plot, and the samples whose verdicts differ."""
    a, b = (r if isinstance(r, dict) else load_report(r) for r in (report_a, report_b))
    names = _run_names(a, b)
    columns = [
        c
        for c in ReportConfig().columns
        if c in a["summary"]["overall"]["metrics"] and c in b["summary"]["overall"]["metrics"]
    ]
    body = [
        f"<p>A = <b>{html.escape(names[0])}</b> ({html.escape(a['created'])}), "
        f"B = <b>{html.escape(names[1])}</b> ({html.escape(b['created'])}). Δ = B − A; "
        "green: B is better, red: B is worse.</p>",
        *_comparability_warnings(a, b),
        _comparison_table(a, b, columns),
        f'<img alt="success rate per kind" src="data:image/png;base64,{_png(_success_figure(dict(zip(names, (a["summary"], b["summary"]), strict=True))))}">',
        _verdict_changes(a, b, names),
    ]
    return html_page(f"retake eval: {names[0]} vs {names[1]}", body)


def write_comparison(
    report_a: str | os.PathLike[str], report_b: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Path:
    out = Path(out)
    files.remove_temporaries_of(out)  # of a comparison killed while it was written
    files.write_text(out, compare(report_a, report_b))
    return out


def _run_names(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str]:
    name_a, name_b = (str(r["editor"].get("name", "editor")) for r in (a, b))
    return (f"{name_a} (A)", f"{name_b} (B)") if name_a == name_b else (name_a, name_b)


def _comparability_warnings(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    warnings = []
    if a["benchmark"]["fingerprint"] != b["benchmark"]["fingerprint"]:
        warnings.append("the runs are on different benchmarks: their numbers are not comparable")
    kinds = [set(r["summary"]["per_kind"]) for r in (a, b)]
    for run, only in (("A", kinds[0] - kinds[1]), ("B", kinds[1] - kinds[0])):
        if only:
            warnings.append(
                f"only {run} has edit kinds {', '.join(sorted(only))}: the other run's cells for them are "
                "dashes, and the overall rows cover different kinds"
            )
    judges = [
        None if r["judge"] is None else (r["judge"]["model"], r["judge"]["prompt_hash"]) for r in (a, b)
    ]
    if judges[0] != judges[1] and None not in judges:
        warnings.append(
            f"the VLM judges differ ({judges[0]} vs {judges[1]}): vlm_* scores are not comparable"
        )
    seeds = [editor_seeds(r) for r in (a, b)]
    if seeds[0] != seeds[1]:
        warnings.append(
            f"the runs sample with different editor seeds ({seeds[0]} vs {seeds[1]}): a sample's verdict "
            "changes with the seed too, and only samples of a seed both ran are matched below"
        )
    if not (a["complete"] and b["complete"]):
        warnings.append("at least one run is partial")
    return [f'<p class="bad">Warning: {html.escape(w)}.</p>' for w in warnings]


def _delta_cell(value_a: float | None, value_b: float | None, higher_is_better: bool, name: str) -> str:
    if value_a is None or value_b is None:
        return "<td>–</td>"
    delta = value_b - value_a
    if name == "success":
        text = f"{delta:+.1%}"
    else:
        text = f"{delta:+.3f}" if abs(delta) < 1 else f"{delta:+.2f}"
    if float(text.rstrip("%")) == 0:  # below the shown precision (float noise): neither better nor worse
        return "<td>0</td>"
    better = delta > 0 if higher_is_better else delta < 0
    return f'<td class="{"better" if better else "worse"}">{text}</td>'


# The group of a kind a run's benchmark does not have: its cells show a dash, as for a kind without samples.
_ABSENT: dict[str, Any] = {"success": {"rate": None}, "metrics": {}}


def _comparison_table(a: dict[str, Any], b: dict[str, Any], columns: list[str]) -> str:
    groups_a, groups_b = _groups(a["summary"]), _groups(b["summary"])
    header = "".join(f'<th colspan="3">{html.escape(c)} {html_arrow(c)}</th>' for c in columns)
    head = f'<tr><th class=l rowspan="2">kind</th><th colspan="3">success ↑</th>{header}</tr>'
    head += "<tr>" + "<th>A</th><th>B</th><th>Δ</th>" * (1 + len(columns)) + "</tr>"
    rows = []
    for kind in _group_names([a["summary"], b["summary"]]):
        ga, gb = groups_a.get(kind, _ABSENT), groups_b.get(kind, _ABSENT)
        label = (
            kind + ("" if kind in groups_a else " (not in A)") + ("" if kind in groups_b else " (not in B)")
        )
        cells = [
            f"<td class=l>{html.escape(label)}</td>",
            f"<td>{_rate(ga['success'])}</td>",
            f"<td>{_rate(gb['success'])}</td>",
        ]
        cells.append(_delta_cell(ga["success"]["rate"], gb["success"]["rate"], True, "success"))
        for name in columns:
            mean_a, mean_b = (g["metrics"].get(name, {}).get("mean") for g in (ga, gb))
            cells += [f"<td>{html_number(mean_a, name)}</td>", f"<td>{html_number(mean_b, name)}</td>"]
            cells.append(_delta_cell(mean_a, mean_b, metric_info(name)["higher_is_better"], name))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _by_sample(report: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    """Rows keyed by (editor seed, sample id): a pooled and a single-seed run match on the seed they share."""
    seed = report["config"].get("seed")
    return {(row.get("editor_seed", seed), row["id"]): row for row in report["samples"]}


def _verdict_changes(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> str:
    rows_a, rows_b = _by_sample(a), _by_sample(b)
    several = len(editor_seeds(a)) > 1 or len(editor_seeds(b)) > 1
    changed = []
    for key, row in rows_a.items():
        other = rows_b.get(key)
        if other is not None and bool(other["success"]) != bool(row["success"]):
            label = f"{row['id']} (seed {key[0]})" if several else row["id"]
            changed.append(
                [
                    html.escape(label),
                    html.escape(row["instruction"]),
                    *(html.escape(r["reason"]) for r in (row, other)),
                ]
            )
    if not changed:
        return "<h2>Verdicts that differ</h2><p>None: both runs pass and fail the same samples.</p>"
    table = html_table(["id", "instruction", *(f"{html.escape(n)}: verdict" for n in names)], changed, left=4)
    return f"<h2>Verdicts that differ</h2>{table}"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def summary_table(summary: dict[str, Any], columns: tuple[str, ...] = ReportConfig().columns) -> Table:
    """The summary per kind as a rich table, for the terminal."""
    shown = [c for c in columns if c in summary["overall"]["metrics"]]
    confidence = summary["overall"]["success"]["confidence"]
    header = [
        "kind",
        "n",
        "errors",
        "success",
        f"{confidence:.0%} CI",
        *[f"{c} {html_arrow(c)}" for c in shown],
    ]
    table = Table(*header)
    for kind, group in _groups(summary).items():
        success = group["success"]
        rate = "–" if success["rate"] is None else f"{success['rate']:.1%}"
        interval = "–" if success["low"] is None else f"{success['low']:.0%}-{success['high']:.0%}"
        # A kind whose samples all errored, or were not run (--limit), has no metrics at all: a dash.
        means = [html_number(group["metrics"].get(c, {}).get("mean"), c) for c in shown]
        table.add_row(kind, str(group["n"]), str(group["errors"]), rate, interval, *means)
    return table
