"""retake.checks: numbers that would fail far away (or silently) are refused by name."""

import math

import numpy as np
import pytest

from retake.checks import check_finite, check_int, describe_changes


def test_check_int_takes_integers_only():
    assert check_int("steps", np.int64(4), minimum=1) == 4 and type(check_int("steps", np.int64(4))) is int
    for bad in (2.0, True, "3", None):
        with pytest.raises(ValueError, match=f"steps must be an integer, got {bad!r}"):
            check_int("steps", bad)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        check_int("steps", 0, minimum=1)


def test_check_finite_catches_nan_that_comparisons_miss():
    assert check_finite("shift", 3) == 3.0
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="shift must be finite"):
            check_finite("shift", bad, above=0)
    with pytest.raises(ValueError, match=r"shift must be > 0, got 0\.0"):
        check_finite("shift", 0.0, above=0)
    with pytest.raises(ValueError, match=r"power must be >= 0, got -1\.0"):
        check_finite("power", -1, minimum=0)
    with pytest.raises(ValueError, match="must be a number, got '3'"):
        check_finite("shift", "3")


def test_describe_changes_names_each_changed_key_once_in_one_wording():
    then = {"seed": 0, "size": [16, 16], "gone": "x", "same": 1}
    now = {"seed": 5, "size": [16, 16], "same": 1, "new": 2.5}
    assert describe_changes(then, now) == ["seed: 0 -> 5", "new: None -> 2.5", "gone: 'x' -> None"]
    assert describe_changes(now, now) == []
    nested = describe_changes({"vlm": {"model": "a", "url": "u"}}, {"vlm": {"model": "b", "url": "u"}})
    assert nested == ["vlm.model: 'a' -> 'b'"]  # the leaf that changed, not the whole section twice
