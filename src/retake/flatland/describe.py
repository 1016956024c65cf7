"""The oracle describer: writes the instruction a VLM would write, from ground truth, in varied phrasing.

`describe_edit` phrases a structured Edit; `describe_clips` compares the ground truth of two clips of one
footage scene (objects that appear, vanish, change colour, stop or move; camera zoom and pan) and phrases
what turns clip A into clip B. Every kind of change has at least three phrasings; the choice is seeded.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from retake.checks import check_int
from retake.flatland.edits import Edit
from retake.flatland.scene import Background
from retake.flatland.truth import FootageTruth

EDIT_PHRASES: dict[str, tuple[str, ...]] = {
    "add": (
        "add a {new}",
        "put a {new} into the scene",
        "insert a {size}{new}",
        "place a {size}{new} in the video",
        "make a {new} appear",
    ),
    "remove": (
        "remove the {target}",
        "delete the {target}",
        "take out the {target}",
        "get rid of the {target}",
        "erase the {target} from the video",
    ),
    "replace": (
        "replace the {target} with a {new}",
        "swap the {target} for a {new}",
        "turn the {target} into a {new}",
        "change the {target} into a {new}",
    ),
    "recolour": (
        "make the {target} {colour}",
        "change the colour of the {target} to {colour}",
        "recolour the {target} {colour}",
        "paint the {target} {colour}",
        "turn the {target} {colour}",
    ),
    "background": (
        "change the background to {background}",
        "replace the background with {background}",
        "make the background {background}",
        "put everything on {background}",
    ),
}

STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "grayscale": (
        "convert the video to grayscale",
        "make it black and white",
        "remove all colour from the video",
        "turn the video gray",
    ),
    "invert": (
        "invert the colours",
        "make it look like a photo negative",
        "invert every colour in the video",
        "show the video in negative",
    ),
    "outline": (
        "turn it into a line drawing",
        "show only the outlines",
        "make it look like a pencil sketch",
        "draw just the edges of everything",
    ),
}

_BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("plain {c}", "a plain {c} colour", "solid {c}"),
    "gradient": ("a {c} gradient", "a smooth {c} gradient", "a {c} colour fade"),
    "stripes": ("{c} stripes", "a striped {c} pattern", "{c} stripes"),
    "checker": ("a {c} checkerboard", "a {c} checker pattern", "{c} checks"),
    "noise": ("a mottled {c} texture", "a noisy {c} texture", "a blotchy {c} pattern"),
}


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    # Any int >= 0 (pair seeds are 63-bit, so not check_seed's 32-bit range); numpy's own error for a
    # negative one does not name `seed`.
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def _choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def background_words(background: Background, rng: np.random.Generator) -> str:
    return _choose(rng, _BACKGROUND_WORDS[background.pattern]).format(c=background.colour)


def edit_phrasings(edit: Edit) -> tuple[str, ...]:
    """The templates `describe_edit` picks from for this edit (placeholders unfilled)."""
    return STYLE_PHRASES[str(edit.style)] if edit.kind == "style" else EDIT_PHRASES[edit.kind]


def describe_edit(edit: Edit, seed: int | np.random.Generator = 0) -> str:
    """An instruction for `edit`, one of several phrasings chosen by `seed` (an int or a Generator)."""
    if not isinstance(edit, Edit):  # else an AttributeError about `kind`, far from the cause
        raise ValueError(f"edit must be an Edit, got {type(edit).__name__} {edit!r}")
    rng = _rng(seed)
    template = _choose(rng, edit_phrasings(edit))
    fill = {
        "target": edit.target,
        "new": edit.new,
        "colour": edit.new_colour,
        "size": f"{edit.new_size} " if edit.new_size else "",
        "background": background_words(edit.background, rng) if edit.background else "",
    }
    return with_articles(template.format(**fill))


def with_articles(text: str) -> str:
    """Templates say "a {colour} ..."; English wants "an" before a vowel sound ("an orange ring")."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n", text)


_ARTICLE = re.compile(r"\b([Aa])(?= [aeiou])")


# ---- two clips of one footage scene ---------------------------------------------------------------------

CLIP_PHRASES: dict[str, tuple[str, ...]] = {
    "add": ("add a {look}", "put a {look} into the scene", "make a {look} appear", "bring in a {look}"),
    "remove": ("remove the {look}", "delete the {look}", "take out the {look}", "get rid of the {look}"),
    "recolour": (
        "make the {look} {colour}",
        "change the colour of the {look} to {colour}",
        "recolour the {look} {colour}",
        "turn the {look} {colour}",
    ),
    "stop": (
        "make the {look} stop moving",
        "stop the {look}",
        "freeze the {look} in place",
        "hold the {look} still",
    ),
    "start": (
        "make the {look} move",
        "set the {look} in motion",
        "get the {look} moving",
        "let the {look} drift",
    ),
    "move": (
        "move the {look} {where}",
        "shift the {look} {where}",
        "slide the {look} {where}",
        "push the {look} {where}",
    ),
    "zoom_in": ("zoom in", "move the camera closer", "push in on the scene", "zoom in a little"),
    "zoom_out": ("zoom out", "pull the camera back", "widen the view", "zoom out a little"),
    "pan": (
        "pan {direction}",
        "move the camera {direction}",
        "turn the camera {direction}",
        "swing the view {direction}",
    ),
}
_WHERE = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}


@dataclass(frozen=True)
class ClipDescriberConfig:
    present: float = 0.5  # share of a clip's frames an object must be visible in to count as there
    move: float = 0.25  # screen fractions an object's mean position must shift to be "moved"
    still: float = 0.0005  # world units per frame below which an object counts as standing still
    zoom: float = 1.15  # ratio of mean zooms that reads as a zoom in (or its inverse as a zoom out)
    pan: float = 0.08  # world units the mean camera centre must move to read as a pan
    max_clauses: int = 3


@dataclass(frozen=True)
class _Seen:
    """One object over one clip."""

    look: str  # colour + shape it shows most
    colour: str
    x: float  # mean screen position (0..1)
    y: float
    speed: float  # mean world displacement per frame


def describe_clips(
    truth: FootageTruth,
    a: tuple[int, int],
    b: tuple[int, int],
    *,
    seed: int | np.random.Generator = 0,
    config: ClipDescriberConfig | None = None,
) -> str | None:
    """The instruction that turns clip A (frames [a0, a1)) into clip B of the same footage scene: objects
    that appear, vanish, change colour, stop, start or move, and how the camera zooms and pans.

    Returns None when the clips lie in different scenes (or span a cut) or nothing describable differs.
    """
    config = config or ClipDescriberConfig()
    a, b = _clip_range("a", a, truth.num_frames), _clip_range("b", b, truth.num_frames)
    rng = _rng(seed)  # checked even when the answer is None
    scenes = {truth.scene_of(f) for f in (a[0], a[1] - 1, b[0], b[1] - 1)}
    if len(scenes) != 1:
        return None
    first, second = _summary(truth, a, config), _summary(truth, b, config)
    changes = _object_changes(first, second) + _camera_changes(truth, a, b, config)
    changes += _motion_changes(first, second, config)
    if not changes:
        return None
    clauses = [
        _choose(rng, CLIP_PHRASES[kind]).format(**fill) for kind, fill in changes[: config.max_clauses]
    ]
    sentence = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return with_articles(sentence)


def _clip_range(name: str, clip: tuple[int, int], frames: int) -> tuple[int, int]:
    """`clip` as a (start, end) pair of ints with 0 <= start < end <= `frames`; a float index would fail as a
    TypeError inside range(), a longer tuple as an unpacking error."""
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise ValueError(f"clip {name} must be a (start, end) pair of frame indices, got {clip!r}")
    start, end = (check_int(f"clip {name} {part}", v) for part, v in zip(("start", "end"), clip, strict=True))
    if not 0 <= start < end <= frames:
        raise ValueError(f"clip {name}={(start, end)} is not a frame range inside 0..{frames}")
    return start, end


def _summary(truth: FootageTruth, clip: tuple[int, int], config: ClipDescriberConfig) -> dict[int, _Seen]:
    """Objects visible in at least `config.present` of the clip's frames, by id."""
    seen: dict[int, list] = {}
    for f in range(*clip):
        frame = truth.frames[f]
        for obj in frame.objects:
            if obj.visible:
                seen.setdefault(obj.id, []).append((obj, frame.camera))
    length = clip[1] - clip[0]
    summary = {}
    for obj_id, views in seen.items():
        if len(views) < config.present * length:
            continue
        colour = Counter(o.colour for o, _ in views).most_common(1)[0][0]
        screen = np.array([o.screen_xy(cam) for o, cam in views])  # (n, 2)
        world = np.array([(o.x, o.y) for o, _ in views])
        speed = float(np.linalg.norm(np.diff(world, axis=0), axis=1).mean()) if len(views) > 1 else 0.0
        look = f"{colour} {views[0][0].shape}"
        summary[obj_id] = _Seen(look, colour, float(screen[:, 0].mean()), float(screen[:, 1].mean()), speed)
    return summary


def _object_changes(first: dict[int, _Seen], second: dict[int, _Seen]) -> list[tuple[str, dict]]:
    changes: list[tuple[str, dict]] = []
    for obj_id in sorted(second.keys() - first.keys()):
        changes.append(("add", {"look": second[obj_id].look}))
    for obj_id in sorted(first.keys() - second.keys()):
        changes.append(("remove", {"look": first[obj_id].look}))
    for obj_id in sorted(first.keys() & second.keys()):
        if first[obj_id].colour != second[obj_id].colour:
            changes.append(("recolour", {"look": first[obj_id].look, "colour": second[obj_id].colour}))
    return changes


def _motion_changes(
    first: dict[int, _Seen], second: dict[int, _Seen], config: ClipDescriberConfig
) -> list[tuple[str, dict]]:
    changes: list[tuple[str, dict]] = []
    for obj_id in sorted(first.keys() & second.keys()):
        a, b = first[obj_id], second[obj_id]
        if a.colour != b.colour:
            continue  # already described as a recolour
        if a.speed > config.still and b.speed <= config.still:
            changes.append(("stop", {"look": a.look}))
        elif a.speed <= config.still and b.speed > config.still:
            changes.append(("start", {"look": a.look}))
        where = _direction(b.x - a.x, b.y - a.y, config.move)
        if where:
            changes.append(("move", {"look": a.look, "where": _WHERE[where]}))
    return changes


def _camera_changes(
    truth: FootageTruth, a: tuple[int, int], b: tuple[int, int], config: ClipDescriberConfig
) -> list[tuple[str, dict]]:
    cams = [
        np.array([(c.x, c.y, c.zoom) for c in (truth.frames[f].camera for f in range(*clip))]).mean(0)
        for clip in (a, b)
    ]
    changes: list[tuple[str, dict]] = []
    ratio = cams[1][2] / cams[0][2]
    if ratio >= config.zoom:
        changes.append(("zoom_in", {}))
    elif ratio <= 1 / config.zoom:
        changes.append(("zoom_out", {}))
    direction = _direction(cams[1][0] - cams[0][0], cams[1][1] - cams[0][1], config.pan)
    if direction:
        changes.append(("pan", {"direction": direction}))
    return changes


def _direction(dx: float, dy: float, threshold: float) -> str:
    """'left'/'right'/'up'/'down' along the dominant axis when it moved at least `threshold`, else ''."""
    if max(abs(dx), abs(dy)) < threshold:
        return ""
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
