"""Bad arguments to the oracle judge and describer: a ValueError naming the argument and its value, not a
numpy, unpacking or attribute error; and style verdicts that read as English for every style."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retake.flatland.describe import describe_clips, describe_edit
from retake.flatland.edits import Edit
from retake.flatland.judge import _STYLE_WORDS, judge
from retake.flatland.pairs import make_pair
from retake.flatland.palette import STYLES
from retake.flatland.scene import Background, Camera, CameraState, Event, Scene, SceneObject
from retake.flatland.style import apply_style
from retake.flatland.truth import FootageTruth, FrameTruth, ObjectTruth

REMOVE = Edit("remove", target_colour="red")


def test_judge_names_the_dtype_of_a_video_that_is_not_uint8() -> None:
    video = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(
        ValueError, match=r"source must be an \(F, H, W, 3\) uint8 array, got \(3, 32, 32, 3\) float32"
    ):
        judge(video.astype(np.float32), video, REMOVE)
    with pytest.raises(ValueError, match=r"edited must be .* got list"):
        judge(video, [[0]], REMOVE)


def test_judge_refuses_an_empty_video() -> None:
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"source must have at least one frame.*\(0, 32, 32, 3\)"):
        judge(empty, empty, REMOVE)


def test_judge_refuses_an_edit_that_is_no_edit_and_reads_a_dict_as_its_json() -> None:
    pair = make_pair("remove", seed=3)
    for bad in (None, "remove", 3):
        with pytest.raises(
            ValueError, match=rf"edit must be an Edit or its JSON dict, got {type(bad).__name__}"
        ):
            judge(pair.source, pair.target, bad)
    assert judge(pair.source, pair.target, pair.edit.to_json()) == judge(pair.source, pair.target, pair.edit)
    with pytest.raises(ValueError, match="unknown edit fields"):
        judge(pair.source, pair.target, {"kind": "remove", "colour": "red"})


def test_style_verdicts_read_as_english() -> None:
    assert set(_STYLE_WORDS) == set(STYLES)
    source = make_pair("remove", seed=3).source
    inverted = np.clip(np.rint(apply_style(source, "invert")), 0, 255).astype(np.uint8)
    verdict = judge(source, inverted, Edit("style", style="invert"))
    assert verdict and verdict.reason == "the video is inverted and nothing else changed"
    failed = judge(source, source, Edit("style", style="invert"))
    assert not failed and failed.reason.startswith("the video does not look inverted")


def _truth(frames: int = 10) -> FootageTruth:
    star = ObjectTruth(0, "star", "red", "medium", 0.5, 0.5, 0.0, True, 100.0)
    camera = CameraState(0.5, 0.5, 1.0)
    return FootageTruth(
        fps=10,
        num_frames=frames,
        size=(64, 64),
        cuts=[],
        frames=[FrameTruth(0, camera, (star,)) for _ in range(frames)],
    )


@pytest.mark.parametrize(
    ("a", "match"),
    [
        ((0.5, 4), r"clip a start must be an integer, got 0\.5"),
        ((0, 4.0), r"clip a end must be an integer, got 4\.0"),
        ((0, 2, 4), r"clip a must be a \(start, end\) pair of frame indices, got \(0, 2, 4\)"),
        (3, r"clip a must be a \(start, end\) pair"),
        ((4, 2), r"clip a=\(4, 2\) is not a frame range inside 0\.\.10"),
    ],
)
def test_describe_clips_names_a_bad_frame_range(a, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        describe_clips(_truth(), a, (5, 10))


def test_describe_clips_takes_numpy_indices_and_names_a_bad_seed() -> None:
    assert describe_clips(_truth(), (np.int64(0), np.int64(5)), [5, 10]) is None  # nothing changed
    assert describe_clips(_truth(), (0, 5), (5, 10), seed=2**40) is None  # pair seeds are 63-bit
    for seed in (-1, 0.5):
        with pytest.raises(ValueError, match="seed must be"):
            describe_clips(_truth(), (0, 5), (5, 10), seed=seed)


def test_describe_edit_names_a_bad_edit_or_seed() -> None:
    with pytest.raises(ValueError, match="edit must be an Edit, got NoneType None"):
        describe_edit(None)
    with pytest.raises(ValueError, match=r"seed must be >= 0, got -1"):
        describe_edit(REMOVE, -1)
    with pytest.raises(ValueError, match=r"seed must be an integer, got 1\.5"):
        describe_edit(REMOVE, 1.5)
    assert describe_edit(REMOVE, np.random.default_rng(0))  # a Generator is still fine


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Camera(zoom=float("nan")), "zoom must be finite, got nan"),
        (lambda: Background(period=float("nan")), "period must be finite"),
        (lambda: Background(seed=-1), r"background seed must be in 0\.\.4294967295, got -1"),
        (lambda: Event(frame=-1, kind="stop"), "event frame must be >= 0, got -1"),
        (lambda: Event(frame=3, kind="leave"), "a 'leave' event needs the exit velocity"),
        (lambda: SceneObject(0, "circle", "red", x=float("nan")), "x must be finite, got nan"),
        (lambda: SceneObject(0, "circle", "red", x=float("inf")), "x must be finite, got inf"),
        (lambda: SceneObject(0, "circle", "red", appear=-2), "object appear must be >= 0, got -2"),
    ],
)
def test_scene_parts_name_values_that_would_fail_or_draw_garbage_later(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_scene_json_names_a_misspelt_key_and_numpy_numbers_become_python_ones():
    scene = Scene(objects=(SceneObject(np.int64(0), "circle", "red", x=np.float32(0.25)),))
    assert type(scene.objects[0].id) is int and type(scene.objects[0].x) is float
    assert Scene.from_json(json.loads(json.dumps(scene.to_json()))) == scene
    data = scene.to_json()
    data["objects"][0]["color"] = data["objects"][0].pop("colour")
    with pytest.raises(ValueError, match=r"unknown object keys \['color'\]"):
        Scene.from_json(data)
