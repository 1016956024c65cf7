"""Changing recipe settings by dotted name ("min_short_side", "editor.path"), as `--set KEY=VALUE` does.

A recipe config is a tree of dataclasses; its `to_dict` form is changed here and read back by the recipe's own
`from_dict`, whose field checks then judge the values (so a wrong type is refused by name there).
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from collections.abc import Iterable, Mapping
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
        if isinstance(node[leaf], dict):  # a whole section given: its other fields would fall to defaults
            raise ValueError(
                f"{dotted!r} is a section; set its fields one by one, e.g. {dotted}.{next(iter(node[leaf]))}=..."
            )
        node[leaf] = value
    return result


def _known(node: Mapping[str, Any]) -> str:
    return ", ".join(sorted(node))


def parse_assignments(texts: Iterable[str], current: Mapping[str, Any]) -> dict[str, Any]:
    """ "KEY=VALUE" texts -> {KEY: VALUE}, each VALUE read against the setting's current value in the nested
    dict `current`: text for a text setting (`vlm.model=4` is the model "4", not the number), else a TOML
    value (32, 0.5, true, [5, 7.5], "text"), or text when it is not TOML (`editor.path=runs/x`); `null` is
    None (TOML has none; some settings are optional: `target_fps=null` keeps the native rate)."""
    settings = {}
    for text in texts:
        key, equals, raw = text.partition("=")
        key, raw = key.strip(), raw.strip()
        if not equals or not key or not raw:
            raise ValueError(f"a setting must look like KEY=VALUE (e.g. min_short_side=32), got {text!r}")
        settings[key] = _read_value(raw, _lookup(current, key))
    return settings


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None  # unknown: `apply_overrides` names it
        node = node[part]
    return node


def _read_value(raw: str, current: Any) -> Any:
    if raw == "null":
        return None
    if isinstance(current, str) and raw[0] not in "\"'":
        return raw
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def build_config(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """A (nested) config dataclass from plain data (a `to_dict` form, JSON, TOML): dataclass fields recurse,
    lists become tuples. ValueError naming an unknown field, or a nested table that is not one, with its
    dotted place ("vlm.modle"); the dataclasses check their values themselves."""
    name = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ValueError(f"{name} needs a table of {cls.__name__} settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        place = f"{where}." if where else ""
        raise ValueError(
            f"unknown {cls.__name__} fields: {', '.join(place + key for key in unknown)}; known: {', '.join(known)}"
        )
    values = {}
    for key, value in data.items():
        hint, place = hints[key], f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint) and not isinstance(value, hint):
            value = build_config(hint, value, place)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)
