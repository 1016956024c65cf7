"""Sampler defaults (EditConfig and its presets) and fitting requests to the model's grid."""

from __future__ import annotations

import pytest

from retake.flow import ICVE_NEGATIVE_PROMPT, NoGuidance, TextCFG, TextVideoGuidance
from retake.sample.config import EditConfig, get_defaults
from retake.sample.grid import ModelGrid, parse_size

HUNYUAN = ModelGrid(spatial=16, temporal=4)


def test_icve_preset_is_the_reference_setting():
    c = EditConfig.icve()
    assert (c.steps, c.shift, c.text_scale, c.embedded_guidance) == (50, 7.0, 6.0, 1.0)
    assert (c.frames, c.height, c.width) == (61, 480, 768)
    assert c.guidance() == TextCFG(6.0, ICVE_NEGATIVE_PROMPT)
    assert HUNYUAN.fit_size(c.size) == c.size and HUNYUAN.round_frames(c.frames) == 61


def test_insvie_preset_uses_three_way_guidance():
    c = EditConfig.insvie()
    assert (c.steps, c.frames, c.height, c.width) == (50, 49, 480, 720)
    assert c.guidance() == TextVideoGuidance(7.5, 1.2, "")
    assert HUNYUAN.fit_size(c.size) == c.size and HUNYUAN.round_frames(c.frames) == 49


def test_flatland_default_and_registry():
    assert get_defaults("flatland") == EditConfig() == EditConfig.flatland()
    assert get_defaults("icve") == EditConfig.icve()
    with pytest.raises(ValueError, match="'sdxl'"):
        get_defaults("sdxl")


def test_cfg_of_one_needs_a_single_branch():
    # CFG at scale 1 equals the conditional prediction, so the negative branch is skipped.
    assert EditConfig(text_scale=1.0).guidance() == NoGuidance()
    assert EditConfig(text_scale=1.0, video_scale=1.5).guidance().branches == ("full", "no_text", "none")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("steps", 0, "steps must be >= 1, got 0"),
        ("text_scale", -1.0, "got -1.0"),
        ("video_scale", -0.5, "got -0.5"),
        ("shift", 0.0, "shift.*got 0.0"),
        ("frames", 0, "frames must be >= 1, got 0"),
        ("height", 0, "0x64"),
        ("text_scale", float("nan"), "got nan"),
        # wrong types that used to pass (2.5 steps, 5.5 frames) or fail as a TypeError in a comparison
        ("steps", 2.5, r"steps must be an integer, got 2\.5"),
        ("frames", 5.5, r"frames must be an integer, got 5\.5"),
        ("width", 32.0, r"width must be an integer, got 32\.0"),
        ("text_scale", "3", "cfg \\(text_scale\\) must be a number, got '3'"),
        ("negative_prompt", None, "negative_prompt must be a str, got NoneType"),
    ],
)
def test_impossible_settings_name_the_value(field, value, match):
    with pytest.raises(ValueError, match=match):
        EditConfig(**{field: value})


def test_dict_round_trip_and_overrides():
    c = EditConfig.insvie()
    assert EditConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="'cfg'"):
        EditConfig.from_dict({**c.to_dict(), "cfg": 3})
    assert c.with_overrides(steps=4, text_scale=None) == EditConfig(**{**c.to_dict(), "steps": 4})


def test_frames_round_down_to_4k_plus_1_and_never_past_the_source():
    assert [HUNYUAN.round_frames(n) for n in (1, 4, 5, 8, 9, 61, 64)] == [1, 1, 5, 5, 9, 61, 61]
    assert HUNYUAN.fit_frames(None, default=61, available=16) == 13  # default capped to the source
    assert HUNYUAN.fit_frames(None, default=61, available=100) == 61
    assert HUNYUAN.fit_frames(8, default=61, available=16) == 5
    with pytest.raises(ValueError, match="frames=17 is more than the source's 16"):
        HUNYUAN.fit_frames(17, default=61, available=16)
    with pytest.raises(ValueError, match="frames must be >= 1, got 0"):
        HUNYUAN.fit_frames(0, default=61, available=16)
    with pytest.raises(ValueError, match="source has 0 frames"):
        HUNYUAN.fit_frames(None, default=61, available=0)


def test_temporal_patches_need_whole_latent_frame_groups():
    grid = ModelGrid(spatial=16, temporal=4, latent_frames_multiple=2)
    assert grid.min_frames == 5
    assert [grid.round_frames(n) for n in (5, 9, 12, 13)] == [5, 5, 5, 13]
    with pytest.raises(ValueError, match="frames=3 is below this model's minimum of 5"):
        grid.fit_frames(3, default=61, available=16)
    with pytest.raises(ValueError, match="source has 4 frames"):
        grid.fit_frames(None, default=61, available=4)


def test_size_rounds_down_to_the_grid():
    assert HUNYUAN.fit_size((480, 768)) == (480, 768)
    assert HUNYUAN.fit_size((500, 850)) == (496, 848)
    with pytest.raises(ValueError, match="size 8x64 is smaller than this model's grid of 16"):
        HUNYUAN.fit_size((8, 64))
    with pytest.raises(ValueError, match="0x64"):
        HUNYUAN.fit_size((0, 64))


def test_size_is_a_pair_of_ints_or_one_int_for_a_square():
    assert HUNYUAN.fit_size(50) == (48, 48)  # as `--size 50` (parse_size) means 50x50
    for bad, message in [
        ((32, 32, 3), r"size must be \(height, width\) or one int for a square, got \(32, 32, 3\)"),
        ("32", "size must be"),
        ((32.0, 32.0), r"size height must be an integer, got 32\.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            HUNYUAN.fit_size(bad)
    with pytest.raises(ValueError, match=r"frames must be an integer, got 5\.5"):
        HUNYUAN.fit_frames(5.5, default=61, available=16)


def test_parse_size():
    assert parse_size("480x768") == (480, 768)
    assert parse_size(" 32 X 48 ") == (32, 48)
    assert parse_size("64") == (64, 64)  # square, as `retake flatland ... --size 64`
    with pytest.raises(ValueError, match="'480x'"):
        parse_size("480x")


def test_fit_shape_keeps_the_default_area_at_the_source_shape():
    assert HUNYUAN.fit_shape((480, 768), (832, 480)) == (800, 464)  # a portrait phone clip stays portrait
    assert HUNYUAN.fit_shape((480, 768), (480, 768)) == (480, 768)
    assert HUNYUAN.fit_shape((64, 64), (10, 1000)) == (16, 512)  # a side never rounds to nothing, and
    assert HUNYUAN.fit_shape((64, 64), (1000, 10)) == (512, 16)  # a panorama gets at most twice the pixels
    fine = ModelGrid(spatial=8, temporal=4)
    assert fine.fit_shape((64, 64), (48, 32)) == (72, 48)  # the exact shape, where the grid has it
    assert fine.fit_shape((64, 64), (2400, 1080)) == (88, 40)  # a phone's 20:9 as near as 8 px steps go
