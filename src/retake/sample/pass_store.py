"""The finished passes of a long edit, kept on disk so that an interrupted edit continues where it stopped.

An edit in passes (`retake.sample.windows`) runs for minutes on a small model and hours on a large one. Each
pass's new frames are saved as soon as it is done, as `pass_00003.safetensors` in a folder beside the output
(exact uint8 frames: the next pass is pinned to them), with `request.json` saying what was asked. A rerun of
the same request loads the saved passes and edits only the rest, ending with the frames an uninterrupted run
would have; a rerun of another request discards them, saying what changed. `edit_file` removes the folder
once the output is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from retake import files
from retake.checks import describe_changes
from retake.errors import RetakeError

REQUEST_FILE = "request.json"


class PassStoreError(RetakeError):
    """A saved pass that does not fit the edit it should continue."""


def passes_folder(output: Path) -> Path:
    """Where the passes of an edit bound for `output` are kept: `.NAME.passes` beside it."""
    return output.with_name(f".{output.name}.passes")


class PassStore:
    """Saved passes 0, 1, ... of one request. `open()` before use: it says how many can be reused."""

    def __init__(
        self, folder: Path, request: Mapping[str, Any], note: Callable[[str], None] | None = None
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.request = files.as_read_back(request)
        self.tell = note or (lambda _: None)

    def open(self) -> int:
        """Start a store for the request, or reuse the one there: the number of passes saved in a row from
        the first (a store of another request is discarded, with a note naming what changed)."""
        if self.folder.is_dir():
            old = self._read_request()
            if old == self.request:
                return self._reuse()
            self._discard(old)
        self.folder.mkdir(parents=True)
        files.write_json(self.folder / REQUEST_FILE, self.request)
        return 0

    def _reuse(self) -> int:
        files.remove_leftovers(self.folder)
        count = self.count()
        if count:
            were = "was" if count == 1 else "were"
            self.tell(f"continuing an interrupted edit: {_passes(count)} {were} saved in {self.folder}")
        return count

    def _discard(self, old: dict[str, Any] | None) -> None:
        why = "its request cannot be read" if old is None else "; ".join(describe_changes(old, self.request))
        count = self.count()
        are = "is" if count == 1 else "are"
        saved = _passes(count, "saved ")
        self.tell(f"starting over: the {saved} in {self.folder} {are} of another request ({why})")
        shutil.rmtree(self.folder)

    def path(self, index: int) -> Path:
        return self.folder / f"pass_{index:05d}.safetensors"

    def save(self, index: int, frames: np.ndarray) -> None:
        """Keep pass `index`'s new frames (F, H, W, 3) uint8; atomic, so a kill leaves it whole or absent."""
        with files.replacing(self.path(index)) as tmp:
            save_file({"frames": np.ascontiguousarray(frames)}, str(tmp))

    def load(self, index: int, frames: int) -> np.ndarray:
        """Pass `index`'s saved frames, which must be `frames` many."""
        path = self.path(index)
        try:
            saved = load_file(str(path))["frames"]
        except (OSError, SafetensorError, KeyError) as exc:
            raise PassStoreError(
                f"{path}: cannot be read ({exc}); delete {self.folder} to start over"
            ) from None
        if saved.dtype != np.uint8 or saved.ndim != 4 or len(saved) != frames:
            raise PassStoreError(
                f"{path} holds {saved.dtype} {saved.shape}, not the {frames} frames of its pass; delete "
                f"{self.folder} to start over"
            )
        return saved

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def count(self) -> int:
        """How many passes are saved in a row from the first."""
        count = 0
        while self.path(count).is_file():
            count += 1
        return count

    def _read_request(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / REQUEST_FILE).read_text())
        except (OSError, ValueError):
            return None


def _passes(count: int, kind: str = "") -> str:
    return f"{count} {kind}pass" if count == 1 else f"{count} {kind}passes"
