"""docs/training.md's key reference names every key a run config takes, and nothing else (a key added to a
config dataclass without a line there fails here)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from retake.train.config import (
    DataConfig,
    LoraSettings,
    OptimConfig,
    RunConfig,
    StageConfig,
    TricksConfig,
    _ModelOwn,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _reference() -> str:
    text = DOC.read_text()
    start = text.index("### Every key")
    return text[start : text.index("\n## ", start)]


def test_every_config_key_is_in_the_reference_and_every_named_key_exists():
    classes = (RunConfig, _ModelOwn, StageConfig, DataConfig, OptimConfig, TricksConfig, LoraSettings)
    keys = {f.name for cls in classes for f in dataclasses.fields(cls)} - {"model", "stages"}
    table = _reference()
    named = set(re.findall(r"\| `(\w+)`|, `(\w+)`", table))
    named = {a or b for a, b in named}
    assert keys - named == set(), f"keys missing from docs/training.md: {sorted(keys - named)}"
    sections = {"data", "optim", "tricks", "lora"}
    assert named - keys - sections == set(), (
        f"the reference names keys that do not exist: {sorted(named - keys)}"
    )
