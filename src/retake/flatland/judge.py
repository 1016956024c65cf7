"""The oracle judge: from the pixels of a source and an edited video plus the structured edit, decide whether
the edit happened and nothing else changed, with a one-line reason.

It sees only pixels (and the names in the edit), never a scene: objects are found by colour segmentation
(vision.colour_labels) and recognised by shape (vision.classify_shape). Every check compares the edited
video with the source, so a judge verdict does not depend on which scene produced them. It is built to
tolerate what a learned editor or H.264 does to pixels: mild blur, noise, small colour shifts.

Two questions per edit:
1. Did the edit happen?  remove: the target's colour is gone. add: a new blob of the new colour, of the
   new shape. recolour: the new colour sits where the target was. replace: a blob of the new look sits
   where the target was. background: the background shows the named colour and pattern. style:
   grayscale and invert match the operator applied to the source; an outline drawing has ink along
   every object boundary of the source and nowhere else.
2. Did nothing else change?  Outside the region the edit may touch (the edited objects, grown by a few
   pixels), the blurred source and edited frames must not differ in any blob larger than a fraction of
   the smallest object; no object colour may appear that the source lacks (other than the new one) or
   vanish; untouched objects keep their outline. Background edits compare colour labels and recognised
   shapes instead of pixels (object edges blend with the new background).

Known blind spots: a shape swap of another object into a similar silhouette of the same size can pass
in outline style, and in grayscale two colours of equal luma look alike (as they do to a person).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from retake.flatland import vision
from retake.flatland.edits import Edit
from retake.flatland.palette import BACKGROUND_COLOURS
from retake.flatland.style import apply_style


@dataclass(frozen=True)
class Verdict:
    success: bool
    reason: str

    def __bool__(self) -> bool:
        return self.success


@dataclass(frozen=True)
class Sensitivity:
    """How a 'nothing else changed' check compares two videos: both are blurred by `blur` (px), pixels
    differing by more than `change` grey levels (max over channels) count as changed, and a connected
    changed blob of `area` px or more is a violation."""

    blur: float
    change: float
    area: float


@dataclass(frozen=True)
class JudgeConfig:
    """Thresholds for a 64-pixel video side. Distances scale with s = min(H, W)/64 and object areas with s^2;
    violation areas scale with max(s, 1)^2. Calibrated for videos whose short side is at least 64 px.

    The defaults were calibrated on ground-truth targets after H.264 (crf 18), blur + noise and colour
    shifts (all pass) against targets with an extra, unrequested change (all caught); see tests/flatland.
    """

    objects: Sensitivity = Sensitivity(blur=1.0, change=45.0, area=14.0)  # object and background edits
    # Grayscale and inverted videos are compared with the style applied to the source's pixels.
    styles: tuple[tuple[str, Sensitivity], ...] = (
        ("grayscale", Sensitivity(blur=1.5, change=20.0, area=14.0)),
        ("invert", Sensitivity(blur=1.5, change=20.0, area=14.0)),
    )
    paper: float = 200.0  # median luma of an outline drawing
    ink: float = 165.0  # luma below this is ink (object outlines; pattern lines stay lighter)
    inked: float = 0.6  # share of each source object's boundary that the outline must ink
    stray_ink: float = 10.0  # px: an ink blob this large away from every source boundary is a violation
    ink_reach: float = 3.0  # px from a source boundary within which ink is expected
    label_area: float = 10.0  # px: a blob of changed object colours (background edits) that is a violation
    grow: int = 4  # px the allowed region extends around edited objects (blur + chroma bleeding)
    present_area: float = 10.0  # px of a colour mask, eroded by a 3x3 cross, that make an object present
    gone_share: float = 0.9  # share of frames in which a removed/replaced colour must be gone
    seen_share: float = 0.8  # share of frames in which a new/recoloured object must be seen
    overlap: float = 0.5  # IoU of the recoloured object with the original one
    shape_votes: int = 3  # frames whose shape must agree (majority of at most 2 * votes - 1 looks)
    clear_view: float = 0.6  # soft IoU of the best-fitting shape below which a view is too occluded to judge
    shape_margin: float = 0.06  # a shape change needs each view to fit its own shape better by this much
    alpha_blur: float = 1.0  # px blur of coverage maps before comparing an object's outline in both videos
    same_outline: float = 0.78  # median IoU of blurred coverage below which an untouched object changed
    background_change: float = 6.0  # CIELAB distance between old and new background means
    style_margin: float = (
        0.6  # styled edited must differ from styled source < this x its difference to source
    )
    grey_chroma: float = 12.0  # 99th-percentile CIELAB chroma of a grayscale video


def judge(
    source: np.ndarray, edited: np.ndarray, edit: Edit | dict, config: JudgeConfig | None = None
) -> Verdict:
    """Verdict on whether `edited` is `source` with `edit` applied and nothing else changed.

    source, edited: (F, H, W, 3) uint8 RGB, at least one frame. An edited video of another picture size is
    resized to the source's; a different frame count fails. edit: an Edit, or its JSON (`Edit.to_json`).
    """
    config = config or JudgeConfig()
    edit = as_edit(edit)
    source, edited = _check_videos(source, edited)
    if edited.shape[0] != source.shape[0]:
        return Verdict(False, f"edited video has {edited.shape[0]} frames, the source {source.shape[0]}")
    pair = _Pair(source, edited, config)
    if edit.kind == "style":
        return _judge_style(pair, edit)
    if edit.kind == "background":
        return _judge_background(pair, edit)
    return _judge_object(pair, edit)


def as_edit(edit: Edit | dict) -> Edit:
    """`edit` as an Edit: a dict is read as an edit's JSON (as pair records store it); anything else would
    fail later with an AttributeError about `kind`."""
    if isinstance(edit, Edit):
        return edit
    if isinstance(edit, dict):
        return Edit.from_json(edit)
    raise ValueError(f"edit must be an Edit or its JSON dict, got {type(edit).__name__} {edit!r}")


def _check_videos(source: np.ndarray, edited: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, video in (("source", source), ("edited", edited)):
        if (
            not isinstance(video, np.ndarray)
            or video.ndim != 4
            or video.shape[-1] != 3
            or video.dtype != np.uint8
        ):
            what = f"{video.shape} {video.dtype}" if isinstance(video, np.ndarray) else type(video).__name__
            raise ValueError(f"{name} must be an (F, H, W, 3) uint8 array, got {what}")
        if 0 in video.shape[:3]:  # nothing to judge; numpy would fail stacking no frames
            raise ValueError(f"{name} must have at least one frame of at least 1x1 px, got {video.shape}")
    if edited.shape[1:3] != source.shape[1:3]:
        h, w = source.shape[1:3]
        edited = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in edited])
    return source, edited


def _largest_blob_report(changed: np.ndarray, limit: float, what: str) -> str:
    """'' when no connected blob of the (F, H, W) bool mask reaches `limit` px, else where the largest is."""
    worst = (0, 0, 0.0, 0.0)
    for f, frame_mask in enumerate(changed):
        if not frame_mask.any():
            continue
        _, _, stats, centroids = cv2.connectedComponentsWithStats(frame_mask.astype(np.uint8), connectivity=8)
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[i, cv2.CC_STAT_AREA] > worst[0]:
            worst = (int(stats[i, cv2.CC_STAT_AREA]), f, *centroids[i])
    if worst[0] < limit:
        return ""
    area, f, x, y = worst
    return f"{what} changed: {area} px around ({x:.0f}, {y:.0f}) in frame {f}"


class _Pair:
    """Source and edited video with what the checks share, computed once: colour labels, colour cores,
    blurred frames."""

    def __init__(self, source: np.ndarray, edited: np.ndarray, config: JudgeConfig) -> None:
        self.source, self.edited, self.config = source, edited, config
        self.frames, height, width = source.shape[:3]
        self.scale = min(height, width) / 64.0
        self.labels = (vision.colour_labels(source), vision.colour_labels(edited))  # (F, H, W) int8 each
        self.grow = max(1, round(config.grow * self.scale))
        self.present_area = config.present_area * self.scale**2
        # Violation areas guard against pixel-scale noise (compression blocks, fringes), which does not
        # shrink with the picture: they never go below their 64-pixel values.
        self.noise_scale = max(self.scale, 1.0) ** 2

    def mask(self, which: int, colour: str) -> np.ndarray:
        """(F, H, W) bool pixels of `colour` in the source (0) or the edited video (1)."""
        return self.labels[which] == vision.colour_index(colour)

    def before(self, colour: str) -> np.ndarray:
        """(F, H, W) bool: where the source has a body of `colour` (grown by `grow`); fringes of other colours
        that blur or H.264 tint towards it do not count."""
        return vision.dilate(vision.erode_cross(self.mask(0, colour)), self.grow + 1)

    def present(self, mask: np.ndarray) -> np.ndarray:
        """(F,) bool: frames in which the mask has an object-sized core (not just an edge fringe)."""
        return vision.erode_cross(mask).sum(axis=(1, 2)) >= self.present_area

    def colours(self, which: int) -> set[str]:
        """Object colours present in at least 10% of the frames."""
        found = set()
        for name in vision.COLOUR_NAMES:
            if self.present(self.mask(which, name)).mean() >= 0.1:
                found.add(name)
        return found

    def blurred(self, video: np.ndarray, blur: float) -> np.ndarray:
        sigma = blur * self.scale
        return np.stack([cv2.GaussianBlur(f.astype(np.float32), (0, 0), sigma) for f in video])

    def unrequested_change(
        self, allowed: np.ndarray, sensitivity: Sensitivity | None = None, reference: np.ndarray | None = None
    ) -> str:
        """'' when edited matches the reference (default: source) outside `allowed` ((F, H, W) bool);
        otherwise a description of the largest changed blob."""
        sense = sensitivity or self.config.objects
        reference = self.source if reference is None else reference
        diff = np.abs(self.blurred(self.edited, sense.blur) - self.blurred(reference, sense.blur)).max(
            axis=-1
        )
        return _largest_blob_report(
            (diff > sense.change) & ~allowed, sense.area * self.noise_scale, "something else"
        )

    def vanished(self, involved: set[str]) -> str:
        """'' unless an object colour of the source (other than `involved`) is gone from most of the frames
        that showed it."""
        for colour in sorted(self.colours(0) - involved):
            shown = self.present(self.mask(0, colour))
            kept = self.present(self.mask(1, colour))[shown]
            if kept.mean() < 0.5:
                return f"the {colour} object disappeared"
        return ""

    def new_colours(self, allowed: set[str]) -> str:
        """'' unless the edited video shows an object colour the source lacks (besides `allowed`)."""
        extra = sorted(self.colours(1) - self.colours(0) - allowed)
        return f"an unrequested {extra[0]} object appeared" if extra else ""


# ---- object edits -----------------------------------------------------------------------------------------


def _judge_object(pair: _Pair, edit: Edit) -> Verdict:
    if edit.kind == "add":
        return _judge_add(pair, edit)
    target = edit.target_colour or _colour_of_shape(pair, str(edit.target_shape))
    if target is None:
        return Verdict(False, f"the source shows no {edit.target}")
    before = pair.mask(0, target)
    shown = pair.present(before)
    if not shown.any():
        return Verdict(False, f"the source shows no {edit.target}")
    if edit.kind == "remove":
        return _judge_remove(pair, edit, target, before, shown)
    if edit.kind == "recolour":
        return _judge_recolour(pair, edit, target, before, shown)
    return _judge_replace(pair, edit, target, before, shown)


def _colour_of_shape(pair: _Pair, shape: str) -> str | None:
    """The colour of the one source object of `shape` (for edits that name only a shape)."""
    matches = []
    for colour in pair.colours(0):
        look = _shape_vote(pair, 0, pair.mask(0, colour))
        if look == shape:
            matches.append(colour)
    return matches[0] if len(matches) == 1 else None


def _finish(
    pair: _Pair,
    allowed: np.ndarray,
    involved: set[str],
    new_colour: str | None,
    done: str,
    *,
    may_cover: bool = False,
) -> Verdict:
    """The 'nothing else changed' half shared by object edits: no new colours, no colour vanished (unless an
    added object may cover it), no changed pixels outside `allowed`, and every other object keeps its
    silhouette."""
    others = (pair.colours(0) & pair.colours(1)) - involved
    problem = (
        pair.new_colours({new_colour} if new_colour else set())
        or ("" if may_cover else pair.vanished(involved))
        or pair.unrequested_change(allowed)
        or _silhouette_changed(pair, others, allowed)
    )
    return Verdict(False, problem) if problem else Verdict(True, done)


def _silhouette_changed(pair: _Pair, colours: set[str], avoid: np.ndarray) -> str:
    """'' unless an object keeps its colour and place but changes its outline. Compares the blurred
    coverage (vision.Blob.alpha) of the object in both videos in frames where it is away from `avoid`
    (the edited region), so shape swaps too slim for the pixel check (a square into a circle) are caught."""
    config = pair.config
    for colour in sorted(colours):
        index = vision.colour_index(colour)
        before = pair.mask(0, colour)
        near = vision.dilate(before, pair.grow)
        both = pair.present(before) & pair.present(pair.mask(1, colour))
        overlaps: list[float] = []
        for f in _spread(np.flatnonzero(both)):
            if (near[f] & avoid[f]).any():
                continue
            views = [
                vision.find_blob(v[f], lab[f], index)
                for v, lab in zip((pair.source, pair.edited), pair.labels, strict=True)
            ]
            if views[0] is None or views[1] is None:
                continue
            a, b = (cv2.GaussianBlur(v.alpha, (0, 0), config.alpha_blur * pair.scale) for v in views)
            overlaps.append(float(np.minimum(a, b).sum() / max(float(np.maximum(a, b).sum()), 1e-6)))
            if len(overlaps) >= 2 * config.shape_votes - 1:
                break
        if overlaps and float(np.median(overlaps)) < config.same_outline:
            return f"the {colour} object changed its outline (overlap {np.median(overlaps):.2f})"
    return ""


def _gone(pair: _Pair, colour: str, shown: np.ndarray) -> float:
    """Share of the frames (where the source shows the colour) in which the edited video no longer does."""
    still = pair.present(pair.mask(1, colour))
    return float((~still[shown]).mean())


def _judge_remove(pair: _Pair, edit: Edit, target: str, before: np.ndarray, shown: np.ndarray) -> Verdict:
    gone = _gone(pair, target, shown)
    if gone < pair.config.gone_share:
        return Verdict(False, f"the {edit.target} is still there in {1 - gone:.0%} of the frames")
    allowed = vision.dilate(before, pair.grow)
    return _finish(pair, allowed, {target}, None, f"the {edit.target} was removed and nothing else changed")


def added_objects(
    source: np.ndarray, edited: np.ndarray, config: JudgeConfig | None = None
) -> dict[str, str]:
    """Each object colour with a new body in `edited` (one the source lacks there, seen in at least the
    `seen_share` of frames an add needs), mapped to the shape the judge sees in it ("nothing recognisable"
    for a shapeless blob). source, edited: (F, H, W, 3) uint8 RGB, as for `judge`."""
    config = config or JudgeConfig()
    source, edited = _check_videos(source, edited)
    if edited.shape[0] != source.shape[0]:
        raise ValueError(f"edited video has {edited.shape[0]} frames, the source {source.shape[0]}")
    pair = _Pair(source, edited, config)
    found = {}
    for colour in vision.COLOUR_NAMES:
        new = _new_body(pair, colour)
        if pair.present(new).mean() >= config.seen_share:
            found[colour] = _shape_vote(pair, 1, new)
    return found


def _new_body(pair: _Pair, colour: str) -> np.ndarray:
    """(F, H, W) bool: pixels of `colour` in the edited video where the source had no body of it."""
    return pair.mask(1, colour) & ~pair.before(colour)


def _judge_add(pair: _Pair, edit: Edit) -> Verdict:
    colour, shape = str(edit.new_colour), str(edit.new_shape)
    new = _new_body(pair, colour)
    seen = pair.present(new)
    if seen.mean() < pair.config.seen_share:
        return Verdict(False, f"no new {colour} object (seen in {seen.mean():.0%} of the frames)")
    look = _shape_vote(pair, 1, new)
    if look != shape:
        return Verdict(False, f"the new {colour} object looks like a {look}, not a {shape}")
    done = f"a {edit.new} was added and nothing else changed"
    return _finish(pair, vision.dilate(new, pair.grow), {colour}, colour, done, may_cover=True)


def _judge_recolour(pair: _Pair, edit: Edit, target: str, before: np.ndarray, shown: np.ndarray) -> Verdict:
    colour = str(edit.new_colour)
    gone = _gone(pair, target, shown)
    if gone < pair.config.gone_share:
        return Verdict(False, f"the {edit.target} still shows {target} in {1 - gone:.0%} of the frames")
    after = pair.mask(1, colour) & ~pair.before(colour)
    frames = np.flatnonzero(shown)
    hits = float(np.mean([_iou(before[f], after[f]) >= pair.config.overlap for f in frames]))
    if hits < pair.config.seen_share:
        # A low overlap has two causes: the new colour is missing at the target, or it is there and has also
        # spread to other objects (the union grows). Say which, so a failed edit is not misread.
        covered = float(np.mean([_covered(before[f], after[f]) >= pair.config.overlap for f in frames]))
        if covered >= pair.config.seen_share:
            return Verdict(
                False,
                f"the {edit.target} is now {colour}, but other parts of the picture turned {colour} too",
            )
        return Verdict(False, f"no {colour} object where the {edit.target} was ({hits:.0%} of the frames)")
    allowed = vision.dilate(before | after, pair.grow)
    return _finish(
        pair, allowed, {target, colour}, colour, f"the {edit.target} is now {colour} and nothing else changed"
    )


def _judge_replace(pair: _Pair, edit: Edit, target: str, before: np.ndarray, shown: np.ndarray) -> Verdict:
    colour, shape = edit.new_colour or target, str(edit.new_shape or edit.target_shape)
    if colour != target:
        gone = _gone(pair, target, shown)
        if gone < pair.config.gone_share:
            return Verdict(False, f"the {edit.target} is still there in {1 - gone:.0%} of the frames")
        after = pair.mask(1, colour) & ~pair.before(colour)
    else:
        after = pair.mask(1, colour)
    near = [_near(before[f], after[f], pair.present_area) for f in np.flatnonzero(shown)]
    if float(np.mean(near)) < pair.config.seen_share:
        return Verdict(
            False, f"no {colour} object where the {edit.target} was ({np.mean(near):.0%} of the frames)"
        )
    look = _shape_vote(pair, 1, after)
    if look != shape:
        return Verdict(
            False, f"the {colour} object where the {edit.target} was looks like a {look}, not a {shape}"
        )
    allowed = vision.dilate(before | after, pair.grow)
    new = colour if colour != target else None
    done = f"the {edit.target} became a {edit.new} and nothing else changed"
    return _finish(pair, allowed, {target, colour}, new, done)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _covered(a: np.ndarray, b: np.ndarray) -> float:
    """Share of `a`'s pixels that `b` also has."""
    area = np.count_nonzero(a)
    return np.count_nonzero(a & b) / area if area else 0.0


def _near(before: np.ndarray, after: np.ndarray, min_area: float) -> bool:
    """Whether `after` has an object-sized blob whose centre lies within half a radius of `before`'s."""
    if before.sum() < min_area or after.sum() < min_area:
        return False
    (by, bx), (ay, ax) = np.argwhere(before).mean(0), np.argwhere(after).mean(0)
    radius = np.sqrt(before.sum() / np.pi)
    return bool(np.hypot(bx - ax, by - ay) <= 0.5 * radius + 1.0)


def _shape_vote(pair: _Pair, which: int, mask: np.ndarray) -> str:
    """The shape most frames show for the blob in `mask`. Frames spread over the clip are looked at (skipping
    those where the border cuts the blob) until `shape_votes` of them agree or 2 * shape_votes - 1 have voted."""
    video = (pair.source, pair.edited)[which]
    frames = np.flatnonzero(pair.present(mask))
    votes: Counter[str] = Counter()
    for f in _spread(frames):
        blob = vision.find_blob(video[f], np.where(mask[f], 0, -1).astype(np.int8), 0)
        if blob is None or blob.touches_border:
            continue
        votes[vision.classify_shape(blob)[0]] += 1
        if max(votes.values()) >= pair.config.shape_votes or votes.total() >= 2 * pair.config.shape_votes - 1:
            break
    return votes.most_common(1)[0][0] if votes else "nothing recognisable"


def _spread(items: np.ndarray) -> list[int]:
    """Items reordered so that every prefix is spread over the whole sequence (middle, ends, quarters, ...)."""
    order: list[int] = []
    n, parts = len(items), 1
    while len(order) < n:
        for k in range(parts + 1):
            i = round(k * (n - 1) / parts) if parts else 0
            if i not in order:
                order.append(i)
        parts *= 2
    middle = order.pop(order.index(round((n - 1) / 2))) if n else None
    order = ([] if middle is None else [middle]) + order
    return [int(items[i]) for i in order]


# ---- background --------------------------------------------------------------------------------------------

_BACKGROUND_LAB = {
    name: vision.to_lab(np.array([[rgb]], np.uint8))[0, 0] for name, rgb in BACKGROUND_COLOURS.items()
}


def _judge_background(pair: _Pair, edit: Edit) -> Verdict:
    background = edit.background
    assert background is not None  # Edit validation guarantees it
    objects = vision.dilate((pair.labels[0] >= 0) | (pair.labels[1] >= 0), pair.grow)
    free = ~objects  # (F, H, W) pixels that are background in both videos
    if free.sum() < 0.1 * free.size:
        return Verdict(False, "objects cover too much of the frame to see the background")
    old, new = _mean_lab(pair.source, free), _mean_lab(pair.edited, free)
    if float(np.linalg.norm(old - new)) < pair.config.background_change:
        return Verdict(False, "the background did not change")
    name = min(_BACKGROUND_LAB, key=lambda n: float(np.linalg.norm(_BACKGROUND_LAB[n] - new)))
    if name != background.colour:
        return Verdict(False, f"the new background looks {name}, not {background.colour}")
    pattern = _background_pattern(pair.edited, free)
    if pattern != background.pattern:
        return Verdict(False, f"the new background shows {pattern}, not {background.pattern}")
    problem = pair.new_colours(set()) or _objects_changed(pair)
    if problem:
        return Verdict(False, problem)
    return Verdict(True, f"the background is now {background.colour} and the objects are unchanged")


def _objects_changed(pair: _Pair) -> str:
    """'' when every object keeps its colour, place and shape. Compares colour labels and recognised shapes,
    not pixel values, because the objects' anti-aliased edges blend with the new background."""
    source, edited = pair.labels
    differs = (source != edited) & ((source >= 0) | (edited >= 0))  # (F, H, W)
    thick = vision.erode_cross(differs)  # one-pixel fringes are blur and chroma bleeding, not change
    problem = _largest_blob_report(thick, pair.config.label_area * pair.noise_scale, "an object")
    return problem or _shape_changed(pair)


def _shape_changed(pair: _Pair) -> str:
    """'' unless an object of the source shows another shape in the edited video, judged in frames where
    both views are whole and clearly recognised (occluded views are skipped in both alike)."""
    votes_needed = pair.config.shape_votes
    for colour in sorted(pair.colours(0) & pair.colours(1)):
        index = vision.colour_index(colour)
        both = pair.present(pair.mask(0, colour)) & pair.present(pair.mask(1, colour))
        changes: list[tuple[str, str]] = []
        looks = 0
        for f in _spread(np.flatnonzero(both)):
            views = [
                vision.find_blob(v[f], lab[f], index)
                for v, lab in zip((pair.source, pair.edited), pair.labels, strict=True)
            ]
            view_a, view_b = views
            if view_a is None or view_b is None or view_a.touches_border or view_b.touches_border:
                continue
            (shape_a, fit_a), (shape_b, fit_b) = vision.classify_shape(view_a), vision.classify_shape(view_b)
            if min(fit_a[shape_a], fit_b[shape_b]) < pair.config.clear_view:
                continue
            looks += 1
            margin = min(fit_a[shape_a] - fit_a[shape_b], fit_b[shape_b] - fit_b[shape_a])
            if shape_a != shape_b and margin >= pair.config.shape_margin:
                changes.append((shape_a, shape_b))
            if (
                looks >= 2 * votes_needed - 1
                or len(changes) >= votes_needed
                or looks - len(changes) >= votes_needed
            ):
                break
        if looks and 2 * len(changes) > looks:
            before, after = Counter(changes).most_common(1)[0][0]
            return f"the {colour} {before} became a {after}"
    return ""


def _background_pattern(video: np.ndarray, free: np.ndarray) -> str:
    """The pattern most of (up to 5 spread) frames show where the background is free of objects."""
    votes: Counter[str] = Counter()
    for f in _spread(np.arange(len(video)))[:5]:
        if free[f].sum() >= 0.2 * free[f].size:
            votes[vision.classify_pattern(vision.pattern_features(video[f], free[f]))] += 1
    return votes.most_common(1)[0][0] if votes else "nothing visible"


def _mean_lab(video: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over frames of the mean CIELAB colour of the masked pixels (robust to a few odd frames)."""
    lab = vision.to_lab(video)
    means = [lab[f][mask[f]].mean(axis=0) for f in range(len(video)) if mask[f].any()]
    return np.median(np.stack(means), axis=0)


# ---- style -------------------------------------------------------------------------------------------------


# How a verdict says a video has a style ("the video is inverted"): the style names are verbs or nouns.
_STYLE_WORDS = {"grayscale": "grayscale", "invert": "inverted", "outline": "an outline drawing"}


def _judge_style(pair: _Pair, edit: Edit) -> Verdict:
    style = str(edit.style)
    if style == "outline":
        return _judge_outline(pair)
    sense = dict(pair.config.styles)[style]
    expected = np.clip(np.rint(apply_style(pair.source, style)), 0, 255).astype(np.uint8)
    edited = pair.blurred(pair.edited, sense.blur)
    to_expected = _distance(edited, pair.blurred(expected, sense.blur))
    to_source = _distance(edited, pair.blurred(pair.source, sense.blur))
    if to_expected >= pair.config.style_margin * to_source:
        return Verdict(
            False,
            f"the video does not look {_STYLE_WORDS[style]} (mean error {to_expected:.1f} vs {to_source:.1f})",
        )
    if style == "grayscale":
        chroma = _chroma(pair.edited)
        if chroma > pair.config.grey_chroma:
            return Verdict(False, f"colour remains (chroma {chroma:.0f})")
    problem = pair.unrequested_change(np.zeros(pair.source.shape[:3], bool), sense, reference=expected)
    if problem:
        return Verdict(False, problem)
    return Verdict(True, f"the video is {_STYLE_WORDS[style]} and nothing else changed")


def _chroma(video: np.ndarray) -> float:
    """99th percentile of the CIELAB chroma of a video's pixels."""
    lab = vision.to_lab(video)
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2]), 99))


def _judge_outline(pair: _Pair) -> Verdict:
    """An outline video is white paper with dark ink along every object boundary of the source and nowhere
    else (background patterns draw only light grey lines). Comparing ink with the boundaries of the source's
    colour segments, rather than pixels with the operator applied to the source, keeps this independent of
    the chroma detail H.264 removes from the source."""
    config = pair.config
    luma = pair.edited.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (F, H, W)
    paper = float(np.median(luma))
    chroma = _chroma(pair.edited)
    if paper < config.paper or chroma > config.grey_chroma:
        return Verdict(
            False, f"the video does not look like a line drawing (paper {paper:.0f}, chroma {chroma:.0f})"
        )
    ink = luma < config.ink
    boundaries = np.zeros_like(ink)
    for colour in sorted(pair.colours(0)):
        mask = pair.mask(0, colour)
        edge = mask & ~vision.core(mask)  # (F, H, W) the segment's boundary pixels
        inked = float((vision.dilate(ink, 1) & edge).sum() / max(edge.sum(), 1))
        if inked < config.inked:
            return Verdict(False, f"the {colour} object is not outlined ({inked:.0%} of its boundary inked)")
        boundaries |= edge
    stray = ink & ~vision.dilate(boundaries, max(1, round(config.ink_reach * pair.scale)))
    problem = _largest_blob_report(stray, config.stray_ink * pair.noise_scale, "something else")
    if problem:
        return Verdict(False, problem)
    return Verdict(True, "the video is an outline drawing of the source and nothing else changed")


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two (F, H, W, 3) videos after removing each channel's mean difference, so
    that a small global colour cast of an editor does not decide which one the edited video resembles."""
    diff = a - b
    return float(np.abs(diff - diff.mean(axis=(0, 1, 2))).mean())
