"""The factory's pipelines as a shard family of the shared runner (retake.data.pipeline.ShardFamily):

insvie:   read -> source_filter -> instructions -> edit -> select -> propagate -> quality_filter -> write
icve-sft: read -> source_filter -> masks -> mask_filter -> pairs -> instruction_filter -> pair_filter ->
          [judge] -> write

Stages keep the curation contract `(sample, meta) -> (sample, meta, error)`; a crashing stage costs one row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retake.data import shards
from retake.data.pipeline import ShardTask, run_sample
from retake.data.records import Stage
from retake.data.vlm import VLMClient, VLMError
from retake.synth.manifest import SORT_KEYS, SYNTH_SCHEMA, input_row, row_order, triplet_row
from retake.synth.recipes import IcveSftConfig, InsVieConfig, SynthConfig, config_from_dict
from retake.synth.records import SynthMeta, new_sample
from retake.synth.stats import SynthStats

SYNTH_FAMILY = "retake.synth.pipeline:SYNTH"


def vlm_client(config: SynthConfig, cache_dir: Path | None) -> VLMClient | None:
    """The VLM client a config's selection or judge calls, or None when it calls none."""
    return VLMClient.from_config(config.vlm, cache_dir=cache_dir) if config.uses_vlm else None


def _without_vlm(config: SynthConfig) -> str:
    """How a run that asks a VLM by default does without one (a first run on real video often has none)."""
    if isinstance(config, InsVieConfig):
        return "the default selection asks a VLM to pick the edited frame: --selection none keeps each edit"
    return "the quality judge asks a VLM: --set pairs.judge=none skips it"


def insvie_stages(
    config: InsVieConfig, sink: shards.TarSink, shard: str, client: VLMClient | None
) -> list[Stage]:
    """InsViE's stages for one shard: read and filter sources (videos, or stills made into clips), plan
    edits, edit the first frame at several strengths, let the selector pick one, propagate it through the
    clip, filter for quality and motion, write triplets. `client` serves the VLM selector, if one is used."""
    from retake.synth.image_editors import make_image_editor
    from retake.synth.propagate import make_propagator
    from retake.synth.selection import make_selector
    from retake.synth.stages.first_frame import EditFirstFrame, PlanEdits, Select
    from retake.synth.stages.propagate import Propagate, QualityFilter
    from retake.synth.stages.source import ReadSource, SourceFilter
    from retake.synth.stages.write import WriteTriplets

    editor = make_image_editor(config.editor)
    return [
        ReadSource(config.source, config.stills),
        SourceFilter(config.source),
        PlanEdits(editor, config.editor.instructions),
        EditFirstFrame(editor),
        Select(make_selector(config.selection, client)),
        Propagate(make_propagator(config.propagation), config.stills),
        QualityFilter(config.quality),
        WriteTriplets(sink, shard=shard, recipe=config.recipe, crf=config.crf, preset=config.encode_preset),
    ]


def sft_stages(
    config: IcveSftConfig, sink: shards.TarSink, shard: str, client: VLMClient | None
) -> list[Stage]:
    """ICVE's SFT stages for one shard: read and filter sources, find objects and filter their masks, make
    pairs by inpainting, filter instructions and pairs, let the VLM judge them when there is a `client`
    (none: the judge is off), write triplets."""
    from retake.eval.vlm_judge import VLMJudge
    from retake.synth.inpaint import make_inpainter
    from retake.synth.masks import make_mask_source
    from retake.synth.stages.sft import (
        FindObjects,
        InstructionFilter,
        JudgeFilter,
        MakePairs,
        MaskFilter,
        PairFilter,
    )
    from retake.synth.stages.source import ReadSource, SourceFilter
    from retake.synth.stages.write import WriteTriplets

    stages: list[Stage] = [
        ReadSource(config.source, None),
        SourceFilter(config.source),
        FindObjects(make_mask_source(config.masks)),
        MaskFilter(config.masks),
        MakePairs(make_inpainter(config.inpaint), config.masks, config.pairs),
        InstructionFilter(config.pairs),
        PairFilter(config.masks, config.pairs),
    ]
    if client is not None:
        stages.append(JudgeFilter(VLMJudge(client), config.pairs.min_judge_total))
    stages.append(
        WriteTriplets(sink, shard=shard, recipe=config.recipe, crf=config.crf, preset=config.encode_preset)
    )
    return stages


# After these stages an input with nothing left is dropped as a whole, with this reason.
EMPTY_AFTER = {
    "instructions": ("no_edits", lambda m: not m.triplets),
    "masks": ("no_objects", lambda m: m.objects == 0),
    "mask_filter": ("no_usable_objects", lambda m: m.objects == 0),
}


class SynthWork:
    """One shard of the factory: the stages, the VLM client they share, and the counts."""

    def __init__(self, task: ShardTask, sink: shards.TarSink) -> None:
        config: SynthConfig = task.config
        cache = Path(task.vlm_cache_dir) if task.vlm_cache_dir else None
        self.client = vlm_client(config, cache)
        build = insvie_stages if isinstance(config, InsVieConfig) else sft_stages
        self.stages = build(config, sink, task.shard, self.client)
        self.config = config
        self.shard = task.shard
        self.stats = SynthStats()

    def run(self, path: Path, source: str) -> list[dict]:
        sample = new_sample(path, source, self.config.seed)
        sample, meta, error = run_sample(self.stages, sample, SynthMeta(), EMPTY_AFTER)
        self.stats.add(meta, error)
        recipe = self.config.recipe
        if error is not None:
            return [input_row(sample, meta, error, shard=self.shard, recipe=recipe)]
        return [triplet_row(sample, meta, t, shard=self.shard, recipe=recipe) for t in meta.triplets]

    def totals(self, rows: list[dict]) -> dict[str, Any]:
        totals = self.stats.to_dict(rows)
        if self.client is not None:
            totals["vlm_spend"] = dict(self.client.totals.__dict__)
        return totals


class SynthFamily:
    name = "synth"
    item = "triplets"
    ok_key = "triplets_ok"
    schema = SYNTH_SCHEMA
    sort_keys = SORT_KEYS

    def config_from_dict(self, data: dict[str, Any]) -> SynthConfig:
        return config_from_dict(data)

    def prepare(self, config: SynthConfig, out: Path) -> Path | None:
        """Refuse a run whose models, folders or VLM are missing before any shard starts (each worker would
        fail on it); returns the VLM answer cache folder when a stage asks a VLM, else None."""
        missing = config.missing_paths()
        if missing:
            raise ValueError("; ".join(missing))
        for folder in _folders(config):
            if not Path(folder).expanduser().exists():
                raise FileNotFoundError(f"not found: {folder}")
        if (
            isinstance(config, IcveSftConfig)
            and config.inpaint.name == "opencv"
            and "replace" in config.pairs.types
        ):
            raise ValueError(
                "the opencv inpainter can only remove: drop 'replace' from pairs.types (--types remove,add) "
                "or use wan-vace or flatland"
            )
        cache = Path(config.vlm.cache_dir) if config.vlm.cache_dir else out / "vlm_cache"
        try:  # one clear error here for a VLM that is not configured, naming the step that wants it
            vlm_client(config, cache)
        except VLMError as exc:
            raise VLMError(f"{exc}; {_without_vlm(config)}") from None
        return cache if config.uses_vlm else None

    def open_shard(self, task: ShardTask, sink: shards.TarSink) -> SynthWork:
        return SynthWork(task, sink)

    def row_order(self, row: dict) -> tuple:
        return row_order(row)


def _folders(config: SynthConfig) -> list[str]:
    """The local folders a config reads (editor, propagator, masks, inpainter)."""
    if isinstance(config, InsVieConfig):
        candidates = [config.editor.path, config.propagation.path]
    else:
        candidates = [config.masks.path, config.inpaint.path]
    return [c for c in candidates if c]


SYNTH = SynthFamily()
