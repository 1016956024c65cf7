"""retake.files: atomic writes leave the old file or the new one, never half of one, and no temporary files."""

import json
import math
from pathlib import Path

import pytest

from retake import files


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(files.TEMP_SUFFIX))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "stats.json"
    files.write_json(path, {"pairs": 3})
    with pytest.raises(RuntimeError), files.replacing(path) as tmp:
        tmp.write_text('{"pairs": ')  # a crash half way through the new content
        raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"pairs": 3}
    assert _leftovers(tmp_path) == []


def test_writes_make_the_folder_and_round_trip(tmp_path):
    path = tmp_path / "a" / "b" / "log.jsonl"
    files.write_json_lines(path, [{"step": 1}, {"step": 2}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"step": 1}, {"step": 2}]
    files.write_json(tmp_path / "sorted.json", {"b": 1, "a": 2}, sort_keys=True)
    assert (tmp_path / "sorted.json").read_text() == '{\n "a": 2,\n "b": 1\n}\n'


def test_json_for_other_tools_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="Out of range float"):
        files.write_json(tmp_path / "report.json", {"psnr": math.nan}, allow_nan=False)
    assert not (tmp_path / "report.json").exists() and _leftovers(tmp_path) == []


def test_a_log_line_cut_short_is_skipped_and_only_a_repair_rewrites_the_file(tmp_path):
    log = tmp_path / "log.jsonl"
    assert files.read_json_lines(log) == []
    log.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert files.read_json_lines(log) == [{"a": 1}, {"a": 2}]
    assert log.read_text().endswith('{"a": ')  # a reader leaves a live writer's line alone
    assert files.read_json_lines(log, repair=True) == [{"a": 1}, {"a": 2}]
    assert log.read_text() == '{"a": 1}\n{"a": 2}\n'  # the next append starts on a clean line


def test_temporary_names_differ_between_threads(tmp_path):
    import threading

    names = []
    thread = threading.Thread(target=lambda: names.append(files.temp_sibling(tmp_path / "x")))
    thread.start()
    thread.join()
    assert names[0] != files.temp_sibling(tmp_path / "x")
    assert names[0].name.startswith(".x.") and names[0].suffix == files.TEMP_SUFFIX


def test_staged_folder_appears_only_whole(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError), files.staged_folder(out, marker="spec.json", what="bundle") as staging:
        (staging / "spec.json").write_text("{}")
        raise RuntimeError("killed before the weights were written")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with files.staged_folder(out, marker="spec.json", what="bundle") as staging:
        (staging / "spec.json").write_text("{}")
    assert (out / "spec.json").is_file() and list(tmp_path.iterdir()) == [out]


def test_a_staged_folder_clears_what_a_killed_write_to_it_left(tmp_path):
    stale = tmp_path / ".bundle.k2j3.tmp"
    stale.mkdir()
    (tmp_path / ".other.k2j3.tmp").mkdir()  # another output's: not ours to clear
    with files.staged_folder(tmp_path / "bundle", marker="spec.json", what="bundle") as staging:
        (staging / "spec.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.k2j3.tmp", "bundle"]


def test_staged_folder_replaces_only_its_own_kind(tmp_path):
    notes, photos, old = tmp_path / "notes.txt", tmp_path / "photos", tmp_path / "old"
    notes.write_text("keep")
    (photos / "album").mkdir(parents=True)
    old.mkdir()
    (old / "spec.json").write_text('{"v": 1}')
    with pytest.raises(FileExistsError, match=r"notes\.txt is a file, not a bundle"):
        files.check_replaceable_folder(notes, marker="spec.json", what="bundle", overwrite=True)
    with pytest.raises(FileExistsError, match=r"other things in it \(no spec\.json\)"):
        files.check_replaceable_folder(photos, marker="spec.json", what="bundle", overwrite=True)
    with pytest.raises(FileExistsError, match="pass overwrite"):
        files.check_replaceable_folder(old, marker="spec.json", what="bundle", overwrite=False)
    with files.staged_folder(old, marker="spec.json", what="bundle", overwrite=True) as staging:
        (staging / "spec.json").write_text('{"v": 2}')
    assert (old / "spec.json").read_text() == '{"v": 2}'
    assert notes.read_text() == "keep" and (photos / "album").is_dir()


def test_staged_folder_replaces_a_link_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "spec.json").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    with files.staged_folder(link, marker="spec.json", what="bundle", overwrite=True) as staging:
        (staging / "spec.json").write_text("new")
    assert not link.is_symlink() and (link / "spec.json").read_text() == "new"
    assert (target / "spec.json").read_text() == "old"


def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    for name in (".stats.json.12.34.tmp", ".tmpduhIqE", "keep.json", ".hidden", "plain.tmp"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".bundle.k2j3.tmp").mkdir()  # a staged folder
    (tmp_path / ".bundle.k2j3.tmp" / "weights").write_text("x")
    removed = files.remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [".bundle.k2j3.tmp", ".stats.json.12.34.tmp", ".tmpduhIqE"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "keep.json", "plain.tmp"]
    assert files.remove_leftovers(tmp_path / "missing") == []


def test_an_output_file_path_that_cannot_be_written_is_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "plain.txt").write_text("x")
    assert (
        files.check_output_file(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new/deeper/out.json"
    )
    with pytest.raises(ValueError, match="taken: it is a folder; give a file path"):
        files.check_output_file(tmp_path / "taken")
    with pytest.raises(ValueError, match=r"cannot make its folder: .*plain\.txt is a file"):
        files.check_output_file(tmp_path / "plain.txt" / "sub" / "out.json")


def test_probe_refuses_an_output_folder_before_the_model_loads(tmp_path: Path, capsys) -> None:
    from retake.cli import main

    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit) as stop:  # neither the benchmark nor the bundle exists
        main(
            [
                "eval",
                "probe",
                str(tmp_path / "bench"),
                "--model",
                str(tmp_path / "m"),
                "-o",
                str(tmp_path / "taken"),
            ]
        )
    assert stop.value.code == 2 and "taken: it is a folder" in capsys.readouterr().err


def test_a_file_written_through_mkstemp_gets_the_usual_permissions(tmp_path: Path) -> None:
    import os

    import torch
    from safetensors.torch import save_file

    with files.replacing(tmp_path / "masks.safetensors") as tmp:
        save_file({"m": torch.zeros(2)}, str(tmp))  # safetensors writes a 0600 mkstemp file and renames it
    with files.replacing(tmp_path / "plain.txt") as tmp:
        tmp.write_text("x")
    mode = (tmp_path / "masks.safetensors").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o666 & ~files._UMASK
    assert os.access(tmp_path / "masks.safetensors", os.R_OK)


def test_a_staged_folder_of_safetensors_is_readable_by_others(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    (outside := tmp_path / "elsewhere").mkdir()
    (outside / "private.bin").write_bytes(b"x")
    (outside / "private.bin").chmod(0o600)
    with files.staged_folder(tmp_path / "model", marker="config.json", what="model") as staging:
        (staging / "config.json").write_text("{}")
        (staging / "linked").symlink_to(outside)  # as `retake bundle --link` makes them
        (staging / "sub").mkdir()
        save_file({"w": torch.zeros(2)}, str(staging / "sub" / "weights.safetensors"))
    model = tmp_path / "model"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [model, *model.rglob("*")] if not p.is_symlink()}
    dirs, plain = 0o777 & ~files._UMASK, 0o666 & ~files._UMASK
    assert modes == {"model": dirs, "config.json": plain, "sub": dirs, "weights.safetensors": plain}
    assert (outside / "private.bin").stat().st_mode & 0o777 == 0o600  # a linked part is left as it is


def test_a_checkpoint_is_readable_by_others(tmp_path: Path) -> None:
    import torch

    from retake.train.checkpoint import write_checkpoint

    folder = write_checkpoint(tmp_path, 3, {"model": {"w": torch.zeros(2)}}, {"step": 3}, keep=2)
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o666 & ~files._UMASK}
    assert folder.stat().st_mode & 0o777 == 0o777 & ~files._UMASK


def test_a_folder_moved_aside_by_a_replace_killed_midway_is_put_back(tmp_path: Path) -> None:
    """Killed between `move_folder_over`'s two renames: nothing at OUT, the old folder aside, the new one in
    staging. The next write to OUT must not sweep away the old one with the staging leftovers."""
    out = tmp_path / "bundle"
    (aside := tmp_path / ".bundle.123.456.old.tmp").mkdir()
    (aside / "marker.json").write_text("old")
    (staging := tmp_path / ".bundle.abc.tmp").mkdir()
    (staging / "marker.json").write_text("new, never moved in")
    with (
        pytest.raises(RuntimeError),
        files.staged_folder(out, marker="marker.json", what="bundle", overwrite=True),
    ):
        raise RuntimeError("this rerun fails too")
    assert (out / "marker.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_checkpoint_moved_aside_when_a_kill_came_is_put_back_on_resume(tmp_path: Path) -> None:
    """The same step saved twice, killed between the renames: its only whole copy is the one moved aside."""
    import torch

    from retake.train.checkpoint import write_checkpoint

    final = write_checkpoint(tmp_path, 3, {"model": {"w": torch.ones(2)}}, {"step": 3}, keep=2)
    final.rename(tmp_path / f".{final.name}.123.456.old.tmp")  # as the kill left it
    (tmp_path / f".{final.name}.789.tmp").mkdir()  # the new copy, half written
    files.remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert json.loads((final / "state.json").read_text()) == {"step": 3}


def test_settings_compare_as_they_read_back_from_json():
    settings = {"size": (64, 32), 3: "x", "nested": {"kinds": ("add",)}}
    assert files.as_read_back(settings) == {"size": [64, 32], "3": "x", "nested": {"kinds": ["add"]}}
