"""VLM judge: an OpenAI-compatible vision-language model scores an edit on the EditVerseBench rubric.

The judge sees `JudgeConfig.frames` evenly spaced frames of the source, then the frames at the same relative
times of the edited video (downscaled, as JPEG), and the instruction. It scores three criteria from 0 (worst)
to 3 (best), the rubric of EditVerseBench (Ju et al., 2025), so the sum (0-9) is on the scale of its published
VLM scores (DESIGN.md section 5), and answers with JSON only:
    {"instruction_following": 0-3, "edit_quality": 0-3, "background_consistency": 0-3, "reason": "..."}
An answer that does not parse is asked again by the client (with its retry budget) and never cached.

Scores depend on the model and the prompt: every `Judgement` carries the model name and `PROMPT_HASH`, and
`VLMJudge.describe()` gives both with the full prompt text, for reports. Compare editors under one judge only.
Attribute names (instruction, quality, preservation) predate the rubric and stay for `evaluate_edit`'s
`vlm_*` metric names; `RUBRIC` maps them to the rubric's criteria.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from retake.data.vlm import VLMAnswer, VLMClient, VLMError
from retake.eval._inputs import as_video
from retake.opticalflow import flow_size

MIN_SCORE, MAX_SCORE = 0, 3


@dataclass(frozen=True)
class Criterion:
    field: str  # `Judgement` attribute; the metric is vlm_<field>
    key: str  # the JSON key the judge answers with
    question: str
    levels: tuple[str, str, str, str]  # what a score of 0, 1, 2, 3 means


RUBRIC: tuple[Criterion, ...] = (
    Criterion(
        "instruction",
        "instruction_following",
        "Does the edited video carry out the instruction accurately and completely?",
        (
            "the instruction is ignored, or the opposite was done",
            "it is carried out only partly or poorly",
            "it is mostly carried out, with small inaccuracies or omissions",
            "it is carried out fully and exactly",
        ),
    ),
    Criterion(
        "quality",
        "edit_quality",
        "How good does the edited content itself look: realistic, seamless, free of artefacts "
        "(blur, distortion, unnatural texture, flicker)?",
        (
            "the edited content is garbled or the edit failed outright",
            "clearly flawed, with large distracting artefacts",
            "good, with small but visible artefacts",
            "clean, seamless and free of artefacts",
        ),
    ),
    Criterion(
        "preservation",
        "background_consistency",
        "Is everything the instruction does not ask to change the same as in the source, and stable over "
        "time?",
        (
            "what should stay is destroyed or replaced",
            "large, distracting changes where nothing should change",
            "small but visible changes or flicker where nothing should change",
            "everything that should stay is preserved exactly",
        ),
    ),
)
SCORES = tuple(criterion.field for criterion in RUBRIC)

SYSTEM_PROMPT = (
    "You are a strict judge of instruction-based video editing. You compare a source video with an edited "
    "version and score the edit. You answer with one JSON object and nothing else."
)


def _criterion_text(number: int, criterion: Criterion) -> str:
    levels = "; ".join(f"{score}: {text}" for score, text in enumerate(criterion.levels))
    return f"{number}. {criterion.key}: {criterion.question}\n   {levels}."


_ANSWER = ", ".join(f'"{c.key}": <{MIN_SCORE}-{MAX_SCORE}>' for c in RUBRIC)
# A str.format template: {count} and {instruction} are filled per request; doubled braces are literal.
USER_PROMPT = (
    "The first {count} images are frames of the source video, in order. The next {count} images are the "
    'edited video at the same moments.\nEditing instruction: "{instruction}"\n'
    f"Score the edit on three criteria, each from {MIN_SCORE} (worst) to {MAX_SCORE} (best):\n"
    + "\n".join(_criterion_text(i + 1, c).replace("{", "{{").replace("}", "}}") for i, c in enumerate(RUBRIC))
    + f'\nAnswer with JSON only: {{{{{_ANSWER}, "reason": "<at most 25 words>"}}}}'
)
# Scores are only comparable under one prompt: reports record this hash next to every score.
PROMPT_HASH = hashlib.sha256(f"{SYSTEM_PROMPT}\n{USER_PROMPT}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class JudgeConfig:
    frames: int = 3  # frames shown from each video, evenly spaced over it (EditVerseBench also uses 3)
    max_side: int = 384  # frames are downscaled to this longer side: image tokens cost money

    def __post_init__(self) -> None:
        if self.frames < 1 or self.max_side < 16:
            raise ValueError(f"need frames >= 1 and max_side >= 16, got {self.frames} and {self.max_side}")


@dataclass(frozen=True)
class Judgement:
    instruction: int  # instruction following, 0-3
    preservation: int  # background consistency, 0-3
    quality: int  # edit quality, 0-3
    reason: str
    cost: float  # what producing the answer cost (also when it came from the cache)
    cached: bool
    model: str  # the judge model that gave the scores
    prompt_hash: str  # `PROMPT_HASH` of the prompt it was asked with

    @property
    def overall(self) -> float:
        """The mean of the three scores (0-3)."""
        return self.total / 3.0

    @property
    def total(self) -> int:
        """The sum of the three scores (0-9): the EditVerseBench VLM score."""
        return self.instruction + self.preservation + self.quality

    def provenance(self) -> dict[str, Any]:
        """What a report keeps beside the scores: the model, the prompt's hash, its reason and the cost."""
        return {
            "model": self.model,
            "prompt_hash": self.prompt_hash,
            "reason": self.reason,
            "cost": self.cost,
        }

    def as_metrics(self) -> dict[str, float]:
        """The scores as `vlm_*` metrics, the names `evaluate_edit` uses, plus vlm_total."""
        names = (*SCORES, "overall", "total")
        return {f"vlm_{name}": float(getattr(self, name)) for name in names}


def parse_judgement(text: str) -> dict[str, Any]:
    """The scores (by `Judgement` field) and reason in an answer (a JSON object, possibly inside prose or a
    code fence).

    Raises ValueError (the client then asks again) when there is no object, a score is missing, not an integer
    or outside 0-3.
    """
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise ValueError(f"no JSON object in the answer: {text[:80]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"answer is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"answer is not a JSON object: {text[:80]!r}")
    parsed: dict[str, Any] = {"reason": str(data.get("reason", ""))}
    for criterion in RUBRIC:
        value = data.get(criterion.key)
        # bool is an int subclass; a float like 2.0 is accepted only when whole.
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"score {criterion.key!r} must be an integer, got {value!r}")
        if not MIN_SCORE <= value <= MAX_SCORE:
            raise ValueError(f"score {criterion.key!r} must be in {MIN_SCORE}-{MAX_SCORE}, got {value}")
        parsed[criterion.field] = int(value)
    return parsed


def _validate(text: str) -> str:
    """Client validator: the answer in canonical JSON (rubric keys), so the cache stores what was understood."""
    parsed = parse_judgement(text)
    canonical = {c.key: parsed[c.field] for c in RUBRIC} | {"reason": parsed["reason"]}
    return json.dumps(canonical, sort_keys=True)


def sample_frames(video: np.ndarray, count: int, max_side: int) -> list[np.ndarray]:
    """`count` evenly spaced frames (fewer if the video is shorter), each downscaled to `max_side`."""
    indices = np.unique(np.linspace(0, len(video) - 1, count).round().astype(int))
    height, width = flow_size(video.shape[1], video.shape[2], max_side)
    if (height, width) == video.shape[1:3]:
        return [video[i] for i in indices]
    return [cv2.resize(video[i], (width, height), interpolation=cv2.INTER_AREA) for i in indices]


class VLMJudge:
    """Asks a `VLMClient` to score edits (see the module docstring)."""

    def __init__(self, client: VLMClient, config: JudgeConfig = JudgeConfig()) -> None:
        self.client = client
        self.config = config

    def describe(self) -> dict[str, Any]:
        """Everything needed to reproduce or compare the scores: model, prompt (text and hash), rubric scale."""
        return {
            "model": self.client.model,
            "prompt_hash": PROMPT_HASH,
            "system_prompt": SYSTEM_PROMPT,
            "user_prompt": USER_PROMPT,
            "scale": f"{MIN_SCORE}-{MAX_SCORE} per criterion, total {len(RUBRIC) * MAX_SCORE}",
            "criteria": {c.field: c.key for c in RUBRIC},
            "frames": self.config.frames,
            "max_side": self.config.max_side,
        }

    def request(self, source: Any, edited: Any, instruction: str) -> tuple[list[dict], list[np.ndarray]]:
        """The messages and images of one judgement (source frames first, then edited frames)."""
        if not instruction or not instruction.strip():
            raise ValueError(f"the judge needs a non-empty instruction, got {instruction!r}")
        source, edited = as_video(source, "source"), as_video(edited, "edited")
        count = min(self.config.frames, len(source), len(edited))  # same number from each, side by side
        images = sample_frames(source, count, self.config.max_side)
        images += sample_frames(edited, count, self.config.max_side)
        prompt = USER_PROMPT.format(count=count, instruction=instruction.strip())
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        return messages, images

    def judge(self, source: Any, edited: Any, instruction: str) -> Judgement:
        """Score one edit; raises `retake.data.vlm.VLMError` when the VLM gives no usable answer."""
        messages, images = self.request(source, edited, instruction)
        return self._judgement(self.client.chat(messages, images, validate=_validate))

    def judge_many(self, edits: Sequence[tuple[Any, Any, str]]) -> list[Judgement | VLMError]:
        """Score (source, edited, instruction) triples concurrently; a failed one yields its VLMError."""
        requests = [self.request(*edit) for edit in edits]
        answers = self.client.chat_many(requests, validate=_validate)
        return [a if isinstance(a, VLMError) else self._judgement(a) for a in answers]

    def _judgement(self, answer: VLMAnswer) -> Judgement:
        return Judgement(
            **parse_judgement(answer.text),
            cost=answer.cost,
            cached=answer.cached,
            model=self.client.model,
            prompt_hash=PROMPT_HASH,
        )
