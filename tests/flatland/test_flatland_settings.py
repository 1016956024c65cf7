"""Flatland at settings other than the defaults: frame rates far above 24 fps keep their speeds, frame rates
far below 1 fps make valid cameras, and settings no pair can be drawn at are refused naming the options."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retake.flatland.edits import sample_edit
from retake.flatland.footage import FootageConfig, footage_scene
from retake.flatland.generate import random_camera, random_scene, rate
from retake.flatland.judge import judge
from retake.flatland.pairs import make_pair


@pytest.mark.parametrize("fps", [240.0, 1000.0, 5000.0])
def test_drifts_keep_their_speed_in_world_units_per_second_at_high_frame_rates(fps):
    speeds, pans = [], []
    for seed in range(60):
        scene = random_scene(np.random.default_rng(seed), fps=fps, camera="pan")
        speeds += [math.hypot(o.vx, o.vy) * fps for o in scene.objects]
        pans.append(math.hypot(scene.camera.vx, scene.camera.vy) * fps)
        add = sample_edit(np.random.default_rng(seed), scene, "add", fps=fps)
        speeds.append(math.hypot(*add.velocity) * fps)
    # drawn from 0.04-0.16 world units per second (objects, added ones) and 0.03-0.06 (pans)
    assert min(speeds) > 0.038 and max(speeds) < 0.165
    assert min(pans) > 0.028 and max(pans) < 0.062


def test_objects_leave_and_enter_footage_at_their_own_speed_at_high_frame_rates():
    fps, travels, drifts = 10000.0, [], []
    config = FootageConfig(event_chances=(("leave", 1.0),), enter_chance=1.0)
    for seed in range(20):
        scene = footage_scene(np.random.default_rng(seed), 20000, fps, config)
        travels += [math.hypot(*e.velocity) * fps for o in scene.objects for e in o.events if e.velocity]
        travels += [math.hypot(o.vx, o.vy) * fps for o in scene.objects if o.appear > 0]
        drifts += [math.hypot(o.vx, o.vy) * fps for o in scene.objects if o.appear == 0]
    assert min(travels) > 0.195 and max(travels) < 0.355  # config.travel_speed: 0.2-0.35
    assert min(drifts) > 0.038 and max(drifts) < 0.165
    assert len(set(travels)) == len(travels)  # drawn, not rounded onto a few steps of 0.1 per second


def test_rates_up_to_24_fps_keep_four_decimals():
    # the files of every frame rate up to 24 (the defaults: 8 and 24) are what they were
    assert rate(0.123456, 24) == 0.1235 and rate(0.123456, 8) == 0.1235 and rate(0.123456, 8, 5) == 0.12346
    assert (
        rate(0.123456, 25) == 0.12346 and rate(0.123456, 240) == 0.12346 and rate(0.123456, 241) == 0.123456
    )


@pytest.mark.parametrize("fps", [0.1, 0.05, 0.01])
def test_zoom_outs_stay_valid_at_frame_rates_far_below_one_per_second(fps):
    cameras = [random_camera(np.random.default_rng(seed), fps=fps, mode="zoom") for seed in range(40)]
    outs = [c.zoom_rate for c in cameras if c.zoom_rate < 0]
    assert outs and min(outs) >= -0.5  # the zoom at most halves per frame; -1 would be zoom 0


def test_pairs_at_a_tenth_of_a_frame_per_second_are_drawn():
    for kind in ("remove", "background"):
        pair = make_pair(kind, size=32, frames=5, fps=0.05, seed=3)
        assert pair.source.shape == (5, 32, 32, 3) and pair.fps == 0.05
        # a real pair: the edit shows in every frame and the oracle judge accepts the target, not the source
        assert pair.masks.any(axis=(1, 2)).all()
        assert judge(pair.source, pair.target, pair.edit), judge(pair.source, pair.target, pair.edit).reason
        assert not judge(pair.source, pair.source, pair.edit)


def test_settings_no_pair_can_be_drawn_at_are_refused_naming_the_options():
    with pytest.raises(ValueError, match=r"no 'add' pair .* 9 frames .* 16x16 and fps 0.01.*--fps.*--frames"):
        make_pair("add", size=16, frames=9, fps=0.01, seed=0)
