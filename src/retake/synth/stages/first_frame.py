"""Stages `instructions`, `edit` and `select`: plan the edits of an input, make K candidate first frames per
edit, and keep the best candidate or none.

A failure on one edit (an editor or VLM error) becomes that triplet's error row; its siblings go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from retake.data.records import STATUS_ERROR, StageError, error_from_exception, stable_seed
from retake.data.vlm import VLMError
from retake.synth.image_editors import EditSpec, ImageEditor
from retake.synth.records import SynthMeta, SynthSample, Triplet
from retake.synth.selection import Selector

StageResult = tuple[SynthSample, SynthMeta, StageError | None]


def sidecar_instructions(path: Path) -> list[str]:
    """Instructions in `<input>.txt` next to the input, one per line ('#' starts a comment)."""
    sidecar = path.with_suffix(".txt")
    if not sidecar.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in sidecar.read_text().splitlines())
    return [line for line in lines if line]


def each_live(meta: SynthMeta, stage: str, work: Callable[[Triplet], Triplet]) -> SynthMeta:
    """`work` on every live triplet; one that raises becomes an error row named after the exception."""
    out = []
    for triplet in meta.triplets:
        if triplet.ok:
            try:
                triplet = work(triplet)
            except Exception as exc:  # one edit's failure must cost one row, not the input's others
                error = error_from_exception(stage, exc)
                triplet = replace(
                    triplet, status=STATUS_ERROR, stage=stage, reason=error.reason, detail=error.detail
                )
        out.append(triplet)
    return meta.with_triplets(out)


class PlanEdits:
    name = "instructions"

    def __init__(self, editor: ImageEditor, instructions: tuple[str, ...]) -> None:
        self.editor = editor
        self.instructions = instructions

    def specs(self, sample: SynthSample) -> list[EditSpec]:
        """The editor's own edits for the input, else its sidecar text, else the configured instructions."""
        own = self.editor.edits(sample.path, sample.source)
        if own is not None:
            return own
        texts = sidecar_instructions(sample.path) or list(self.instructions)
        return [EditSpec(text) for text in texts]

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        triplets = [
            Triplet(i, s.instruction, s.edit_type, stable_seed(sample.seed, "edit", i), edit=s.edit)
            for i, s in enumerate(self.specs(sample))
        ]
        return sample, meta.with_triplets(triplets), None


class EditFirstFrame:
    name = "edit"

    def __init__(self, editor: ImageEditor) -> None:
        self.editor = editor

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        def edit(triplet: Triplet) -> Triplet:
            spec = EditSpec(triplet.instruction, triplet.edit, triplet.edit_type)
            found = self.editor.candidates(sample.first, spec, path=sample.path, seed=triplet.seed)
            sample.candidates[triplet.index] = found
            return replace(triplet, candidates=len(found))

        return sample, each_live(meta, self.name, edit), None


class Select:
    name = "select"

    def __init__(self, selector: Selector) -> None:
        self.selector = selector

    def __call__(self, sample: SynthSample, meta: SynthMeta) -> StageResult:
        def choose(triplet: Triplet) -> Triplet:
            candidates = sample.candidates.pop(triplet.index)
            try:
                picked = self.selector.select(sample.first, candidates, triplet.instruction, triplet.edit)
            except VLMError as exc:
                return replace(
                    triplet, status=STATUS_ERROR, stage=self.name, reason="vlm_failed", detail=str(exc)[:300]
                )
            triplet = replace(
                triplet,
                scores=picked.scores,
                prompt_tokens=picked.prompt_tokens,
                completion_tokens=picked.completion_tokens,
                cost=picked.cost,
            )
            if picked.index is None:
                return triplet.dropped(self.name, "all_rejected", picked.reason)
            sample.chosen[triplet.index] = candidates[picked.index].image
            return replace(triplet, strength=candidates[picked.index].strength)

        return sample, each_live(meta, self.name, choose), None
