"""CurateConfig: every bad value is refused when the config is made, naming the field and the value."""

from __future__ import annotations

import pytest

from retake.data.recipes import CurateConfig, get_recipe


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(clip_frames=16), "clip_frames must be 4k\\+1.*16"),
        (dict(writer="gpt"), "writer must be one of.*'gpt'"),
        (dict(crf=52), "crf must be in 0..51, got 52"),
        (dict(encode_preset="warp"), "encode_preset must be one of.*ultrafast.*'warp'"),
        (dict(output_short_side=255), "output_short_side must be even.*255"),
        (dict(min_fps=30.0, max_fps=24.0), "min_fps \\(30.0\\) is above max_fps \\(24.0\\)"),
    ],
)
def test_bad_values_are_refused_by_name(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CurateConfig(**changes)


def test_recipe_round_trips_through_json() -> None:
    config = get_recipe("icve-pretrain").replace(encode_preset="veryfast", crf=18)
    assert CurateConfig.from_dict(config.to_dict()) == config


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'icve'.*icve-pretrain"):
        get_recipe("icve")
