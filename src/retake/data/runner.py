"""`curate`: list the inputs, cut them into shards, run the shards on an executor, and merge the manifest.

`run_shards` is that machinery for any `ShardFamily` (retake.data.pipeline); `curate` is it with the curation
pipeline, and `retake synth` uses it with its own.

Resuming is exact because a shard is the unit of work: its tar, manifest part and stats are renamed into
place when it is whole, the input list and its shard assignment are frozen in OUT at the first start, and
every random choice is seeded from the input's name. A restart skips finished shards and redoes the rest;
the merged manifest is sorted, so the same inputs and config always give the same dataset.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyarrow.dataset import dataset
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retake import files
from retake.checks import describe_change, describe_changes
from retake.data import shards
from retake.data.executors import make_executor
from retake.data.pipeline import (
    CURATION,
    CURATION_FAMILY,
    ShardFamily,
    ShardSummary,
    ShardTask,
    load_family,
    process_shard_json,
)
from retake.data.recipes import CurateConfig, get_recipe
from retake.data.stats import merge_stats

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv"}
    | {".3gp", ".ogv"}
)
LIST_EXTENSIONS = frozenset({".txt", ".lst"})


@dataclass(frozen=True)
class RunResult:
    out: Path
    manifest: Path
    stats: dict[str, Any]
    shards: int
    shards_skipped: int  # finished by an earlier run
    seconds: float


CurateResult = RunResult  # the name curation callers know


def list_inputs(
    input_path: str | Path, extensions: frozenset[str] = VIDEO_EXTENSIONS
) -> list[tuple[Path, str]]:
    """(path, source) of every input, sorted by source. `input_path` is a folder (searched recursively for
    files with `extensions`, videos by default; source = path relative to it), a .txt/.lst file of paths (one
    per line, relative to the list's folder; source = the line; "#" starts a comment line), or a single file (source = its name)."""
    root = Path(input_path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"input not found: {root}")
    if root.is_dir():
        found = [p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()]
        inputs = [(p, p.relative_to(root).as_posix()) for p in found]
    elif root.suffix.lower() in LIST_EXTENSIONS:
        # Blank lines and "#" comments are skipped: lists are often kept by hand.
        lines = [ln.strip() for ln in root.read_text().splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        inputs = [((root.parent / ln) if not Path(ln).is_absolute() else Path(ln), ln) for ln in lines]
    else:
        inputs = [(root, root.name)]
    if not inputs:
        raise ValueError(f"no inputs in {root} (looked for {', '.join(sorted(extensions))})")
    sources = [s for _, s in inputs]
    if len(set(sources)) != len(sources):
        raise ValueError(f"{root} lists some inputs twice; each video must appear once")
    return sorted(inputs, key=lambda item: item[1])


def plan_shards(
    inputs: list[tuple[Path, str]],
    out: Path,
    config: Any,
    vlm_cache_dir: Path | None,
    family: str = CURATION_FAMILY,
) -> list[ShardTask]:
    """Cut the sorted `inputs` into shards of `config.shard_size` videos, named by position, so a rerun over
    the same inputs plans the same shards and skips the ones already written."""
    size = config.shard_size
    return [
        ShardTask(
            shard=shards.shard_name(i // size),
            inputs=tuple((str(p), s) for p, s in inputs[i : i + size]),
            out=str(out),
            config=config,
            vlm_cache_dir=str(vlm_cache_dir) if vlm_cache_dir else None,
            family=family,
        )
        for i in range(0, len(inputs), size)
    ]


def curate(
    input_path: str | Path,
    out: str | Path,
    config: CurateConfig | str,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Curate `input_path` into the dataset folder `out` (see retake.data.shards for its layout) with `config`
    or the recipe of that name (e.g. "icve-pretrain"); resumes a run that was stopped, provided the config and
    inputs are the same."""
    if isinstance(config, str):
        config = get_recipe(config)
    elif not isinstance(config, CurateConfig):  # checked here: the pipeline would fail on a missing attribute
        raise ValueError(f"config must be a CurateConfig or a recipe name, got {type(config).__name__}")
    options = {"executor": executor, "workers": workers, "address": address, "progress": progress}
    inputs = list_inputs(input_path)
    _check_writer_inputs(config.writer, inputs)
    return run_shards(inputs, out, config, CURATION_FAMILY, **options)


def _check_writer_inputs(writer: str, inputs: list[tuple[Path, str]]) -> None:
    """The Flatland oracle describes footage from its ground-truth sidecars: on inputs that have none (real
    video) every pair would fail, after the whole analysis, as `no_ground_truth`."""
    if writer == "flatland" and inputs and not any(p.with_suffix(".json").is_file() for p, _ in inputs):
        raise ValueError(
            f"--writer flatland describes Flatland footage from its .json sidecars, and none of the "
            f"{len(inputs)} inputs has one (e.g. {inputs[0][0].with_suffix('.json')}); for real video use "
            "--writer vlm (or none for pairs without instructions)"
        )


def run_shards(
    inputs: list[tuple[Path, str]],
    out: str | Path,
    config: Any,
    family: str,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Run the pipeline of `family` (import path of a `ShardFamily`) over `inputs` into the dataset folder
    `out`, shard by shard on `executor`, then merge; resumes a stopped run with the same config and inputs."""
    started = time.perf_counter()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():  # else mkdir's bare "[Errno 17] File exists" deep in a stage
        raise FileExistsError(f"{out} is a file, not a folder for the dataset; choose another OUT")
    pipeline = load_family(family)
    cache = pipeline.prepare(config, out)
    runner = make_executor(executor, workers, address=address)
    _claim_out(out, config, inputs)
    tasks = plan_shards(inputs, out, config, cache, family)
    done = [t for t in tasks if shards.part_path(out, t.shard).is_file()]
    todo = [t for t in tasks if not shards.part_path(out, t.shard).is_file()]
    results = (
        ShardSummary(**json.loads(r)) for r in runner.map(process_shard_json, [t.to_json() for t in todo])
    )
    _run(
        results,
        total=len(inputs),
        already=sum(len(t.inputs) for t in done),
        show=progress,
        label=pipeline.name,
        item=pipeline.item,
    )
    stats = merge(out, [t.shard for t in tasks], pipeline)
    return RunResult(
        out, out / "manifest.parquet", stats, len(tasks), len(done), time.perf_counter() - started
    )


def _claim_out(out: Path, config: Any, inputs: list[tuple[Path, str]]) -> None:
    """Record (or check, on a restart) the config and input list OUT belongs to; clear half-written files."""
    digest = hashlib.sha256("\n".join(s for _, s in inputs).encode()).hexdigest()
    run = {"config": json.loads(config.to_json()), "inputs": len(inputs), "inputs_sha256": digest}
    run_file = out / "run.json"
    if run_file.is_file():
        previous = shards.read_json(run_file)
        if previous["config"] != run["config"]:
            changed = "; ".join(describe_changes(previous["config"], run["config"]))
            raise ValueError(f"{out} holds a run with another config ({changed}); use a new OUT")
        if previous["inputs_sha256"] != digest:
            count = len(inputs)
            changed = (
                describe_change("inputs", previous["inputs"], count)
                if previous["inputs"] != count
                else f"other files, {count} as before"
            )
            raise ValueError(f"{out} holds a run over other inputs ({changed}); use a new OUT")
    else:
        out.mkdir(parents=True, exist_ok=True)
        shards.write_json(run_file, run)
    for folder in (out, out / "shards", out / "parts"):
        files.remove_leftovers(folder)  # the leftovers of a killed run; their shards are redone


def _run(
    results: Iterable[ShardSummary],
    *,
    total: int,
    already: int,
    show: bool,
    label: str = "curate",
    item: str = "pairs",
) -> None:
    columns = [
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("videos"),
        TimeElapsedColumn(),
    ]
    pairs = 0
    console = Console(stderr=True)  # stdout stays clean for whatever a caller prints there
    with Progress(*columns, TextColumn("{task.description}"), console=console, disable=not show) as bar:
        task = bar.add_task("", total=total, completed=already)
        for summary in results:
            pairs += summary.pairs
            bar.update(task, advance=summary.videos, description=f"{pairs} {item}")


def merge(out: Path, shard_names: list[str], family: ShardFamily = CURATION) -> dict[str, Any]:
    """Merge the shards' manifest parts and stats into OUT/manifest.parquet and OUT/stats.json."""
    parts = [str(shards.part_path(out, s)) for s in shard_names]
    # A dataset scan reads the (many, small) parts with several threads instead of one file at a time.
    table = dataset(parts, schema=family.schema, format="parquet").to_table()
    table = shards.sort_manifest(table, family.sort_keys)
    shards.write_table(table, out / "manifest.parquet")
    stats = merge_stats(shards.read_json(shards.stats_path(out, s)) for s in shard_names)
    stats["shards"] = len(shard_names)
    shards.write_json(out / "stats.json", stats)
    return stats
