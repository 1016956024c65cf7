"""Does an editor draw what the instruction names? A probe of one attribute of added objects.

Each add sample of a Flatland benchmark is edited once per value of the attribute (every shape, or every
object colour), with that word swapped into its own instruction and the same seed, so the edits differ only
in that word. The oracle judge's eyes (`retake.flatland.judge.added_objects`) then say what was drawn. A
swapped edit whose ground truth (the sample's scene re-rendered with it) the oracle cannot read either, say a
blue circle on a slate background, is left out, so a perfect editor scores 1. The result is a confusion
table of asked against drawn: an editor that reads the word has a diagonal; one that ignores it sits at
chance (one over the number of values), whatever its success rate on the benchmark.

This separates "draws the wrong thing" from "draws it badly" (a right shape can still fail the benchmark
when something else changes), which no success rate does. With `path` "tokens" or "pooled" the swapped word
reaches the model through that text input only (`retake.eval.text_path`), which says where it is read.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.progress import track

from retake.eval.benchmark import Benchmark, BenchmarkConfig, BenchmarkSample
from retake.eval.editors import Editor
from retake.eval.text_path import PATHS, route_text
from retake.flatland.edits import Edit, apply_edit
from retake.flatland.judge import added_objects
from retake.flatland.pairs import make_pair
from retake.flatland.palette import OBJECT_COLOURS, SHAPES
from retake.flatland.render import render
from retake.video import Video

ATTRIBUTES: dict[str, tuple[str, ...]] = {"shape": SHAPES, "colour": tuple(OBJECT_COLOURS)}
NOTHING = "none"  # no new object of the colour asked (shape probe) or of any colour (colour probe)


@dataclass(frozen=True)
class ProbeEdit:
    sample: str
    asked: str
    drawn: str  # a value, "nothing recognisable" (a shapeless blob, shape probe) or NOTHING
    instruction: str


@dataclass(frozen=True)
class ProbeResult:
    attribute: str
    edits: tuple[ProbeEdit, ...]
    skipped: tuple[str, ...]  # add samples whose instruction does not name their value of the attribute
    unjudgeable: tuple[tuple[str, str], ...] = ()  # (sample, value): even the true edit reads otherwise
    path: str = "both"  # the text input(s) the swapped word went through (retake.eval.text_path)

    @property
    def values(self) -> tuple[str, ...]:
        return ATTRIBUTES[self.attribute]

    @property
    def right(self) -> int:
        """Edits that drew the value asked."""
        return sum(e.drawn == e.asked for e in self.edits)

    @property
    def accuracy(self) -> float:
        """Share of edits that drew the value asked (NaN without edits)."""
        return self.right / len(self.edits) if self.edits else float("nan")

    @property
    def chance(self) -> float:
        """The accuracy of an editor that draws one fixed value whatever the word."""
        return 1.0 / len(self.values)

    def confusion(self) -> dict[str, dict[str, int]]:
        """{asked: {drawn: count}}, every value asked as a key, drawn values by count (most first)."""
        counts = Counter((e.asked, e.drawn) for e in self.edits)
        return {
            asked: dict(Counter({d: n for (a, d), n in counts.items() if a == asked}).most_common())
            for asked in self.values
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "path": self.path,
            "accuracy": self.accuracy,
            "chance": self.chance,
            "confusion": self.confusion(),
            "skipped": list(self.skipped),
            "unjudgeable": [list(pair) for pair in self.unjudgeable],
            "edits": [vars(e) for e in self.edits],
        }


def swap_word(instruction: str, old: str, new: str) -> str | None:
    """`instruction` with the whole word `old` replaced by `new`, or None when `old` is not in it."""
    swapped, count = _whole_word(old).subn(new, instruction)
    return swapped if count else None


def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(word)}\b")


def probe_adds(
    editor: Editor,
    benchmark: Benchmark,
    attribute: str = "shape",
    *,
    seed: int = 0,
    path: str = "both",
    progress: bool = True,
) -> ProbeResult:
    """Edit every add sample of `benchmark` once per value of `attribute` ("shape" or "colour") and record
    what each edit drew. Sample i uses editor seed `seed + i` for all its values. Benchmark samples are
    re-rendered from their seeds to check each swapped edit can be judged at all. `path` "tokens" or
    "pooled" sends the swapped instruction through that text input only, the sample's own through the other
    (needs a bundle editor)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {sorted(ATTRIBUTES)}, got {attribute!r}")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    adds = [s for s in benchmark.samples if s.kind == "add"]
    if not adds:
        raise ValueError(f"the benchmark at {benchmark.root} has no add samples to probe")
    jobs, skipped, unjudgeable = _jobs(benchmark.config, adds, attribute)
    edits: list[ProbeEdit] = []
    read: tuple[str, Video] | None = None  # a sample's jobs come in a row: read its source once
    with route_text(editor, path) as router:
        for index, sample, value, instruction in track(
            jobs, description=f"probing {attribute}", disable=not progress
        ):
            if read is None or read[0] != sample.id:
                read = (sample.id, sample.source())
            source = read[1]
            if router is not None:
                router.own = sample.instruction
            edited = editor.edit(source, instruction, seed=seed + index, sample_id=sample.id)
            drawn = _drawn(added_objects(source.frames, edited.frames), sample.edit, attribute, value)
            edits.append(ProbeEdit(sample.id, value, drawn, instruction))
    return ProbeResult(attribute, tuple(edits), tuple(skipped), tuple(unjudgeable), path)


def _jobs(
    config: BenchmarkConfig, adds: Sequence[BenchmarkSample], attribute: str
) -> tuple[list[tuple[int, BenchmarkSample, str, str]], list[str], list[tuple[str, str]]]:
    """(sample index, sample, value asked, instruction) per edit to make; the samples left out; the
    (sample, value) edits the oracle could not read in the ground truth."""
    jobs, skipped, unjudgeable = [], [], []
    for index, sample in enumerate(adds):
        own = _value(sample.edit, attribute)
        if not _whole_word(own).search(sample.instruction):  # a paraphrase without the word: nothing to swap
            skipped.append(sample.id)
            continue
        pair = make_pair("add", size=config.size, frames=config.frames, fps=config.fps, seed=sample.seed)
        for value in ATTRIBUTES[attribute]:
            edit = dataclasses.replace(sample.edit, **{_FIELDS[attribute]: value})
            truth = render(apply_edit(pair.scene, edit), config.frames, config.size).frames
            if _drawn(added_objects(pair.source, truth), edit, attribute, value) != value:
                unjudgeable.append((sample.id, value))
                continue
            jobs.append((index, sample, value, str(swap_word(sample.instruction, own, value))))
    return jobs, skipped, unjudgeable


_FIELDS = {"shape": "new_shape", "colour": "new_colour"}


def _value(edit: Edit, attribute: str) -> str:
    return str(getattr(edit, _FIELDS[attribute]))


def _drawn(found: dict[str, str], edit: Edit, attribute: str, asked: str) -> str:
    """What the edit drew: the shape of the new object in the sample's colour, or the colour of a new object
    (the one asked if it is there, else the first other in name order)."""
    if attribute == "shape":
        return found.get(str(edit.new_colour), NOTHING)
    if asked in found:
        return asked
    return min(found, default=NOTHING)


__all__ = ["ATTRIBUTES", "NOTHING", "ProbeEdit", "ProbeResult", "probe_adds", "swap_word"]
