"""Changing recipe settings by dotted name ("min_short_side", "editor.path"), as `--set KEY=VALUE` does.

A recipe config is a tree of dataclasses; its `to_dict` form is changed here and read back by the recipe's own
`from_dict`, whose field checks then judge the values (so a wrong type is refused by name there).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from typing import Any


def apply_overrides(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the nested dict `data` with each dotted key of `changes` set (None included: a setting may be
    optional). An unknown key is refused, naming the known ones there."""
    result = copy.deepcopy(dict(data))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = result
        for depth, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                where = ".".join(parents[:depth]) or "the recipe"
                raise ValueError(f"unknown config section {part!r} in {dotted!r}; {where} has {_known(node)}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown config field {dotted!r}; known there: {_known(node)}")
        node[leaf] = value
    return result


def _known(node: Mapping[str, Any]) -> str:
    return ", ".join(sorted(node))


def parse_assignment(text: str) -> tuple[str, Any]:
    """ "KEY=VALUE" -> (KEY, VALUE). VALUE is read as a TOML value (32, 0.5, true, [5, 7.5], "text"); one that
    is not TOML is taken as text (`writer=flatland`), and `null` means None."""
    key, equals, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key or not value:
        raise ValueError(f"a setting must look like KEY=VALUE (e.g. min_short_side=32), got {text!r}")
    if value == "null":  # TOML has no null; some settings are optional (target_fps = None: the native rate)
        return key, None
    try:
        return key, tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        return key, value
