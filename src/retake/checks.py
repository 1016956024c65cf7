"""Argument checks for the library's entry points: a ValueError that names the argument and its value, before
a bad number reaches numpy or torch and fails there with a message about something else (or not at all)."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """`value` as an int; a float, bool, str or None is refused (a float count is usually a unit mistake, and
    torch would fail far from here), as is one below `minimum`. numpy integers are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_finite(name: str, value: Any, *, minimum: float | None = None, above: float | None = None) -> float:
    """`value` as a finite float (NaN passes every `<` test, so it must be caught by name), not below
    `minimum` and strictly above `above` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if above is not None and value <= above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    return value


SEED_LIMIT = 2**32  # torch's CPU generator seeds from the low 32 bits: 2**32 would repeat seed 0


def check_seed(name: str, value: Any) -> int:
    """A seed in 0 .. 2**32 - 1, where every value gives other random numbers."""
    value = check_int(name, value, minimum=0)
    if value >= SEED_LIMIT:
        raise ValueError(f"{name} must be in 0..{SEED_LIMIT - 1}, got {value}")
    return value
