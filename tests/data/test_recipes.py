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
        # settings that made a run drop every video, or fail on a comparison with a str
        (dict(target_fps=float("nan")), "target_fps must be finite, got nan"),
        (dict(clip_frames=17.0), "clip_frames must be an integer, got 17\\.0"),
        (dict(min_duration_s=10, max_duration_s=1), "need 0 <= min_duration_s <= max_duration_s, got 10, 1"),
        (dict(min_short_side=-5), "min_short_side must be >= 1, got -5"),
        (dict(min_scene_frames=0), "min_scene_frames must be >= 1, got 0"),
        (dict(seed=True), "seed must be an integer, got True"),
        (dict(crf="20"), "crf must be an integer, got '20'"),
        (dict(skip_loop_filter="no"), "skip_loop_filter must be a bool, got 'no'"),
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
