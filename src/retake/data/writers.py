"""Instruction writers: given two clips of one scene, the instruction that turns clip A (src) into clip B (tgt).

- `none`: no instruction (pairs are labelled later).
- `flatland`: the Flatland oracle describer, reading the ground-truth sidecar next to the footage.
- `vlm`: any OpenAI-compatible chat endpoint, shown K frames of each clip (see retake.data.vlm).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retake.data.records import Pair, Sample
from retake.data.verbs import IMPERATIVE_VERBS
from retake.data.vlm import VLMAnswer, VLMClient, VLMConfig, image_part

NO_CHANGE = "No change."

VLM_SYSTEM_PROMPT = (
    "You write instructions for a video editing model. You see two clips of the same shot: clip A (the "
    "original) and clip B (the edited result). Write the one instruction an editor would give to turn clip A "
    "into clip B: what appears, disappears, is replaced, changes colour, moves, or how the camera changes "
    "(e.g. 'Zoom out and pan to the right.'). Answer with a single imperative sentence of at most 25 words, "
    "without mentioning clips, frames or videos. If nothing meaningful differs, answer 'No change.'"
)


@dataclass(frozen=True)
class PairText:
    """A writer's answer for one pair: an instruction (None: no instruction), or an error reason."""

    instruction: str | None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    detail: str = ""  # why it failed, in one line


class InstructionWriter(Protocol):
    name: str
    needs_pixels: bool  # True: the pipeline loads the clips' output frames (sample.clips) before it runs

    def write(self, sample: Sample, pairs: Sequence[Pair]) -> list[PairText]: ...

    def spend(self) -> dict[str, float]:
        """What this writer paid so far (requests, tokens, cost ...); empty when it pays nothing."""
        ...


class NoneWriter:
    """Pairs without instructions, for labelling later."""

    name = "none"
    needs_pixels = False

    def write(self, sample: Sample, pairs: Sequence[Pair]) -> list[PairText]:
        return [PairText(None) for _ in pairs]

    def spend(self) -> dict[str, float]:
        return {}


class FlatlandWriter:
    """The Flatland oracle: describes the ground-truth difference of the two frame ranges."""

    name = "flatland"
    needs_pixels = False

    def write(self, sample: Sample, pairs: Sequence[Pair]) -> list[PairText]:
        # Lazily: only Flatland runs need the Flatland world.
        from retake.flatland.describe import describe_clips
        from retake.flatland.truth import FootageTruth

        sidecar = sample.path.with_suffix(".json")
        if not sidecar.is_file():
            detail = f"no Flatland sidecar {sidecar.name} beside the video"
            return [PairText(None, error="no_ground_truth", detail=detail) for _ in pairs]
        truth = FootageTruth.load(sidecar)
        return [
            PairText(describe_clips(truth, (p.src.start, p.src.end), (p.tgt.start, p.tgt.end), seed=p.seed))
            for p in pairs
        ]

    def spend(self) -> dict[str, float]:
        return {}


class VLMWriter:
    """Asks a VLM, showing it `frames_per_clip` evenly spaced frames of each clip at output resolution."""

    name = "vlm"
    needs_pixels = True

    def __init__(self, client: VLMClient, frames_per_clip: int = 4, prompt: str = VLM_SYSTEM_PROMPT) -> None:
        if frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
        self.client = client
        self.frames_per_clip = frames_per_clip
        self.prompt = prompt

    def write(self, sample: Sample, pairs: Sequence[Pair]) -> list[PairText]:
        requests = [(self.messages(sample, p), ()) for p in pairs]
        answers = self.client.chat_many(requests, validate=validate_instruction)
        return [_to_text(a) for a in answers]

    def spend(self) -> dict[str, float]:
        return dict(self.client.totals.__dict__)

    def messages(self, sample: Sample, pair: Pair) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for label, clip in (("Clip A (original)", pair.src), ("Clip B (edited)", pair.tgt)):
            frames = sample.clips[clip.index]  # (N, H, W, 3)
            picks = np.linspace(0, len(frames) - 1, self.frames_per_clip).round().astype(int)
            content.append({"type": "text", "text": f"{label}, {self.frames_per_clip} frames in time order:"})
            content += [image_part(frames[i], self.client.jpeg_quality) for i in picks]
        content.append({"type": "text", "text": "The instruction that turns clip A into clip B:"})
        return [{"role": "system", "content": self.prompt}, {"role": "user", "content": content}]


def _to_text(answer: VLMAnswer | Exception) -> PairText:
    if isinstance(answer, Exception):  # the reason goes to the manifest: "vlm_failed" alone says nothing
        return PairText(None, error="vlm_failed", detail=f"{type(answer).__name__}: {answer}"[:300])
    return PairText(answer.text, "", answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.cost)


_NO_CHANGE_RE = re.compile(
    r"^(no (visible |meaningful )?changes?|nothing (changes|differs)|none|same)\b", re.I
)
_LABEL_RE = re.compile(
    r"^\s*(?:[-*>#]+\s*)?(?:\*\*)?(?:instruction|answer|edit)\s*:?\s*(?:\*\*)?\s*:?\s*", re.I
)


def validate_instruction(text: str, *, max_words: int = 60) -> str:
    """Clean a VLM answer into one imperative sentence ("No change." is allowed through, so the trivial filter
    can count it). Raises ValueError for anything else: empty, several sentences, not an instruction."""
    text = _LABEL_RE.sub("", text.strip()).strip().strip("\"'`*").strip()
    if not text:
        raise ValueError("empty answer")
    if "\n" in text:
        raise ValueError(f"answer spans several lines: {text[:60]!r}")
    if _NO_CHANGE_RE.match(text):
        return NO_CHANGE
    if re.search(r"[.!?]\s+\S", text):
        raise ValueError(f"answer has more than one sentence: {text[:60]!r}")
    words = text.split()
    if len(words) > max_words:
        raise ValueError(f"answer has {len(words)} words (> {max_words})")
    first = re.sub(r"[^a-z]", "", words[0].lower())
    if first not in IMPERATIVE_VERBS:
        raise ValueError(f"answer does not start with an imperative verb: {text[:60]!r}")
    text = text.rstrip(".!? ")
    return text[0].upper() + text[1:] + "."


def make_writer(
    name: str, *, vlm: VLMConfig | None = None, frames_per_clip: int = 4, cache_dir: Path | None = None
):
    """The writer called `name` ("none", "flatland" or "vlm")."""
    if name == "none":
        return NoneWriter()
    if name == "flatland":
        return FlatlandWriter()
    if name == "vlm":
        client = VLMClient.from_config(vlm or VLMConfig(), cache_dir=cache_dir)
        return VLMWriter(client, frames_per_clip)
    raise ValueError(f"unknown instruction writer {name!r}; known: none, flatland, vlm")
