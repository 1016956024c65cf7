"""Selection: keep the best of the K candidate first frames, or none (InsViE's GPT-4o step).

- `vlm`: a VLM (any OpenAI-compatible endpoint, through retake.data.vlm.VLMClient) reads written guidelines,
  sees the original frame and the K candidates, scores each 0-10 and names the best or none;
- `flatland`: the oracle judge on the first frame alone (a candidate passes or not);
- `none`: keeps the strongest candidate without looking (tests, or an editor trusted blindly).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from retake.data.vlm import VLMAnswer, VLMClient
from retake.eval.vlm_judge import sample_frames
from retake.flatland.edits import Edit
from retake.flatland.judge import judge
from retake.synth.recipes import SelectionConfig
from retake.synth.records import Candidate

GUIDELINES = """You select training data for an instruction-based video editor. An image editor was asked to \
apply an instruction to the first frame of a video and made several candidate edits at different strengths. \
The chosen frame will be propagated through the whole video, so a flaw in it spoils every frame.

Score every candidate from 0 (unusable) to 10 (perfect) by these guidelines:
1. Instruction following: the requested change is fully made (right object, attribute, style or action), \
nothing requested is missing. A candidate that barely changes the frame, or changes the wrong thing, \
scores at most 2.
2. Preservation: everything the instruction does not mention keeps its identity, layout, pose, colours and \
background. Global edits (a style) must keep the composition and recognisable content.
3. Quality: no artefacts (distorted faces or hands, smeared texture, duplicated objects, noise, colour \
casts, text), natural lighting and plausible geometry.
Prefer the weakest candidate that fully follows the instruction. If no candidate follows the instruction \
acceptably, answer best 0.

Answer with JSON only: {"scores": [<one 0-10 score per candidate, in order>], "best": <the number of the best \
candidate, 1-based, or 0 for none>, "reason": "<at most 25 words>"}"""
PROMPT_HASH = hashlib.sha256(GUIDELINES.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Selection:
    """The chosen candidate (None: all rejected), a score per candidate, and what the choice cost."""

    index: int | None
    scores: tuple[float, ...]
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class Selector(Protocol):
    name: str

    def select(
        self,
        first: np.ndarray,
        candidates: Sequence[Candidate],
        instruction: str,
        edit: dict[str, Any] | None,
    ) -> Selection: ...

    def spend(self) -> dict[str, float]: ...


def strongest(candidates: Sequence[Candidate]) -> int:
    """Index of the candidate made at the highest strength (the first when strengths are unknown)."""
    strengths = [c.strength if c.strength is not None else -np.inf for c in candidates]
    return int(np.argmax(strengths))


class KeepStrongest:
    name = "none"

    def select(self, first, candidates, instruction, edit) -> Selection:
        return Selection(strongest(candidates), tuple(1.0 for _ in candidates), "kept without selection")

    def spend(self) -> dict[str, float]:
        return {}


class FlatlandSelector:
    """The oracle: each candidate's first frame is judged against the source's with the structured edit, and
    the strongest passing candidate is kept. (The judge tolerates a partly blended edit, being calibrated to
    pass codec noise and blur; the oracle editor's strongest candidate is the exact edit.)"""

    name = "flatland"

    def select(self, first, candidates, instruction, edit) -> Selection:
        if edit is None:
            raise ValueError("the flatland selector needs the structured edit of a Flatland source")
        wanted = Edit.from_json(edit)
        passed = [bool(judge(first[None], c.image[None], wanted)) for c in candidates]
        scores = tuple(10.0 if p else 0.0 for p in passed)
        passing = [i for i in _by_strength(candidates) if passed[i]]
        if not passing:
            return Selection(None, scores, "no candidate passes the oracle judge")
        return Selection(passing[-1], scores, "strongest candidate the oracle judge passes")

    def spend(self) -> dict[str, float]:
        return {}


def _by_strength(candidates: Sequence[Candidate]) -> list[int]:
    """Candidate indices from the weakest to the strongest (unknown strengths first, in order)."""
    return sorted(
        range(len(candidates)),
        key=lambda i: (candidates[i].strength is not None, candidates[i].strength or 0),
    )


class VLMSelector:
    """The VLM reads `GUIDELINES` and answers JSON; answers that do not parse are asked again by the client."""

    name = "vlm"

    def __init__(self, client: VLMClient, config: SelectionConfig = SelectionConfig()) -> None:
        self.client = client
        self.config = config

    def request(
        self, first: np.ndarray, candidates: Sequence[Candidate], instruction: str
    ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
        """Messages and images (original first, then the candidates in order)."""
        if not instruction.strip():
            raise ValueError(f"selection needs a non-empty instruction, got {instruction!r}")
        pictures = np.stack([first, *(c.image for c in candidates)])  # (K+1, H, W, 3)
        images = sample_frames(pictures, len(pictures), self.config.max_side)
        text = (
            f'Instruction: "{instruction.strip()}"\nThe first image is the original frame; the next '
            f"{len(candidates)} images are candidates 1 to {len(candidates)}."
        )
        messages = [{"role": "system", "content": GUIDELINES}, {"role": "user", "content": text}]
        return messages, images

    def select(self, first, candidates, instruction, edit) -> Selection:
        messages, images = self.request(first, candidates, instruction)
        count = len(candidates)
        # A VLMError (no usable answer after the client's retries) is the caller's to record.
        answer = self.client.chat(messages, images, validate=lambda text: _validate(text, count))
        return self.decide(answer, count)

    def decide(self, answer: VLMAnswer, count: int) -> Selection:
        data = json.loads(answer.text)
        scores = tuple(float(s) for s in data["scores"])
        best = int(data["best"])
        usage = (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.cost)
        if best == 0 or scores[best - 1] < self.config.min_score:
            why = data["reason"] or f"best score {max(scores):.1f} < {self.config.min_score}"
            return Selection(None, scores, why, *usage)
        return Selection(best - 1, scores, data["reason"], *usage)

    def spend(self) -> dict[str, float]:
        return dict(self.client.totals.__dict__)


def parse_selection(text: str, count: int) -> dict[str, Any]:
    """{"scores": [count floats in 0-10], "best": 0..count, "reason": str} from an answer (a JSON object,
    possibly inside prose or a code fence). Raises ValueError (the client then asks again) otherwise."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise ValueError(f"no JSON object in the answer: {text[:80]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"answer is not valid JSON: {exc}") from None
    scores = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(scores, list) or len(scores) != count:
        raise ValueError(f"need {count} scores, got {scores!r}")
    for score in scores:
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 10:
            raise ValueError(f"scores must be numbers in 0-10, got {score!r}")
    best = data.get("best")
    if (
        isinstance(best, bool)
        or not isinstance(best, int | float)
        or best != int(best)
        or not 0 <= best <= count
    ):
        raise ValueError(f"best must be an integer in 0-{count}, got {best!r}")
    return {"scores": [float(s) for s in scores], "best": int(best), "reason": str(data.get("reason", ""))}


def _validate(text: str, count: int) -> str:
    """Client validator: the answer in canonical JSON, so the cache stores what was understood."""
    return json.dumps(parse_selection(text, count), sort_keys=True)


def make_selector(config: SelectionConfig, client: VLMClient | None = None) -> Selector:
    if config.name == "none":
        return KeepStrongest()
    if config.name == "flatland":
        return FlatlandSelector()
    if config.name == "vlm":
        if client is None:
            raise ValueError("the vlm selector needs a VLM client")
        return VLMSelector(client, config)
    raise ValueError(f"unknown selection {config.name!r}; known: vlm, flatland, none")
