"""Stage `trivial_filter`: drop pairs whose instruction teaches no edit: no change at all, a photometric
change only (brightness, contrast, colour grading ...), or an instruction too short or too long."""

from __future__ import annotations

import re
from dataclasses import replace

from retake.data.records import STATUS_DROPPED, STATUS_OK, Meta, Pair, Sample, StageResult

NO_CHANGE_RE = re.compile(
    r"^\s*(no (visible |meaningful |noticeable )?changes?|nothing( changes| differs)?|none|same|keep .* (the )?same"
    r"|leave .* unchanged|do nothing)\b",
    re.IGNORECASE,
)
# A global look change is no content edit; ICVE drops them ("brightness only").
PHOTOMETRIC_RE = re.compile(
    r"\b(brightness|brighter|brighten|darker|darken|dim(mer)?|exposure|contrast|saturation|saturate|desaturate"
    r"|vibrance|gamma|white balance|tint|colou?r ?grad(e|ed|ing)|colou?r correct(ion|ed)?|colou?r tone"
    r"|warmer|cooler|(warm|cool) tones?|hue shift|sharpen|sharper|blurr?(y|ier)?|noise|grain)\b",
    re.IGNORECASE,
)


class TrivialFilter:
    name = "trivial_filter"

    def __init__(self, *, min_words: int, max_words: int) -> None:
        self.min_words = min_words
        self.max_words = max_words

    def reason(self, instruction: str | None) -> str | None:
        """Why `instruction` is trivial ("no_change", "photometric", "too_short", "too_long"), else None."""
        if instruction is None or not instruction.strip() or NO_CHANGE_RE.match(instruction):
            return "no_change"
        if PHOTOMETRIC_RE.search(instruction):
            return "photometric"
        words = len(instruction.split())
        if words < self.min_words:
            return "too_short"
        if words > self.max_words:
            return "too_long"
        return None

    def __call__(self, sample: Sample, meta: Meta) -> StageResult:
        return sample, replace(meta, pairs=tuple(self.check(p) for p in meta.pairs)), None

    def check(self, pair: Pair) -> Pair:
        if pair.status != STATUS_OK:
            return pair
        why = self.reason(pair.instruction)
        return pair if why is None else replace(pair, status=STATUS_DROPPED, stage=self.name, reason=why)
