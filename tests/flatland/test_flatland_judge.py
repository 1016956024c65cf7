"""The oracle judge: passes ground-truth targets (also after H.264, blur, noise and colour shifts), fails
unedited sources, and rejects targets with an unrequested change or the wrong colour, shape or style."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from retake import video
from retake.flatland.edits import EDIT_KINDS, Edit, apply_edit
from retake.flatland.judge import Verdict, judge
from retake.flatland.pairs import make_pair
from retake.flatland.render import render
from retake.flatland.scene import Background, Camera, Scene, SceneObject


def h264(frames: np.ndarray, folder: Path, name: str = "clip") -> np.ndarray:
    """The frames after an mp4 encode/decode round trip (what evaluation reads back)."""
    return video.read(video.write(video.Video(frames, fps=8), folder / f"{name}.mp4")).frames


def blur_noise(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 0.7) for f in frames]).astype(np.float32)
    noisy = blurred + np.random.default_rng(seed).normal(0, 3, frames.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def colour_cast(frames: np.ndarray) -> np.ndarray:
    return np.clip(frames.astype(np.int16) + np.array([6, -4, 5], np.int16), 0, 255).astype(np.uint8)


def accuracy(
    kinds, per_kind: int, folder: Path, seed0: int
) -> tuple[list[Verdict], list[Verdict], list[Verdict]]:
    """(verdicts on targets, on raw sources, on H.264 sources); source and target both went through H.264."""
    on_targets, on_sources, on_decoded_sources = [], [], []
    for kind in kinds:
        for i in range(per_kind):
            pair = make_pair(kind, seed=seed0 + i)
            source, target = h264(pair.source, folder, "s"), h264(pair.target, folder, "t")
            on_targets.append(judge(source, target, pair.edit))
            on_sources.append(judge(pair.source, pair.source, pair.edit))
            on_decoded_sources.append(judge(pair.source, source, pair.edit))
    return on_targets, on_sources, on_decoded_sources


def test_ground_truth_targets_pass_and_sources_fail(tmp_path: Path) -> None:
    targets, sources, decoded = accuracy(EDIT_KINDS, 3, tmp_path, seed0=100)
    assert all(targets), [v.reason for v in targets if not v]
    assert not any(sources) and not any(decoded)
    assert all(v.reason for v in targets + sources)  # every verdict says why


@pytest.mark.slow
def test_accuracy_on_300_targets(tmp_path: Path) -> None:
    targets, sources, decoded = accuracy(EDIT_KINDS, 50, tmp_path, seed0=10_000)
    assert len(targets) == 300
    assert np.mean([v.success for v in targets]) >= 0.99, [v.reason for v in targets if not v]
    assert np.mean([v.success for v in sources + decoded]) <= 0.01


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_tolerates_blur_noise_and_colour_cast(kind: str) -> None:
    pair = make_pair(kind, seed=7)
    assert judge(pair.source, blur_noise(pair.target), pair.edit)
    assert judge(pair.source, colour_cast(pair.target), pair.edit)


# ---- hand-made scenes: an edit plus something that was not asked for -------------------------------------

SCENE = Scene(
    Background("stripes", "sage", angle=0.5),
    (
        SceneObject(0, "square", "blue", "medium", x=0.25, y=0.3, vx=0.01, vy=0.005),
        SceneObject(1, "star", "red", "medium", x=0.7, y=0.3, vx=-0.01, spin=0.05),
        SceneObject(2, "circle", "yellow", "medium", x=0.5, y=0.72, vy=-0.006),
    ),
    Camera(zoom_rate=0.005),
)


def frames_of(scene: Scene) -> np.ndarray:
    return render(scene, 12, 64).frames


def also(scene: Scene, obj_id: int, **change) -> Scene:
    """The scene with one more, unrequested change to object `obj_id` (or its removal with remove=True)."""
    if change.pop("remove", False):
        return scene.with_objects(o for o in scene.objects if o.id != obj_id)
    return scene.with_objects(replace(o, **change) if o.id == obj_id else o for o in scene.objects)


EDITS = {
    "add": Edit("add", new_shape="ring", new_colour="pink", new_size="medium", position=(0.3, 0.7)),
    "remove": Edit("remove", target_colour="red", target_shape="star"),
    "replace": Edit(
        "replace", target_colour="red", target_shape="star", new_shape="cross", new_colour="purple"
    ),
    "recolour": Edit("recolour", target_colour="red", target_shape="star", new_colour="green"),
    "background": Edit("background", background=Background("checker", "lavender")),
    "style": Edit("style", style="grayscale"),
}

UNREQUESTED = {
    "recoloured": {"colour": "cyan"},
    "removed": {"remove": True},
    "moved": {"x": 0.45},
    "reshaped": {"shape": "star"},
}


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_hand_made_edit_passes(kind: str) -> None:
    edit = EDITS[kind]
    verdict = judge(frames_of(SCENE), frames_of(apply_edit(SCENE, edit)), edit)
    assert verdict, verdict.reason


@pytest.mark.parametrize("kind", EDIT_KINDS)
@pytest.mark.parametrize("change", list(UNREQUESTED))
def test_rejects_an_unrequested_change_of_another_object(kind: str, change: str) -> None:
    edit = EDITS[kind]
    spoiled = also(apply_edit(SCENE, edit), 0, **UNREQUESTED[change])  # the blue square changes too
    verdict = judge(frames_of(SCENE), frames_of(spoiled), edit)
    assert not verdict, f"missed: {kind} + blue square {change}"


def test_a_recolour_that_spreads_to_another_object_says_so() -> None:
    edit = EDITS["recolour"]
    spread = also(apply_edit(SCENE, edit), 0, colour="green")  # the blue square turns green as well
    verdict = judge(frames_of(SCENE), frames_of(spread), edit)
    assert (
        not verdict
        and verdict.reason == "the red star is now green, but other parts of the picture turned green too"
    )
    missing = judge(frames_of(SCENE), frames_of(also(SCENE, 1, colour="cyan")), edit)  # the star goes cyan
    assert not missing and "green" in missing.reason and "too" not in missing.reason


def test_rejects_wrong_colour_shape_background_and_style() -> None:
    source = frames_of(SCENE)
    wrong = {
        "add": Edit("add", new_shape="ring", new_colour="orange", position=(0.3, 0.7)),  # orange, not pink
        "add shape": Edit("add", new_shape="triangle", new_colour="pink", position=(0.3, 0.7)),
        "recolour": Edit("recolour", target_colour="red", target_shape="star", new_colour="purple"),
        "replace": Edit(
            "replace", target_colour="red", target_shape="star", new_shape="square", new_colour="purple"
        ),
        "background": Edit("background", background=Background("checker", "cream")),
        "background pattern": Edit("background", background=Background("stripes", "lavender")),
        "style": Edit("style", style="invert"),
    }
    for name, shown in wrong.items():
        asked = EDITS[name.split()[0]]
        verdict = judge(source, frames_of(apply_edit(SCENE, shown)), asked)
        assert not verdict, f"accepted a wrong {name}: {verdict.reason}"
    for style in ("invert", "outline"):
        edit = Edit("style", style=style)
        assert judge(source, frames_of(apply_edit(SCENE, edit)), edit)
        assert not judge(source, frames_of(apply_edit(SCENE, Edit("style", style="grayscale"))), edit)


def test_input_checks() -> None:
    source = frames_of(SCENE)
    short = judge(source, source[:5], EDITS["remove"])
    assert not short and short.reason == "edited video has 5 frames, the source 12"

    def bigger(frames: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_LINEAR) for f in frames])

    # resized to the source's size, then judged: the edit passes at twice the size, the unedited clip fails
    target = frames_of(apply_edit(SCENE, EDITS["remove"]))
    assert judge(source, bigger(target), EDITS["remove"]), judge(
        source, bigger(target), EDITS["remove"]
    ).reason
    assert not judge(source, bigger(source), EDITS["remove"])
    with pytest.raises(ValueError, match=r"source must be an \(F, H, W, 3\) uint8 array"):
        judge(source.astype(np.float32), source, EDITS["remove"])
    with pytest.raises(ValueError, match=r"edited must be an \(F, H, W, 3\) uint8 array, got \(12, 64, 64\)"):
        judge(source, source[..., 0], EDITS["remove"])
