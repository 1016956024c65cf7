"""Stage `instruct`: ask the instruction writer (none, flatland oracle or VLM) for every kept pair."""

from __future__ import annotations

from dataclasses import replace

from retake.data.records import STATUS_ERROR, STATUS_OK, Meta, Sample, StageResult
from retake.data.writers import InstructionWriter


class Instruct:
    name = "instruct"

    def __init__(self, writer: InstructionWriter) -> None:
        self.writer = writer

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        todo = [p for p in meta.pairs if p.status == STATUS_OK]
        texts = dict(zip((p.key for p in todo), self.writer.write(sample, todo), strict=True))
        pairs = []
        for pair in meta.pairs:
            text = texts.get(pair.key)
            if text is None:
                pairs.append(pair)
                continue
            pair = replace(
                pair,
                instruction=text.instruction,
                prompt_tokens=text.prompt_tokens,
                completion_tokens=text.completion_tokens,
                cost=text.cost,
            )
            if text.error:  # a failed pair becomes an error row; its siblings go on
                pair = replace(
                    pair, status=STATUS_ERROR, stage=self.name, reason=text.error, detail=text.detail
                )
            pairs.append(pair)
        return sample, replace(meta, pairs=tuple(pairs)), None
