"""retake.overrides: recipe settings changed by dotted name, as `--set KEY=VALUE` gives them."""

import pytest

from retake.data.recipes import CurateConfig
from retake.overrides import apply_overrides, parse_assignments


def test_values_are_read_as_the_setting_they_change():
    current = {
        "min_short_side": 64,
        "writer": "none",
        "target_fps": 12.0,
        "vlm": {"model": "m"},
        "path": None,
    }
    texts = [
        "min_short_side=32",
        " target_fps = null ",
        "writer=flatland",
        "vlm.model=4",  # a text setting takes the text, not the number
        "path=runs/x",  # not TOML: text
    ]
    assert parse_assignments(texts, current) == {
        "min_short_side": 32,
        "target_fps": None,
        "writer": "flatland",
        "vlm.model": "4",
        "path": "runs/x",
    }
    assert parse_assignments(['writer="none"', "strengths=[5, 7.5]", "on=true"], current) == {
        "writer": "none",
        "strengths": [5, 7.5],
        "on": True,
    }
    for bad in ("min_short_side", "=3", "seed="):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_assignments([bad], current)


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
    # A whole section would set its other fields back to their defaults (a --device given beside it, too).
    with pytest.raises(
        ValueError, match=r"'vlm' is a section; set its fields one by one, e\.g\. vlm\.model="
    ):
        apply_overrides(data, {"vlm": None})


def test_a_curate_config_takes_settings_and_checks_their_types():
    config = CurateConfig().with_settings({"target_fps": None, "vlm.model": "m", "min_fps": 5})
    assert config.target_fps is None and config.vlm.model == "m" and config.min_fps == 5
    with pytest.raises(ValueError, match="min_short_side must be an integer, got 'big'"):
        CurateConfig().with_settings({"min_short_side": "big"})
