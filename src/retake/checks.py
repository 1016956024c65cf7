"""Argument checks for the library's entry points: a ValueError that names the argument and its value, before
a bad number reaches numpy or torch and fails there with a message about something else (or not at all)."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np


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


def size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) as two ints from an int N (N x N) or a pair; ValueError naming anything else."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return int(size), int(size)
    message = f"size must be (height, width) or one int for a square, got {size!r}"
    if isinstance(size, (str, bytes)):  # text is parse_size's to read; unpacked, "32" would be ("3", "2")
        raise ValueError(message)
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(message) from None
    return check_int("size height", height), check_int("size width", width)


SEED_LIMIT = 2**32  # torch's CPU generator seeds from the low 32 bits: 2**32 would repeat seed 0


def derive_seed(seed: int, index: int) -> int:
    """An independent 32-bit seed for item `index` of a run seeded with `seed` (NumPy's SeedSequence mixes
    them, so neighbouring seeds and indices give unrelated streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def check_seed(name: str, value: Any) -> int:
    """A seed in 0 .. 2**32 - 1, where every value gives other random numbers."""
    value = check_int(name, value)
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name} must be in 0..{SEED_LIMIT - 1}, got {value}")
    return value


def describe_changes(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """'key: then -> now' for each key whose value differs (a missing key reads None): the one wording every
    refused rerun uses to say what changed since the run on disk. Nested settings are compared leaf by leaf
    ('vlm.model: ...'), not printed whole."""
    then, now = _flat(then), _flat(now)
    keys = [*now, *(k for k in then if k not in now)]
    return [describe_change(k, then.get(k), now.get(k)) for k in keys if then.get(k) != now.get(k)]


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def describe_change(key: str, then: Any, now: Any) -> str:
    return f"{key}: {then!r} -> {now!r}"


def as_generator(name: str, rng: Any) -> np.random.Generator:
    """`rng` itself when it is a numpy Generator, else a Generator seeded with it (a seed, as `check_seed`
    takes): an int where a Generator is expected would fail as an AttributeError about `integers`."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(check_seed(name, rng))


def check_field_types(config: Any) -> None:
    """ValueError naming the first field of a config dataclass whose value is not of its annotated kind: ints
    that are ints (not bools, not 17.0), finite numbers for floats, str for str, items of tuples alike.
    numpy numbers are taken and stored as Python ones (a config is written as JSON, which cannot hold them).

    JSON and CLI overrides hand values over as parsed: a "3" fails the range checks with a TypeError, and a
    NaN or 17.0 passes them and makes a run that drops everything. Nested config fields are not looked at
    (they check themselves)."""
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        checked = _check_value(f.name, value, hints[f.name])
        if checked is not value:
            object.__setattr__(config, f.name, checked)  # frozen dataclasses too: this is their __post_init__


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_value(name: str, value: Any, hint: Any) -> Any:
    """`value`, checked against `hint`; numpy numbers in it replaced by Python ones."""
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return value
        return _check_value(name, value, next(a for a in args if a is not type(None)))
    if typing.get_origin(hint) is tuple:  # tuple[X, ...] or tuple[X, Y]
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{name} must be a sequence, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise ValueError(f"{name} must have {len(args)} items, got {value!r}")
        items = [_check_value(f"{name} item", item, h) for item, h in zip(value, args, strict=True)]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if hint is int:
        checked = check_int(name, value)
        return value if type(value) is int else checked
    if hint is float:
        checked = check_finite(name, value)
        return value if type(value) in (int, float) else checked
    if hint in (bool, str) and not isinstance(value, hint):
        raise ValueError(f"{name} must be a {hint.__name__}, got {value!r}")
    return value


def check_read_window(fps: float | None, start: float, duration: float | None = None) -> None:
    """A read window's `fps` (> 0 or None), `start` (>= 0 seconds) and `duration` (> 0 seconds, math.inf or
    None), as `retake edit` and `retake eval clips` take them: checked before a model is loaded."""
    if fps is not None:
        check_finite("fps", fps, above=0)
    check_finite("start", start, minimum=0)
    if duration is not None and duration != math.inf:
        check_finite("duration", duration, above=0)
