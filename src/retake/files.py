"""Writing files and folders so that a crash never leaves half of one.

Everything is written under a hidden temporary name beside its destination and renamed into place, which is
atomic within one file system: a reader sees the old file or the new one, never a mix. Temporary names start
with a dot and end in `.tmp` (`.NAME.PID.THREAD.tmp`), so they never clash between processes or threads and
cleanup code can recognise them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TEMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0o022)  # reading the mask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # at import, before worker threads exist


def share(path: Path) -> None:
    """Give a file, or a folder and all in it, the permissions a plain write would: writers that stage
    through mkstemp/mkdtemp (safetensors writes every file so) leave them readable by their owner only, and a
    checkpoint, cache or benchmark on a shared disk would be unreadable to the rest of the team."""
    if path.is_symlink():  # a linked part (`retake bundle --link`): what it points to is not ours to change
        return
    if path.is_file():
        os.chmod(path, 0o666 & ~_UMASK)
    elif path.is_dir():
        os.chmod(path, 0o777 & ~_UMASK)
        for inner in path.iterdir():
            share(inner)


def temporaries_of(path: Path, tail: str = "") -> list[Path]:
    """What writes of `path` (`temp_sibling`, staged folders, folders moved aside) left beside it:
    `.NAME.<anything><tail>.tmp`."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{tail}{TEMP_SUFFIX}"))


def temp_sibling(path: Path) -> Path:
    """The temporary name `path` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{TEMP_SUFFIX}")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` for the block to write; it replaces `path` only if the block
    succeeds, and is removed if it fails."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        share(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (its folder is made if needed)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode())


def write_json(
    path: str | Path, data: Any, *, indent: int | None = 1, sort_keys: bool = False, allow_nan: bool = True
) -> None:
    """Write `data` as JSON with a final newline, atomically. `allow_nan=False` refuses NaN and infinity
    (not JSON: most readers other than Python's reject them) for files meant for other tools."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=json_default)
    write_text(path, text + "\n")


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for the numpy numbers a caller's settings may hold (np.int64(3) is a fine
    seed, but not JSON): their Python value. Anything else is refused as json would."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def as_read_back(value: Any) -> Any:
    """`value` as JSON reads it back (tuples become lists, keys strings): what settings written to a file are
    compared against when a rerun checks that they are the same."""
    return json.loads(json.dumps(value, default=json_default))


def write_json_lines(path: str | Path, rows: list[Any]) -> None:
    """Write one JSON document per line, atomically (rewriting a log, e.g. without a line cut short)."""
    write_text(path, "".join(json.dumps(row, default=json_default) + "\n" for row in rows))


def read_json_lines(path: str | Path, *, repair: bool = False) -> list[Any]:
    """The documents of an append-only JSON-lines log ([] when there is none), without the lines that are
    not JSON: the last one, when a kill cut it short.

    repair: also rewrite the file without them (and end it with a newline), so that the next append starts
    on a clean line instead of gluing a good record onto the broken one. Only for the log's one writer, when
    it resumes: a reader repairing a log under a live writer would drop the line being written."""
    path = Path(path).expanduser()
    if not path.is_file():
        return []
    text = path.read_text()
    rows, broken = [], bool(text) and not text.endswith("\n")
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            broken = True
    if broken and repair:
        write_json_lines(path, rows)
    return rows


# ----------------------------------------------------------------------------------------------------------
# folders
# ----------------------------------------------------------------------------------------------------------
def check_output_file(path: str | Path) -> Path:
    """`path` as a Path, refused with a ValueError before any work when a file cannot be written there (what
    would otherwise fail only at the end of a long run)."""
    path = Path(path).expanduser()
    reason = unwritable_reason(path)
    if reason is not None:
        raise ValueError(f"cannot write {path}: {reason}")
    return path


def unwritable_reason(path: Path) -> str | None:
    """Why a file cannot be written at `path` (it is a folder; the folder to make it in is a file or not
    writable), or None."""
    if path.is_dir():
        return "it is a folder; give a file path"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists must be writable
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot make its folder: {folder} is a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write into {folder} (permission denied)"
    return None


def check_replaceable_folder(out: Path, *, marker: str, what: str, overwrite: bool) -> None:
    """FileExistsError unless `out` may become a new `what` (e.g. "bundle"): it is missing, an empty folder,
    or, with `overwrite`, a `what` already (it holds the file `marker`). Overwrite deletes the folder, so it
    never takes a file or a folder of other things: a mistyped path loses no other work."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a {what}; choose another path")
    if not any(out.iterdir()):
        return
    if not (out / marker).is_file():
        raise FileExistsError(
            f"{out} is a folder with other things in it (no {marker}); overwrite replaces only a {what}"
        )
    if not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite / --overwrite to replace it)")


@contextmanager
def staged_folder(out: str | Path, *, marker: str, what: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder of `out` to fill; it becomes `out` only when the block succeeds, so
    a failed or interrupted write never leaves half a `what` behind. `out` is checked first as
    `check_replaceable_folder` does; the block must write `marker` into the folder."""
    out = Path(out).expanduser()
    _restore_aside(out)
    check_replaceable_folder(out, marker=marker, what=what, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in temporaries_of(out):  # of a write to `out` killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TEMP_SUFFIX, dir=out.parent))
    try:
        yield staging
        share(staging)  # mkdtemp and safetensors make it private; what is written here is meant to be shared
        if out.is_symlink():
            out.unlink()  # a link to an older one: replace the link, not what it points to
        move_folder_over(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _restore_aside(out: Path) -> None:
    """Put back the folder `move_folder_over` had moved aside when a kill came before the new one took its
    place: otherwise the sweep of stale temporaries would delete the only whole copy."""
    for aside in temporaries_of(out, ".old"):
        if _put_back(aside):
            return


def move_folder_over(src: Path, out: Path) -> None:
    """Rename the folder `src` to `out`, replacing a folder there. The old one is first renamed aside, to a
    temporary name that `staged_folder` and `remove_leftovers` clear, and deleted only then: deleted in place,
    a kill half way would leave at `out` a folder that is neither the old one nor the new one (perhaps its
    marker without its weights), which a rerun would refuse to replace or take for a whole one."""
    if out.is_dir() and not out.is_symlink():
        aside = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.old{TEMP_SUFFIX}")
        os.replace(out, aside)
        os.replace(src, out)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(src, out)


_ASIDE = re.compile(r"\.(?P<name>.+)\.\d+\.\d+\.old" + re.escape(TEMP_SUFFIX))


def _put_back(path: Path) -> bool:
    """Whether `path` is a folder `move_folder_over` moved aside whose place is still empty (killed between
    its two renames: the only whole copy), and so was renamed back."""
    aside = _ASIDE.fullmatch(path.name)
    if aside is None or not path.is_dir():
        return False
    out = path.with_name(aside["name"])
    if out.exists() or out.is_symlink():
        return False
    os.replace(path, out)
    return True


# safetensors writes its own `.tmpXXXXXXXX` beside the destination before renaming it to our temporary name.
# retake.video writes a video as `.NAME.partial.EXT` beside its destination (the muxer needs the extension).
_PARTIAL_VIDEO = re.compile(r"\..+\.partial\.(mp4|gif)")
# What `temp_sibling` names a file while it is written: .NAME.PID.THREAD.tmp
TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.\d+\.\d+" + re.escape(TEMP_SUFFIX))
_FOREIGN_TEMPORARY = re.compile(r"\.tmp\w{6,8}")


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete what writes killed outright left in `folder` (not below it): this module's temporary files and
    folders (`.NAME....tmp`), the first temporary files of safetensors and the half-written videos of
    `retake.video` (`.NAME.partial.mp4`); put back a folder moved aside by `move_folder_over`. Returns what
    was deleted.

    Call it when a run that owns `folder` starts (two runs must not share one folder): a killed write leaves
    them behind, and a checkpoint or model folder among them can hold gigabytes."""
    removed = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if _put_back(path):
            continue
        name = path.name
        if _PARTIAL_VIDEO.fullmatch(name) or (
            name.startswith(".") and (name.endswith(TEMP_SUFFIX) or _FOREIGN_TEMPORARY.fullmatch(name))
        ):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def remove_temporaries_of(path: Path) -> list[Path]:
    """Delete the temporary files that writes of `path` killed outright left beside it (`.NAME.*.tmp`). For a
    file in a folder that holds other things (`remove_leftovers` clears the whole folder). Returns them."""
    path = Path(path).expanduser()
    stale = [p for p in temporaries_of(path) if p.is_file()]
    for leftover in stale:
        leftover.unlink()
    return stale
