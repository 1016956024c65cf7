"""retake.overrides: recipe settings changed by dotted name, as `--set KEY=VALUE` gives them."""

import pytest

from retake.data.recipes import CurateConfig
from retake.overrides import apply_overrides, parse_assignment


def test_values_are_read_as_toml_or_else_as_text():
    assert parse_assignment("min_short_side=32") == ("min_short_side", 32)
    assert parse_assignment(" editor.strengths = [5, 7.5] ") == ("editor.strengths", [5, 7.5])
    assert parse_assignment("skip_loop_filter=false") == ("skip_loop_filter", False)
    assert parse_assignment("writer=flatland") == ("writer", "flatland")
    assert parse_assignment("writer=none") == ("writer", "none")  # a recipe's word, not None
    assert parse_assignment("target_fps=null") == ("target_fps", None)
    assert parse_assignment('url="http://x:1/v1"') == ("url", "http://x:1/v1")
    for bad in ("min_short_side", "=3", "seed="):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_assignment(bad)


def test_dotted_keys_reach_nested_settings_and_unknown_ones_name_the_known():
    data = {"seed": 0, "vlm": {"model": "a", "timeout": 5}}
    assert apply_overrides(data, {"vlm.model": "b", "seed": None}) == {
        "seed": None,
        "vlm": {"model": "b", "timeout": 5},
    }
    assert data["vlm"]["model"] == "a"  # the input is left alone
    with pytest.raises(ValueError, match=r"unknown config field 'vlm\.modle'; known there: model, timeout"):
        apply_overrides(data, {"vlm.modle": "b"})
    with pytest.raises(
        ValueError, match=r"unknown config section 'seed' in 'seed\.x'; the recipe has seed, vlm"
    ):
        apply_overrides(data, {"seed.x": 1})


def test_a_curate_config_takes_settings_and_checks_their_types():
    config = CurateConfig().with_settings({"target_fps": None, "vlm.model": "m", "min_fps": 5})
    assert config.target_fps is None and config.vlm.model == "m" and config.min_fps == 5
    with pytest.raises(ValueError, match="min_short_side must be an integer, got 'big'"):
        CurateConfig().with_settings({"min_short_side": "big"})
