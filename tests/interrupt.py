"""A stand-in for a kill in the middle of a long run (importable: pyproject.toml puts tests/ on the path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Stop(Exception):
    """Stands for a kill: raised from a step callback once `after` steps are done."""


def stopping_after(after: int) -> Callable[[Any], None]:
    """A step callback that raises `Stop` at step `after + 1`."""
    count = 0

    def callback(step: Any) -> None:
        nonlocal count
        count += 1
        if count > after:
            raise Stop

    return callback
