"""Shared fixtures: where the real sample clips live, and a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real sample videos (../shared/data); skips the test when it is missing."""
    if not (SHARED_DATA / "videos").is_dir():
        pytest.skip(f"real sample videos not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_videos(shared_data: Path) -> Path:
    return shared_data / "videos"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models spend their time fighting over threads; one thread is faster and deterministic."""
    import torch

    torch.set_num_threads(1)
    yield
