"""Found by auditing `retake eval clips` with odd task files and failing videos: task files saved with a
byte-order mark or in another encoding, and failed samples that named their file twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retake.eval.clips import ClipReadError, ClipTask, FolderClipEditor, read_tasks
from retake.eval.editors import FolderEditor

TASK = {"source": "clip.mp4", "instruction": "make it red"}


@pytest.fixture
def folder(shared_videos: Path, tmp_path: Path) -> Path:
    shutil.copy(shared_videos / "anyv2v_ballet.mp4", tmp_path / "clip.mp4")
    return tmp_path


def test_a_task_file_with_a_byte_order_mark_reads_as_without(folder: Path) -> None:
    # Windows editors (Notepad, Excel's "CSV UTF-8") begin UTF-8 files with one.
    path = folder / "tasks.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(TASK) + "\r\n").encode())
    assert [(t.id, t.instruction) for t in read_tasks(path)] == [("clip", "make it red")]


def test_a_task_file_in_another_encoding_is_refused_naming_the_file_and_line(folder: Path) -> None:
    path = folder / "tasks.jsonl"
    path.write_bytes(
        (json.dumps(TASK) + "\n").encode() + b'{"source": "clip.mp4", "instruction": "caf\xe9"}\n'
    )
    with pytest.raises(ValueError, match=rf"^{path}:2: not UTF-8 text \(invalid continuation byte"):
        read_tasks(path)


def test_a_failed_sample_names_its_video_once(folder: Path) -> None:
    edits = folder / "edits"
    edits.mkdir()
    (edits / "clip.mp4").write_bytes(b"not a video")
    (folder / "broken.mp4").write_bytes(b"not a video either")
    editor = FolderClipEditor(FolderEditor(edits))
    with pytest.raises(ClipReadError) as error:
        editor.edit_clip(ClipTask("clip", folder / "clip.mp4", "make it red"))
    assert str(error.value).startswith(f"edit {edits / 'clip.mp4'}: not a readable media file")
    shutil.copy(folder / "clip.mp4", edits / "clip.mp4")
    with pytest.raises(ClipReadError) as error:
        editor.edit_clip(ClipTask("clip", folder / "broken.mp4", "make it red"))
    assert str(error.value).startswith(f"source {folder / 'broken.mp4'}: not a readable media file")
