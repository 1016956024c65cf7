"""The ICVE SFT stages: `masks` (objects from the mask source), `mask_filter`, `pairs` (inpaint, then remove /
add / replace pairs), `instruction_filter`, `pair_filter` (quality) and the optional VLM `judge`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retake.data.records import STATUS_ERROR, StageError, error_from_exception, stable_seed
from retake.data.vlm import VLMError
from retake.eval.vlm_judge import VLMJudge
from retake.flatland.generate import unused_colours
from retake.synth import sft
from retake.synth.flatland import read_source
from retake.synth.inpaint import Inpainter, InpaintRequest
from retake.synth.masks import MaskSource, grow, mask_reason, mask_stats
from retake.synth.recipes import MaskConfig, PairsConfig
from retake.synth.records import MaskedObject, SynthMeta, SynthSample, Triplet
from retake.synth.stages.first_frame import each_live

StageResult = tuple[SynthSample, SynthMeta, StageError | None]
OUTSIDE_MARGIN = 2  # px beyond the inpainting mask still counted as edited (blending, anti-aliasing)


class FindObjects:
    name = "masks"

    def __init__(self, source: MaskSource) -> None:
        self.source = source

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        objects = self.source.objects(sample.path, meta.frame_indices, sample.frames.shape[1:3])
        for obj in objects:
            if obj.masks.shape != sample.frames.shape[:3]:
                raise ValueError(
                    f"mask of {obj.label!r} is {obj.masks.shape}, the clip {sample.frames.shape[:3]}"
                )
        return replace(sample, objects=tuple(objects)), replace(meta, objects=len(objects)), None


class MaskFilter:
    name = "mask_filter"

    def __init__(self, config: MaskConfig) -> None:
        self.config = config

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        kept, reasons = [], []
        for obj in sample.objects:
            stats = mask_stats(obj.masks) | {k: v for k, v in obj.info.items() if k == "visible"}
            verdict = mask_reason(stats, self.config)
            if verdict is None:
                kept.append((stats["area"], replace(obj, info={**obj.info, **stats})))
            else:
                reasons.append(verdict[0])
        kept.sort(key=lambda item: -item[0])  # the largest objects first: the clearest edits
        for reason in sorted(set(reasons)):
            meta = meta.dropped(self.name, reason, "object", reasons.count(reason))
        meta = meta.dropped(self.name, "too_many_objects", "object", len(kept) - self.config.max_objects)
        kept_objects = tuple(obj for _, obj in kept[: self.config.max_objects])
        return replace(sample, objects=kept_objects), replace(meta, objects=len(kept_objects)), None


class MakePairs:
    name = "pairs"

    def __init__(self, inpainter: Inpainter, masks: MaskConfig, pairs: PairsConfig) -> None:
        self.inpainter = inpainter
        self.masks = masks
        self.pairs = pairs

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        triplets: list[Triplet] = []
        free = self.free_colours(sample)
        for number, obj in enumerate(sample.objects):
            removed: dict[str, np.ndarray] = {}  # made once, for the object's remove and add pairs
            for edit_type, text, edit, caption in self.plan(sample, number, obj, free):
                seed = stable_seed(sample.seed, "pair", number, edit_type)
                triplet = Triplet(len(triplets), text, edit_type, seed, edit=edit).measured(object=number)
                triplets.append(self.make(sample, meta, triplet, obj, caption, removed))
        return sample, meta.with_triplets(triplets), None

    def make(
        self,
        sample: SynthSample,
        meta: SynthMeta,
        triplet: Triplet,
        obj: MaskedObject,
        caption: str | None,
        removed: dict[str, np.ndarray],
    ) -> Triplet:
        """Inpaint what one pair needs and store its clips; a failure becomes the pair's error row (the
        input's other pairs go on)."""
        region = grow(obj.masks, self.masks.dilate)
        try:
            if triplet.edit_type == "replace":
                request = InpaintRequest(caption, triplet.edit, sample.path, meta.frame_indices, triplet.seed)
                clips = sample.frames, self.inpainter.inpaint(sample.frames, region, request)
            else:
                if "clip" not in removed:
                    edit = sft.flatland_edit("remove", obj)
                    request = InpaintRequest(None, edit, sample.path, meta.frame_indices, triplet.seed)
                    removed["clip"] = self.inpainter.inpaint(sample.frames, region, request)
                forward = triplet.edit_type == "remove"  # an add pair is the remove pair reversed
                clips = (sample.frames, removed["clip"]) if forward else (removed["clip"], sample.frames)
        except Exception as exc:
            error = error_from_exception(self.name, exc)
            return replace(
                triplet, status=STATUS_ERROR, stage=self.name, reason=error.reason, detail=error.detail
            )
        sample.sources[triplet.index], sample.targets[triplet.index] = clips
        return triplet

    def free_colours(self, sample: SynthSample) -> list[str] | None:
        """Colours a Flatland source's scene never shows (None for other sources)."""
        if not any("colour" in o.info for o in sample.objects):
            return None
        return unused_colours(read_source(sample.path).scene)

    def plan(
        self, sample: SynthSample, number: int, obj: MaskedObject, free: list[str] | None
    ) -> list[tuple[str, str, dict | None, str | None]]:
        """(edit type, instruction, structured edit, caption to paint or None) of each pair of one object."""
        planned = []
        for edit_type in self.pairs.types:
            seed = stable_seed(sample.seed, "pair", number, edit_type)
            if edit_type == "replace":
                new = sft.replacement(obj, self.pairs, seed=seed, free_colours=free)
                text = sft.instruction("replace", obj.label, new.caption, seed=seed)
                planned.append((edit_type, text, new.edit, new.caption))
            else:
                planned.append(
                    (
                        edit_type,
                        sft.instruction(edit_type, obj.label, seed=seed),
                        sft.flatland_edit(edit_type, obj),
                        None,
                    )
                )
        return planned


class InstructionFilter:
    name = "instruction_filter"

    def __init__(self, config: PairsConfig) -> None:
        self.config = config

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        def check(triplet: Triplet) -> Triplet:
            verdict = sft.instruction_reason(triplet.instruction, self.config)
            return triplet if verdict is None else triplet.dropped(self.name, *verdict)

        return sample, each_live(meta, self.name, check), None


class PairFilter:
    name = "pair_filter"

    def __init__(self, masks: MaskConfig, config: PairsConfig) -> None:
        self.masks = masks
        self.config = config

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        def check(triplet: Triplet) -> Triplet:
            obj = sample.objects[int(triplet.metrics["object"])]
            region = grow(obj.masks, self.masks.dilate + OUTSIDE_MARGIN)
            source, target = sample.source_of(triplet.index), sample.targets[triplet.index]
            painted = source if triplet.edit_type == "add" else target  # the clip the inpainter made
            metrics = sft.pair_metrics(source, target, region, painted)
            verdict = sft.pair_reason(metrics, self.config)
            triplet = triplet.measured(**metrics)
            return triplet if verdict is None else triplet.dropped(self.name, *verdict)

        return sample, each_live(meta, self.name, check), None


class JudgeFilter:
    """The VLM quality filter: the EditVerseBench-rubric judge (retake.eval.vlm_judge) on each pair."""

    name = "judge"

    def __init__(self, judge: VLMJudge, min_total: int) -> None:
        self.judge = judge
        self.min_total = min_total

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        live = meta.live
        edits = [(sample.source_of(t.index), sample.targets[t.index], t.instruction) for t in live]
        verdicts = dict(zip((t.index for t in live), self.judge.judge_many(edits), strict=True))
        out = []
        for triplet in meta.triplets:
            verdict = verdicts.get(triplet.index) if triplet.ok else None
            if isinstance(verdict, VLMError):
                triplet = replace(
                    triplet,
                    status=STATUS_ERROR,
                    stage=self.name,
                    reason="vlm_failed",
                    detail=str(verdict)[:300],
                )
            elif verdict is not None:
                triplet = replace(
                    triplet.measured(judge_total=verdict.total), cost=triplet.cost + verdict.cost
                )
                if verdict.total < self.min_total:
                    triplet = triplet.dropped(
                        self.name, "judge_low", f"total {verdict.total} < {self.min_total}"
                    )
            out.append(triplet)
        return sample, meta.with_triplets(out), None
