"""`synthesize`: the paired-data factory over a folder of videos and stills, on the shared shard runner
(retake.data.runner.run_shards: resumable shards, local or Ray executors, merged manifest), then for the
ICVE SFT recipe the re-balancing of edit types over the merged dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from retake.data import shards
from retake.data.records import STATUS_DROPPED, STATUS_OK
from retake.data.runner import VIDEO_EXTENSIONS, RunResult, list_inputs, run_shards
from retake.synth.manifest import SYNTH_SCHEMA
from retake.synth.pipeline import SYNTH_FAMILY
from retake.synth.recipes import IcveSftConfig, InsVieConfig, SynthConfig, get_recipe
from retake.synth.records import IMAGE_EXTENSIONS
from retake.synth.sft import REBALANCE_STAGE, rebalance

INPUT_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS


def synthesize(
    input_path: str | Path,
    out: str | Path,
    config: SynthConfig | str,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Make (source, edited, instruction) triplets from `input_path` (a folder of videos and images, a .txt
    list, or one file) into the dataset folder `out`; resumes a stopped run with the same config and inputs."""
    if isinstance(config, str):
        config = get_recipe(config)
    elif not isinstance(config, InsVieConfig | IcveSftConfig):  # the pipeline would fail far from here
        raise ValueError(f"config must be a synth recipe config or name, got {type(config).__name__}")
    inputs = list_inputs(input_path, INPUT_EXTENSIONS)
    options = {"executor": executor, "workers": workers, "address": address, "progress": progress}
    result = run_shards(inputs, out, config, SYNTH_FAMILY, **options)
    if isinstance(config, IcveSftConfig):
        result = replace(result, stats=rebalance_dataset(result.out, config))
    return result


def rebalance_dataset(out: Path, config: IcveSftConfig) -> dict[str, Any]:
    """Re-balance the merged manifest's edit types (retake.synth.sft.rebalance) and update stats.json.
    Pairs over their type's share stay in the tars but their rows say dropped (readers go by the manifest).
    Idempotent: it always starts from the shards' own rows, so a resumed run gives the same result."""
    table = pq.read_table(out / "manifest.parquet")
    rows = [r for r in table.to_pylist() if r["stage"] != REBALANCE_STAGE]  # as the shards wrote them
    balanced = rebalance(rows, config.pairs, config.seed)
    shards.write_table(pa.Table.from_pylist(balanced, schema=SYNTH_SCHEMA), out / "manifest.parquet")
    stats = shards.read_json(out / "stats.json")
    over = sum(r["stage"] == REBALANCE_STAGE for r in balanced)
    ok = [r for r in balanced if r["status"] == STATUS_OK]
    stats["triplets_ok"] = len(ok)
    stats["triplets_dropped"] = sum(
        r["status"] == STATUS_DROPPED and r["triplet"] is not None for r in balanced
    )
    stats["edit_types"] = {
        t: sum(r["edit_type"] == t for r in ok) for t in sorted({r["edit_type"] for r in ok})
    }
    if over:
        stats.setdefault("dropped", {})[REBALANCE_STAGE] = {"over_target": {"triplet": over}}
    shards.write_json(out / "stats.json", stats)
    return stats
