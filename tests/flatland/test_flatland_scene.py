"""Scene model, motion and structured edits: JSON round trips, validation, bouncing, events, apply_edit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retake.flatland.edits import EDIT_KINDS, Edit, apply_edit, sample_edit
from retake.flatland.generate import random_scene
from retake.flatland.motion import EXTENT, simulate
from retake.flatland.palette import SIZES
from retake.flatland.scene import Background, Camera, Event, Scene, SceneObject


def test_scene_json_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = random_scene(rng, fps=8)
        events = (Event(3, "recolour", colour="pink"), Event(5, "leave", velocity=(0.1, 0.0)))
        scene = Scene(scene.background, (*scene.objects, SceneObject(9, "star", "pink", events=events)))
        text = json.dumps(scene.to_json())
        assert Scene.from_json(json.loads(text)) == scene


def test_bad_names_raise_value_errors_naming_them() -> None:
    with pytest.raises(ValueError, match="'hexagon'"):
        SceneObject(0, "hexagon", "red")
    with pytest.raises(ValueError, match="'mauve'"):
        Background("solid", "mauve")
    with pytest.raises(ValueError, match="'sepia'"):
        Scene(style="sepia")
    with pytest.raises(ValueError, match="unique"):
        Scene(objects=(SceneObject(1, "star", "red"), SceneObject(1, "ring", "blue")))
    with pytest.raises(ValueError, match="'morph'"):
        Edit("morph")
    with pytest.raises(ValueError, match="new_colour"):
        Edit("recolour", target_colour="red")


def test_objects_bounce_inside_the_world_box() -> None:
    obj = SceneObject(0, "square", "red", "large", x=0.5, y=0.5, vx=0.07, vy=-0.05)
    reach = SIZES["large"] * EXTENT
    xs = np.array([s.objects[0].x for s in simulate(Scene(objects=(obj,)), 200)])
    ys = np.array([s.objects[0].y for s in simulate(Scene(objects=(obj,)), 200)])
    assert xs.min() >= reach - 1e-9 and xs.max() <= 1 - reach + 1e-9
    assert ys.min() >= reach - 1e-9 and ys.max() <= 1 - reach + 1e-9
    assert xs.max() - xs.min() > 0.5  # it really travelled and turned around


def test_events_enter_stop_recolour_leave() -> None:
    entering = SceneObject(0, "ring", "blue", "small", x=-0.2, y=0.5, vx=0.05, appear=4)
    events = (Event(5, "stop"), Event(7, "recolour", colour="green"))
    stopping = SceneObject(1, "star", "red", x=0.5, y=0.5, vx=0.01, events=events)
    leaving = SceneObject(
        2, "cross", "cyan", x=0.5, y=0.5, vx=0.0, events=(Event(2, "leave", velocity=(0.1, 0)),)
    )
    states = simulate(Scene(objects=(entering, stopping, leaving)), 40)
    assert [o.id for o in states[3].objects] == [1, 2] and [o.id for o in states[4].objects] == [0, 1, 2]
    track = [next(o for o in s.objects if o.id == 0).x for s in states[4:]]
    assert track[0] == pytest.approx(-0.2) and max(track) > 0.5  # it came in from outside the box
    star = [next(o for o in s.objects if o.id == 1) for s in states]
    assert star[3].x < star[4].x == star[5].x == star[20].x  # from frame 5 on it no longer moves
    assert star[6].colour == "red" and star[7].colour == "green"
    assert next(o for o in states[-1].objects if o.id == 2).x > 2.0  # no more bouncing: it left


def test_camera_moves() -> None:
    states = simulate(Scene(camera=Camera(vx=0.01, zoom=1.2, zoom_rate=-0.1)), 3)
    assert states[2].camera.x == pytest.approx(0.52)
    assert states[2].camera.zoom == pytest.approx(1.2 * 0.81)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_apply_edit_changes_only_what_it_names(kind: str) -> None:
    rng = np.random.default_rng(7)
    scene = random_scene(rng, fps=8, objects=(2, 3))
    edit = sample_edit(rng, scene, kind)
    assert Edit.from_json(json.loads(json.dumps(edit.to_json()))) == edit
    edited = apply_edit(scene, edit)
    assert edited.camera == scene.camera
    if kind not in ("background",):
        assert edited.background == scene.background
    before = {o.id: o for o in scene.objects}
    after = {o.id: o for o in edited.objects}
    if kind == "add":
        (new_id,) = after.keys() - before.keys()
        assert (after[new_id].colour, after[new_id].shape) == (edit.new_colour, edit.new_shape)
    elif kind == "remove":
        assert len(after) == len(before) - 1
    for obj_id in before.keys() & after.keys():
        a, b = before[obj_id], after[obj_id]
        assert (a.x, a.y, a.vx, a.vy, a.rotation, a.spin) == (b.x, b.y, b.vx, b.vy, b.rotation, b.spin)
        if a != b:
            assert kind in ("replace", "recolour") and a.colour == edit.target_colour


def test_apply_edit_needs_one_matching_target() -> None:
    scene = Scene(objects=(SceneObject(0, "star", "red"), SceneObject(1, "ring", "red")))
    with pytest.raises(ValueError, match="2 objects"):
        apply_edit(scene, Edit("remove", target_colour="red"))
    with pytest.raises(ValueError, match="no object"):
        apply_edit(scene, Edit("remove", target_colour="blue"))
    assert len(apply_edit(scene, Edit("remove", target_colour="red", target_shape="ring")).objects) == 1
