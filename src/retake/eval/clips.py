"""Score an editor on real videos, where no ground truth exists (`retake eval clips`).

A task file is JSONL, one `{"id": optional, "source": path, "instruction": str}` per line; a relative source
is found from the task file's folder. An id names the sample's files, so it must be a safe file name, unique
without regard to case (macOS and Windows disks take `Kid.mp4` and `kid.mp4` for one file); left out, it is
the source's stem, with a counter (`wolf-1`, `wolf-2`) when several tasks share a stem, case aside.

Editors (`open_clip_editor`):
- a retake bundle (`BundleClipEditor`): each source is read as `retake edit` reads it (`edit_file`: the size
  fitted to the model's grid, the bundle's frame count capped to the source) and edited with one seed for
  every task, so `retake edit SOURCE INSTRUCTION --seed S` reproduces any edit of the run;
- a folder of `<id>.mp4` made by another system (`FolderClipEditor`), all checked present before the run.

Scoring compares the edit with the part of the source it covers, frame for frame at one size. A bundle's edit
is of the first N frames of the source as the pipeline saw them (cover-cropped to its size), so that is what
it is scored against. A folder's edit sets the grid: the source is read from its first frame at the edit's
frame rate (by timestamps; every frame when the rates agree), resized to cover the edit's picture and
centre-cropped, and both are cut to the shorter length. An edit must therefore be written at the rate its
frames really have: frames kept one for one but labelled with another rate compare against the wrong moments.
`evaluate_edit` then scores it without reference or mask: warp error, flicker and motion fidelity against the
source's flow, quality, and the CLIP and VLM-judge scores when a scorer or judge is given.

The run folder holds, as `retake eval run`'s does (`retake.eval.runner`):
    run.json          editor, judge, CLIP model and config: a rerun with other settings is refused
    samples.jsonl     one line per scored (or failed) sample, appended as it is done: a rerun skips the
                      scored ones and tries the failed ones again
    edits/<id>.mp4    the edits as scored;  gifs/<id>.gif  source | edit, side by side
    report.json       every sample's metrics, and the mean, median and count of each metric
    index.html        the same as tables, with the GIFs
A source (or a folder's edit) that cannot be read fails its sample, recorded with the error; the run goes on.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rich.progress import track
from rich.table import Table

from retake import __version__, files
from retake.checks import check_int, check_read_window, check_seed, describe_changes
from retake.errors import RetakeError
from retake.eval.editors import BundleEditConfig, BundleEditor, FolderEditor
from retake.eval.metrics import EvalConfig, evaluate_edit
from retake.eval.report import html_arrow, html_number, html_page, html_table, metric_info, side_by_side
from retake.eval.runner import RunMismatchError, ShortEditError, conform, read_rows, unscored_motion
from retake.eval.vlm_judge import VLMJudge
from retake.video import Video, VideoError, probe, read, write, write_gif

if TYPE_CHECKING:  # transformers is slow to import; only CLIP users pay for it
    from retake.eval.clip_score import ClipScorer

FORMAT = "retake.eval.clips/1"
REPORT_FORMAT = "retake.eval.clips.report/1"
RUN_FILE = "run.json"
RESULTS_FILE = "samples.jsonl"
EDITS_DIR = "edits"
GIFS_DIR = "gifs"
REPORT_JSON = "report.json"
REPORT_HTML = "index.html"
TASK_KEYS = ("id", "source", "instruction")
# Letters, digits, '.', '_', '-'; no leading '.' (hidden files, '..') or '-' (read as an option), <= 100 long.
SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
# The per-sample table's metric columns, where present.
COLUMNS = (
    "warp_error",
    "source_warp_error",
    "flicker",
    "motion_relative_epe",
    "clip_text_frame",
    "vlm_total",
)


class ClipReadError(RetakeError):
    """A task's source, or a folder's edit of it, cannot be read: that sample fails, the run goes on."""


# ---- tasks -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipTask:
    id: str
    source: Path  # absolute
    instruction: str


def read_tasks(path: str | os.PathLike[str]) -> list[ClipTask]:
    """The tasks of a JSONL task file (see the module docstring). Blank lines are skipped; any other line that
    is not a task raises a ValueError naming the file, the line number and the bad value, so a typo is caught
    before a model loads rather than after hours of edits."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    entries: list[tuple[int, str | None, Path, str]] = []
    for number, line in enumerate(_task_lines(path), start=1):
        if line.strip():
            entries.append((number, *_parse_task(line, f"{path}:{number}", path.parent)))
    if not entries:
        raise ValueError(f"{path} holds no tasks (one JSON object per line)")
    ids = _task_ids([(number, given, source) for number, given, source, _ in entries], str(path))
    return [
        ClipTask(task_id, source, instruction)
        for task_id, (_, _, source, instruction) in zip(ids, entries, strict=True)
    ]


def _task_lines(path: Path) -> list[str]:
    """The file's lines as UTF-8; a byte-order mark (which Windows editors write) is dropped, not read as
    part of the first task."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:  # its own message names neither the file nor the line
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_task(line: str, where: str, folder: Path) -> tuple[str | None, Path, str]:
    """(id or None, resolved source, instruction) of one line."""
    try:
        task = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc.msg}): {line[:80]!r}") from None
    if not isinstance(task, dict):
        raise ValueError(f"{where}: a task is a JSON object with {', '.join(TASK_KEYS)}, got {task!r}")
    unknown = sorted(set(task) - set(TASK_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; a task has {', '.join(TASK_KEYS)}")
    for key in ("source", "instruction"):
        if key not in task:
            raise ValueError(f"{where}: no {key!r} in {task!r}")
    instruction, source, task_id = task["instruction"], task["source"], task.get("id")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: instruction must be a non-empty string, got {instruction!r}")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}: source must be a path string, got {source!r}")
    if task_id is not None and not (isinstance(task_id, str) and SAFE_ID.fullmatch(task_id)):
        raise ValueError(
            f"{where}: id {task_id!r} is not a safe file name "
            "(letters, digits, '.', '_', '-'; no leading '.' or '-')"
        )
    resolved = folder / Path(source).expanduser()  # an absolute source replaces the folder
    if not resolved.is_file():
        what = "is a folder" if resolved.is_dir() else "not found"
        raise ValueError(f"{where}: source {source!r} {what} (looked at {resolved})")
    return task_id, resolved, instruction


def _task_ids(entries: Sequence[tuple[int, str | None, Path]], where: str) -> list[str]:
    """Given ids as they are (each once); the others the safe form of their source's stem, numbered from 1
    when several share it or a given id has it. Ids are compared without case: each names files
    (edits/<id>.mp4), and "Kid" and "kid" are one file on macOS's and Windows' disks."""
    given: dict[str, tuple[int, str]] = {}
    for number, task_id, _ in entries:
        if task_id is None:
            continue
        if (first := given.get(task_id.lower())) is not None:
            same = (
                ""
                if first[1] == task_id
                else f" as {first[1]!r} (ids name files, whose case some disks ignore)"
            )
            raise ValueError(f"{where}:{number}: id {task_id!r} is already used on line {first[0]}{same}")
        given[task_id.lower()] = (number, task_id)
    stems = [_safe_stem(source).lower() for _, task_id, source in entries if task_id is None]
    taken, counters, ids = set(given), dict.fromkeys(stems, 0), []
    for _, task_id, source in entries:
        if task_id is not None:
            ids.append(task_id)
            continue
        stem = _safe_stem(source)
        key = stem.lower()
        if stems.count(key) == 1 and key not in taken:
            ids.append(stem)
        else:
            counters[key] += 1
            while f"{key}-{counters[key]}" in taken:
                counters[key] += 1
            ids.append(f"{stem}-{counters[key]}")
        taken.add(ids[-1].lower())
    return ids


def _safe_stem(source: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem).lstrip(".-")[:90]
    return stem or "clip"


# ---- editors -----------------------------------------------------------------------------------------------


@dataclass
class AlignedEdit:
    """An edit and the part of its source it covers, frame for frame at one size."""

    source: Video
    edited: Video
    notes: list[str] = field(default_factory=list)  # what was done to line them up
    edit_seconds: float | None = None  # the editor's time (None: made elsewhere)


class ClipEditor(Protocol):
    def edit_clip(self, task: ClipTask) -> AlignedEdit:
        """The task's edit, aligned with its source; ClipReadError when a video cannot be read."""
        ...

    def describe(self) -> dict[str, Any]:
        """What this editor is, as plain JSON for run.json and the report."""
        ...


@dataclass(frozen=True)
class Stretch:
    """Which part of each source a bundle edits: `retake edit`'s --fps, --start, --duration and --overlap.

    fps: resample to this rate first (None: the source's own); start: seconds into the source; duration:
    seconds from there (math.inf: to the end), edited in overlapping passes (`retake.sample.windows`), or
    None for the one pass of the bundle's frames; overlap: frames neighbouring passes share (None: default).
    """

    fps: float | None = None
    start: float = 0.0
    duration: float | None = None
    overlap: int | None = None

    def __post_init__(self) -> None:
        check_read_window(self.fps, self.start, self.duration)
        if self.overlap is not None and self.duration is None:
            raise ValueError(f"overlap={self.overlap} needs a duration: one pass has nothing to overlap")

    def describe(self) -> dict[str, Any]:
        """The settings that differ from one pass from the start at the source's rate (run.json)."""
        defaults = asdict(Stretch())  # by field: overlap 0 (independent passes) is not the default overlap
        return {k: v for k, v in asdict(self).items() if v != defaults[k]}


class BundleClipEditor:
    """A retake bundle that edits each source as `retake edit` would (`retake.sample.edit_file`).

    frames: frames to edit, or per pass with a duration (None: the bundle's default, capped to the source);
    size: (H, W) rounded to the model's grid (None: about the bundle's area, in the source's shape); seed:
    every edit's noise seed, so that `retake edit --seed` reproduces any edit of the run, whatever the task's
    place in the file; stretch: which part of each source is edited."""

    def __init__(
        self,
        editor: BundleEditor,
        frames: int | None = None,
        size: tuple[int, int] | None = None,
        seed: int = 0,
        stretch: Stretch = Stretch(),
    ) -> None:
        if editor.config.frames is not None or editor.config.size is not None:
            raise ValueError(
                "give frames and size to BundleClipEditor, not to BundleEditConfig: each source is read at "
                f"them, as retake edit does (got frames={editor.config.frames}, size={editor.config.size})"
            )
        grid, default = editor.pipeline.grid, editor.pipeline.defaults.frames
        if frames is not None:  # below the model's minimum: refused for the run, not failed per sample
            grid.fit_frames(frames, default, check_int("frames", frames, minimum=1))
        if size is not None:
            grid.fit_size(size)
        self.editor = editor
        self.frames = frames
        self.size = size
        self.seed = check_seed("seed", seed)
        self.stretch = stretch
        if stretch.duration is not None:  # passes that do not fit the model: refused for the run
            from retake.sample.windows import fit_passes

            pipeline = editor.pipeline
            fit_passes(pipeline.grid, pipeline.defaults.frames, frames, stretch.overlap)

    def edit_clip(self, task: ClipTask) -> AlignedEdit:
        notes: list[str] = []
        source = self.read_source(task.source, notes.append)
        started = time.perf_counter()
        if self.stretch.duration is None:
            edited = self.editor.edit(source, task.instruction, seed=self.seed, sample_id=task.id)
        else:
            edited = self._edit_passes(source, task.instruction)
        seconds = time.perf_counter() - started
        edited, conformed = conform(edited, source)  # a no-op for a pipeline, which keeps frames and size
        return AlignedEdit(source, edited, notes + conformed, seconds)

    def read_source(self, path: Path, note: Callable[[str], None]) -> Video:
        """The frames the pipeline edits, read as `edit_file` reads them (`read_for_edit`: decoded straight at
        the size fitted to the grid, the frame count fitted too). `note` hears what differs from the request."""
        from retake.sample.pipeline import read_for_edit  # the model stack: only bundle runs pay for it

        stretch = self.stretch
        window = dict(fps=stretch.fps, start=stretch.start, duration=stretch.duration)
        try:
            pipeline = self.editor.pipeline
            return read_for_edit(pipeline, path, frames=self.frames, size=self.size, note=note, **window)
        except (VideoError, ValueError) as exc:  # unreadable, or too short for the frames asked
            raise _read_error("source", path, exc) from exc

    def _edit_passes(self, source: Video, instruction: str) -> Video:
        """All of `source` in overlapping passes, as `retake edit --duration` edits it."""
        from retake.sample.windows import edit_windows

        config = self.editor.config
        sampler = dict(steps=config.steps, guidance=config.guidance, video_guidance=config.video_guidance)
        return edit_windows(
            self.editor.pipeline,
            source,
            instruction,
            window=self.frames,
            overlap=self.stretch.overlap,
            seed=self.seed,
            size=(source.height, source.width),
            progress=False,
            **sampler,
        )

    def describe(self) -> dict[str, Any]:
        settings = {"frames": self.frames, "size": self.size, "seed": self.seed}
        return self.editor.describe() | settings | self.stretch.describe()


class FolderClipEditor:
    """Edits another system made: `<id>.mp4` in a folder (`FolderEditor`), each scored at its own size and
    frame rate against the source read to match (see the module docstring)."""

    def __init__(self, editor: FolderEditor) -> None:
        self.editor = editor

    def check(self, ids: Sequence[str]) -> None:
        self.editor.check(ids)

    def edit_clip(self, task: ClipTask) -> AlignedEdit:
        path = self.editor.path(task.id)
        try:
            edited = read(path)
        except VideoError as exc:
            raise _read_error("edit", path, exc) from exc
        try:
            source, notes = read_matching(task.source, edited)
        except (VideoError, ValueError) as exc:
            raise _read_error("source", task.source, exc) from exc
        count = min(source.num_frames, edited.num_frames)
        if edited.num_frames > count:
            notes.append(
                f"scored the first {count} of the edit's {edited.num_frames} frames: the source ends"
            )
        return AlignedEdit(
            Video(source.frames[:count], source.fps), Video(edited.frames[:count], edited.fps), notes
        )

    def describe(self) -> dict[str, Any]:
        return self.editor.describe()


def _read_error(what: str, path: Path, exc: Exception) -> ClipReadError:
    """'source PATH: reason', naming the path once: a VideoError's message begins with it already."""
    text = str(exc)
    return ClipReadError(f"{what} {text}" if text.startswith(f"{path}: ") else f"{what} {path}: {text}")


def read_matching(path: Path, edited: Video) -> tuple[Video, list[str]]:
    """The source's first frames on the edit's grid: at its frame rate (native when they agree within 0.1%),
    its size (cover, centre crop) and at most its frame count; with notes on what was resampled."""
    info = probe(path)
    same_rate = math.isclose(info.fps, edited.fps, rel_tol=1e-3)
    shape = (edited.height, edited.width)
    same_size = (info.height, info.width) == shape
    source = read(
        path,
        fps=None if same_rate else edited.fps,
        size=None if same_size else shape,
        max_frames=edited.num_frames,
    )
    notes = [] if same_rate else [f"source read at the edit's {edited.fps:g} fps (its own: {info.fps:g})"]
    if not same_size:
        notes.append(
            f"source resized from {info.width}x{info.height} to the edit's {edited.width}x{edited.height}"
        )
    return Video(source.frames, edited.fps), notes


def open_clip_editor(
    *,
    bundle: str | os.PathLike[str] | None = None,
    edits: str | os.PathLike[str] | None = None,
    ids: Sequence[str] = (),
    config: BundleEditConfig = BundleEditConfig(),
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    stretch: Stretch = Stretch(),
) -> BundleClipEditor | FolderClipEditor:
    """The editor of exactly one of a bundle (loaded onto `config.device`) or a folder of edits (all of `ids`
    checked present now). Settings that only a bundle can use are refused with a folder."""
    if (bundle is None) == (edits is None):
        given = "both" if bundle is not None else "neither"
        raise ValueError(
            f"give exactly one of a bundle (--model) or a folder of edited videos (--videos), got {given}"
        )
    if edits is not None:
        sampler = {
            k: v for k in ("steps", "guidance", "video_guidance") if (v := getattr(config, k)) is not None
        }
        sampler |= {k: v for k, v in (("frames", frames), ("size", size), ("seed", seed)) if v is not None}
        sampler |= stretch.describe()
        if sampler:
            raise ValueError(f"settings {sampler} apply to a bundle, not to a folder of edited videos")
        return FolderClipEditor(FolderEditor(edits, ids))
    if frames is not None:  # checked before minutes of loading
        check_int("frames", frames, minimum=1)
    seed = check_seed("seed", 0 if seed is None else seed)
    return BundleClipEditor(BundleEditor.from_pretrained(bundle, config), frames, size, seed, stretch)


# ---- the run -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipsConfig:
    edit_crf: int = 18  # x264 crf of edits/<id>.mp4: what `retake edit` writes
    gif_side: int = 384  # longest side of each source | edit GIF (0: no GIFs); not part of the run's identity
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if not 0 <= check_int("edit_crf", self.edit_crf) <= 51:
            raise ValueError(f"edit_crf must be in 0..51, got {self.edit_crf}")
        check_int("gif_side", self.gif_side, minimum=0)

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue this run."""
        return {k: v for k, v in asdict(self).items() if k != "gif_side"}


@dataclass
class ClipsResult:
    out_dir: Path
    header: dict[str, Any]  # run.json
    tasks: list[ClipTask]
    rows: list[dict[str, Any]]  # in task order, for the tasks done
    summary: dict[str, Any]  # `summarise(rows)`

    @property
    def complete(self) -> bool:
        return len(self.rows) == len(self.tasks)


def run_header(
    editor: ClipEditor, config: ClipsConfig, clip: ClipScorer | None, judge: VLMJudge | None
) -> dict[str, Any]:
    """run.json: what the scores depend on."""
    return {
        "format": FORMAT,
        "editor": editor.describe(),
        "judge": None if judge is None else judge.describe(),
        "clip": None if clip is None else clip_description(getattr(clip.model, "name_or_path", "")),
        "config": config.identity(),
    }


def clip_description(path: str | os.PathLike[str]) -> dict[str, str]:
    """The CLIP model as run.json names it: its directory, as given to `ClipScorer.from_pretrained`."""
    return {"path": str(path)}


def check_run_folder(out_dir: str | os.PathLike[str], settings: Mapping[str, Any] | None = None) -> Path:
    """Before any model loads: `out_dir` can be written and is empty or a run of `settings` (the run.json keys
    given, e.g. config, judge and clip; `run_clips` compares the editor too). Raises otherwise."""
    out_dir = Path(out_dir)
    files.check_output_file(out_dir / RUN_FILE)
    path = out_dir / RUN_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        changes = describe_changes(
            {k: old.get(k) for k in settings or {}}, files.as_read_back(settings or {})
        )
        if changes:
            raise RunMismatchError(
                f"{out_dir} holds a run with other settings ({'; '.join(changes)}); use a new output folder"
            )
    elif out_dir.is_dir() and set(out_dir.iterdir()) - set(files.temporaries_of(path)):
        raise FileExistsError(f"{out_dir} is not empty and holds no {RUN_FILE}; use a new output folder")
    return out_dir


def run_clips(
    tasks: Sequence[ClipTask],
    editor: ClipEditor,
    out_dir: str | os.PathLike[str],
    config: ClipsConfig = ClipsConfig(),
    *,
    clip: ClipScorer | None = None,
    judge: VLMJudge | None = None,
    progress: bool = True,
) -> ClipsResult:
    """Edit and score the tasks not yet in `out_dir` (see the module docstring). A VLMError of the judge
    propagates: the run stops, and a rerun asks again rather than keep a sample without its scores."""
    out_dir = Path(out_dir)
    header = run_header(editor, config, clip, judge)
    _start(out_dir, header)
    check = getattr(editor, "check", None)
    if check is not None:
        check([task.id for task in tasks])
    done = _scored_rows(out_dir / RESULTS_FILE, tasks)
    todo = [task for task in tasks if task.id not in done]
    label = f"scoring ({editor.describe().get('name', 'editor')})"
    with (out_dir / RESULTS_FILE).open("a") as results:
        for task in track(todo, description=label, disable=not progress):
            row = _run_task(task, editor, out_dir, config, clip, judge)
            results.write(json.dumps(row, allow_nan=False) + "\n")
            results.flush()
            done[task.id] = row
    rows = [done[task.id] for task in tasks if task.id in done]
    return ClipsResult(out_dir, header, list(tasks), rows, summarise(rows))


def _start(out_dir: Path, header: dict[str, Any]) -> None:
    """Write run.json, or check that the one there is of these settings; clear what killed writes left."""
    files.remove_temporaries_of(out_dir / RUN_FILE)
    check_run_folder(out_dir, header)
    if (out_dir / RUN_FILE).is_file():
        for folder in (out_dir, out_dir / EDITS_DIR, out_dir / GIFS_DIR):
            files.remove_leftovers(folder)
        return
    files.write_json(out_dir / RUN_FILE, header)


def _scored_rows(path: Path, tasks: Sequence[ClipTask]) -> dict[str, dict[str, Any]]:
    """The samples a rerun keeps, by id, once every task the folder holds a row of is checked to be the same
    task (else RunMismatchError, the file untouched). A failed sample is then dropped from the file and
    tried again: its error was a source or edit that could not be read, which the user may have fixed."""
    rows = read_rows(path)
    by_id = {row["id"]: row for row in rows}
    for task in tasks:
        if task.id in by_id:
            _check_same_task(by_id[task.id], task, path.parent)
    scored = [row for row in rows if "error" not in row]
    if len(scored) < len(rows):
        files.write_json_lines(path, scored)
    return {row["id"]: row for row in scored}


def _check_same_task(row: dict[str, Any], task: ClipTask, out_dir: Path) -> None:
    """A scored sample is reused only for the same source and instruction: an id whose task changed in the
    file would otherwise keep the old edit's scores."""
    changes = describe_changes(
        {"source": row["source"], "instruction": row["instruction"]},
        {"source": str(task.source), "instruction": task.instruction},
    )
    if changes:
        raise RunMismatchError(
            f"{out_dir} scored task {task.id!r} as another task ({'; '.join(changes)}); use a new output folder"
        )


def _run_task(
    task: ClipTask,
    editor: ClipEditor,
    out_dir: Path,
    config: ClipsConfig,
    clip: ClipScorer | None,
    judge: VLMJudge | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": task.id,
        "source": str(task.source),
        "instruction": task.instruction,
    }
    try:
        aligned = editor.edit_clip(task)
    except (ClipReadError, ShortEditError) as exc:
        return row | {"error": str(exc), "metrics": {}}
    source, edited = aligned.source, aligned.edited
    write(edited, out_dir / EDITS_DIR / f"{task.id}.mp4", crf=config.edit_crf)
    if config.gif_side:
        write_gif(
            side_by_side([source, edited]), out_dir / GIFS_DIR / f"{task.id}.gif", max_size=config.gif_side
        )
    metrics = evaluate_edit(source, edited, instruction=task.instruction, clip=clip, config=config.eval)
    row |= {
        "frames": edited.num_frames,
        "size": [edited.height, edited.width],
        "fps": edited.fps,
        "notes": aligned.notes + unscored_motion(metrics, source, config.eval.min_motion),
        "edit_seconds": aligned.edit_seconds,
    }
    if judge is not None:  # asked here, not through evaluate_edit, to keep the judge's reason with its scores
        judgement = judge.judge(source, edited, task.instruction)
        metrics |= judgement.as_metrics()
        row["judge"] = judgement.provenance()
    return row | {"metrics": {k: float(v) if math.isfinite(v) else None for k, v in metrics.items()}}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """n, errors, and per metric (and edit_seconds) the mean, median and count of the samples it applies to
    (a failed sample has none; a metric may not apply, e.g. motion on a still clip)."""
    names = sorted({name for row in rows for name in row["metrics"]})
    metrics = {name: _stats([row["metrics"].get(name) for row in rows]) for name in names}
    if any(row.get("edit_seconds") is not None for row in rows):
        metrics["edit_seconds"] = _stats([row.get("edit_seconds") for row in rows])
    return {"n": len(rows), "errors": sum("error" in row for row in rows), "metrics": metrics}


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    present = np.array([v for v in values if v is not None], dtype=float)
    if present.size == 0:
        return {"mean": None, "median": None, "n": 0}
    return {"mean": float(present.mean()), "median": float(np.median(present)), "n": int(present.size)}


# ---- report ------------------------------------------------------------------------------------------------


def build_report(result: ClipsResult) -> dict[str, Any]:
    """report.json's content: the run's settings, what each metric means, the summary and every sample."""
    return {
        "format": REPORT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "retake_version": __version__,
        "complete": result.complete,
        "tasks": len(result.tasks),
        **{key: result.header[key] for key in ("editor", "judge", "clip", "config")},
        "metrics": {name: metric_info(name) for name in result.summary["metrics"]},
        "summary": result.summary,
        "samples": result.rows,
    }


def write_clips_report(result: ClipsResult) -> Path:
    """report.json and index.html in the run's folder, beside the GIFs the page shows; returns the page."""
    out = result.out_dir
    report = build_report(result)
    gifs = (f"{GIFS_DIR}/{row['id']}.gif" for row in result.rows)
    report["files"] = {"gifs": [gif for gif in gifs if (result.out_dir / gif).is_file()]}
    files.write_json(out / REPORT_JSON, report, allow_nan=False)
    files.write_text(out / REPORT_HTML, render_html(report))
    return out / REPORT_HTML


def render_html(report: dict[str, Any]) -> str:
    """The run's page: what was run, each metric's mean and median, every sample with its GIF."""
    name = str(report["editor"].get("name", "editor"))
    summary = report["summary"]
    partial = "" if report["complete"] else " (partial run)"
    stats = [
        [
            f"{html.escape(metric)} {html_arrow(metric)}",
            html.escape(info["description"]),
            *(html_number(summary["metrics"][metric][k], metric) for k in ("mean", "median")),
            str(summary["metrics"][metric]["n"]),
        ]
        for metric, info in report["metrics"].items()
    ]
    body = [
        f"<p>Editor <b>{html.escape(name)}</b>: {summary['n']} of {report['tasks']} tasks scored{partial}, "
        f"{summary['errors']} failed; no ground truth (scores against the source). retake "
        f"{report['retake_version']}, {report['created']}.</p>",
        "<h2>Summary</h2>",
        html_table(["metric", "meaning", "mean", "median", "n"], stats, left=2),
        _samples_html(report),
        "<h2>Setup</h2>",
        *(
            f"<h3>{key}</h3><pre>{html.escape(json.dumps(report[key], indent=1))}</pre>"
            for key in ("editor", "config", "clip")
        ),
        _judge_html(report["judge"]),
    ]
    return html_page(f"retake eval clips: {name}", body)


def _samples_html(report: dict[str, Any]) -> str:
    columns = [c for c in COLUMNS if c in report["metrics"]]
    gifs = set(report["files"]["gifs"])  # beside the page, named by id
    rows = []
    for row in report["samples"]:
        if "error" in row:
            cells = [
                "",
                f'<span class="bad">failed: {html.escape(row["error"])}</span>',
                *[""] * len(columns),
            ]
        else:
            gif = f"{GIFS_DIR}/{row['id']}.gif"
            image = f'<img src="{html.escape(gif)}" alt="{html.escape(row["id"])}">' if gif in gifs else ""
            notes = html.escape("; ".join(row.get("notes", [])))
            cells = [image, notes, *(html_number(row["metrics"].get(c), c) for c in columns)]
        rows.append([html.escape(row["id"]), html.escape(row["instruction"]), *cells])
    header = ["id", "instruction", "source | edit", "notes", *(f"{c} {html_arrow(c)}" for c in columns)]
    return f"<h2>Every sample</h2>{html_table(header, rows, left=4)}"


def _judge_html(judge: dict[str, Any] | None) -> str:
    if judge is None:
        return "<p>No VLM judge was used.</p>"
    return (
        f"<h3>VLM judge</h3><p>model <code>{html.escape(judge['model'])}</code>, prompt hash "
        f"<code>{judge['prompt_hash']}</code>, {html.escape(judge['scale'])}</p>"
    )


def summary_table(summary: dict[str, Any]) -> Table:
    """Each metric's mean, median and count, for the terminal."""
    table = Table(
        "metric", "mean", "median", "n", title=f"{summary['n']} samples, {summary['errors']} failed"
    )
    for name, stats in summary["metrics"].items():
        table.add_row(
            f"{name} {html_arrow(name)}",
            html_number(stats["mean"], name),
            html_number(stats["median"], name),
            str(stats["n"]),
        )
    return table
