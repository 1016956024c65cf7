"""Stage `verb_rewrite`: rewrite the clause-opening verbs of each instruction (retake.data.verbs), seeded per
pair so reruns give the same words."""

from __future__ import annotations

import random
from dataclasses import replace

from retake.data.records import STATUS_OK, Meta, Sample, StageResult
from retake.data.verbs import rewrite_verbs


class VerbRewrite:
    name = "verb_rewrite"

    def __init__(self, *, mode: str) -> None:
        self.mode = mode

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        pairs = tuple(
            replace(p, instruction=rewrite_verbs(p.instruction, mode=self.mode, rng=random.Random(p.seed)))
            if p.status == STATUS_OK and p.instruction
            else p
            for p in meta.pairs
        )
        return sample, replace(meta, pairs=pairs), None
