"""Fixtures of the factory tests: Flatland sources with sidecars, oracle configs, and the import path of the
helper modules (tiny_diffusers here; vlm_server of the data tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "data"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from synth_helpers import INSVIE_ORACLE, SFT_ORACLE  # noqa: E402

from retake.synth.flatland import write_sources  # noqa: E402
from retake.synth.recipes import get_recipe, with_overrides  # noqa: E402


@pytest.fixture(scope="session")
def flatland_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 Flatland sources (two of each edit kind), 64 px, 9 frames, each with its sidecar."""
    folder = tmp_path_factory.mktemp("flatland_sources")
    write_sources(folder, n=12, frames=9, seed=3, progress=False)
    return folder


@pytest.fixture(scope="session")
def insvie_oracle():
    return with_overrides(get_recipe("insvie"), INSVIE_ORACLE)


@pytest.fixture(scope="session")
def sft_oracle():
    return with_overrides(get_recipe("icve-sft"), SFT_ORACLE)
