"""VLM judge: an OpenAI-compatible vision-language model rates an edit from 1 (worst) to 5 (best).

The judge sees `JudgeConfig.frames` evenly spaced frames of the source, then the frames at the same relative
times of the edited video (downscaled, as JPEG), and the instruction, and must answer with JSON only:
    {"instruction": 1-5, "preservation": 1-5, "quality": 1-5, "reason": "..."}
    instruction:  does the edited video carry out the instruction?
    preservation: is everything the instruction does not mention unchanged?
    quality:      is the edited video free of artefacts, blur and flicker?
An answer that does not parse is asked again by the client (with its retry budget) and never cached. Scores
depend on the model and the prompt: compare editors under one judge only (DESIGN.md section 5).
"""

from __future__ import annotations

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

SCORES = ("instruction", "preservation", "quality")
MIN_SCORE, MAX_SCORE = 1, 5

SYSTEM_PROMPT = (
    "You are a strict judge of instruction-based video editing. You compare a source video with an edited "
    "version and rate the edit. You answer with one JSON object and nothing else."
)
USER_PROMPT = """The first {count} images are frames of the source video, in order. \
The next {count} images are the edited video at the same moments.
Instruction given to the editor: "{instruction}"
Rate from 1 (worst) to 5 (best):
- instruction: does the edited video carry out the instruction?
- preservation: is everything the instruction does not mention unchanged?
- quality: is the edited video free of artefacts, blur and flicker?
Answer with JSON only: {{"instruction": <1-5>, "preservation": <1-5>, "quality": <1-5>, \
"reason": "<at most 20 words>"}}"""


@dataclass(frozen=True)
class JudgeConfig:
    frames: int = 3  # frames shown from each video, evenly spaced over it
    max_side: int = 384  # frames are downscaled to this longer side: image tokens cost money

    def __post_init__(self) -> None:
        if self.frames < 1 or self.max_side < 16:
            raise ValueError(f"need frames >= 1 and max_side >= 16, got {self.frames} and {self.max_side}")


@dataclass(frozen=True)
class Judgement:
    instruction: int
    preservation: int
    quality: int
    reason: str
    cost: float  # what producing the answer cost (also when it came from the cache)
    cached: bool

    @property
    def overall(self) -> float:
        """The mean of the three scores."""
        return (self.instruction + self.preservation + self.quality) / 3.0


def parse_judgement(text: str) -> dict[str, Any]:
    """The scores and reason in an answer (a JSON object, possibly inside prose or a code fence).

    Raises ValueError (the client then asks again) when there is no object, a score is missing, not an integer
    or outside 1-5.
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
    for name in SCORES:
        value = data.get(name)
        # bool is an int subclass; a float like 4.0 is accepted only when whole.
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"score {name!r} must be an integer, got {value!r}")
        if not MIN_SCORE <= value <= MAX_SCORE:
            raise ValueError(f"score {name!r} must be in {MIN_SCORE}-{MAX_SCORE}, got {value}")
        parsed[name] = int(value)
    return parsed


def _validate(text: str) -> str:
    """Client validator: the answer reduced to canonical JSON, so the cache stores what was understood."""
    return json.dumps(parse_judgement(text), sort_keys=True)


def sample_frames(video: np.ndarray, count: int, max_side: int) -> list[np.ndarray]:
    """`count` evenly spaced frames (fewer if the video is shorter), each downscaled to `max_side`."""
    indices = np.unique(np.linspace(0, len(video) - 1, count).round().astype(int))
    height, width = flow_size(video.shape[1], video.shape[2], max_side)
    if (height, width) == video.shape[1:3]:
        return [video[i] for i in indices]
    return [cv2.resize(video[i], (width, height), interpolation=cv2.INTER_AREA) for i in indices]


class VLMJudge:
    """Asks a `VLMClient` to rate edits (see the module docstring)."""

    def __init__(self, client: VLMClient, config: JudgeConfig = JudgeConfig()) -> None:
        self.client = client
        self.config = config

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
        """Rate one edit; raises `retake.data.vlm.VLMError` when the VLM gives no usable answer."""
        messages, images = self.request(source, edited, instruction)
        return _judgement(self.client.chat(messages, images, validate=_validate))

    def judge_many(self, edits: Sequence[tuple[Any, Any, str]]) -> list[Judgement | VLMError]:
        """Rate (source, edited, instruction) triples concurrently; a failed one yields its VLMError."""
        requests = [self.request(*edit) for edit in edits]
        answers = self.client.chat_many(requests, validate=_validate)
        return [a if isinstance(a, VLMError) else _judgement(a) for a in answers]


def _judgement(answer: VLMAnswer) -> Judgement:
    return Judgement(**parse_judgement(answer.text), cost=answer.cost, cached=answer.cached)
