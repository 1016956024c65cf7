"""The oracle describer: >= 3 phrasings per kind, seeded choice, and clip-pair instructions from ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from retake.flatland.describe import CLIP_PHRASES, EDIT_PHRASES, STYLE_PHRASES, describe_clips, describe_edit
from retake.flatland.edits import EDIT_KINDS, sample_edit
from retake.flatland.generate import random_scene
from retake.flatland.palette import STYLES
from retake.flatland.scene import CameraState
from retake.flatland.truth import FootageTruth, FrameTruth, ObjectTruth


def test_at_least_three_phrasings_per_kind() -> None:
    for table in (EDIT_PHRASES, STYLE_PHRASES, CLIP_PHRASES):
        for kind, phrases in table.items():
            assert len(set(phrases)) >= 3, kind
    assert set(EDIT_PHRASES) | {"style"} == set(EDIT_KINDS) and set(STYLE_PHRASES) == set(STYLES)
    assert {"add", "remove", "recolour", "zoom_in", "zoom_out", "pan", "move", "stop"} <= CLIP_PHRASES.keys()


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_describe_edit_names_the_edit_and_varies_with_the_seed(kind: str) -> None:
    rng = np.random.default_rng(1)
    scene = random_scene(rng, fps=8, objects=(2, 3))
    edit = sample_edit(rng, scene, kind)
    texts = {describe_edit(edit, seed) for seed in range(40)}
    assert len(texts) >= 3
    assert describe_edit(edit, 5) == describe_edit(edit, 5)
    for text in texts:
        assert "{" not in text
        if kind in ("remove", "replace", "recolour"):
            assert edit.target in text
        if kind in ("add", "recolour", "replace") and edit.new_colour:
            assert edit.new_colour in text
        if kind == "background":
            assert edit.background is not None and edit.background.colour in text


def _truth(objects_per_frame, cameras, cuts=()) -> FootageTruth:
    frames = [
        FrameTruth(sum(f >= c for c in cuts), cam, tuple(objs))
        for f, (objs, cam) in enumerate(zip(objects_per_frame, cameras, strict=True))
    ]
    return FootageTruth(fps=10, num_frames=len(frames), size=(64, 64), cuts=list(cuts), frames=frames)


def _obj(obj_id, colour, x=0.5, y=0.5, visible=True, shape="star") -> ObjectTruth:
    return ObjectTruth(obj_id, shape, colour, "medium", x, y, 0.0, visible, 100.0 if visible else 0.0)


STILL = CameraState(0.5, 0.5, 1.0)


def test_describe_clips_objects() -> None:
    # frames 0-9: red star + blue ring; frames 10-19: the ring turned green and a yellow star arrived;
    # frames 20-29: the red star is gone.
    frames = []
    for f in range(30):
        objs = [_obj(1, "blue" if f < 10 else "green", 0.3, shape="ring")]
        if f < 20:
            objs.append(_obj(0, "red", 0.7))
        if f >= 10:
            objs.append(_obj(2, "yellow", 0.2, 0.2))
        frames.append(objs)
    truth = _truth(frames, [STILL] * 30)
    first = describe_clips(truth, (0, 10), (10, 20), seed=0)
    assert first is not None and "yellow star" in first and "blue ring" in first and "green" in first
    second = describe_clips(truth, (10, 20), (20, 30), seed=0)
    assert second is not None and "red star" in second and "yellow" not in second
    assert describe_clips(truth, (0, 5), (5, 10), seed=0) is None  # nothing changed
    texts = {describe_clips(truth, (0, 10), (10, 20), seed=s) for s in range(30)}
    assert len(texts) >= 3


def test_describe_clips_camera_and_motion() -> None:
    zoom = [CameraState(0.5, 0.5, 1.0 + 0.03 * f) for f in range(20)]
    truth = _truth([[_obj(0, "red")]] * 20, zoom)
    assert describe_clips(truth, (0, 5), (15, 20), seed=0) in CLIP_PHRASES["zoom_in"]
    assert describe_clips(truth, (15, 20), (0, 5), seed=0) in CLIP_PHRASES["zoom_out"]
    pan = [CameraState(0.5 + 0.02 * f, 0.5, 1.0) for f in range(20)]
    text = describe_clips(_truth([[_obj(0, "red")]] * 20, pan), (15, 20), (0, 5), seed=0)
    assert text is not None and "left" in text  # the camera moved back to the left
    walking = [[_obj(0, "red", 0.1 + 0.04 * f)] for f in range(20)]
    text = describe_clips(_truth(walking, [STILL] * 20), (0, 5), (15, 20), seed=0)
    assert text is not None and "red star" in text and "right" in text


def test_describe_clips_refuses_clips_across_a_cut() -> None:
    truth = _truth([[_obj(0, "red")]] * 20, [STILL] * 20, cuts=(10,))
    assert describe_clips(truth, (0, 5), (12, 17)) is None
    assert describe_clips(truth, (5, 15), (0, 4)) is None
    with pytest.raises(ValueError, match="clip b"):
        describe_clips(truth, (0, 5), (15, 25))


def test_articles_follow_the_sound_of_the_next_word():
    from retake.flatland.describe import with_articles

    assert with_articles("add a orange ring and a red star") == "add an orange ring and a red star"
    assert with_articles("A orange square") == "An orange square"
    assert with_articles("paint the ring orange") == "paint the ring orange"
