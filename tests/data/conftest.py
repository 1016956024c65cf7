"""Fixtures of the data tests (a local chat-completions server with a known API key), and the import path of
their helper modules `data_synth` and `vlm_server`: this folder goes on sys.path here, since pytest's
`importlib` import mode does not put test folders there itself."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from vlm_server import API_KEY, KEY_ENV, ChatServer  # noqa: E402  (needs the path above)


@pytest.fixture
def vlm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    server = ChatServer(api_key=API_KEY).start()
    yield server
    server.stop()
