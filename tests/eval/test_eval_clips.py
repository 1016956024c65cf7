"""`retake eval clips`: task files, scoring real clips without ground truth (bundles and folders of edits),
resuming, refusing changed settings, failed sources, the report and the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from retake.cli import main
from retake.eval.clip_score import ClipScores
from retake.eval.clips import (
    RESULTS_FILE,
    RUN_FILE,
    AlignedEdit,
    BundleClipEditor,
    ClipsConfig,
    ClipTask,
    FolderClipEditor,
    Stretch,
    open_clip_editor,
    read_tasks,
    run_clips,
    write_clips_report,
)
from retake.eval.editors import FolderEditor, MissingEditsError
from retake.eval.runner import RunMismatchError
from retake.eval.vlm_judge import Judgement
from retake.video import Video, read, write

NO_REFERENCE = ("psnr", "ssim", "preservation_psnr", "preservation_ssim")


def write_tasks(path: Path, tasks: list[dict]) -> Path:
    path.write_text("".join(json.dumps(task) + "\n" for task in tasks))
    return path


@pytest.fixture(scope="module")
def sources(shared_videos: Path, tmp_path_factory) -> Path:
    """Three real clips made small (9 frames) so that flow and encoding take milliseconds; one is not
    square."""
    folder = tmp_path_factory.mktemp("clips") / "sources"
    folder.mkdir()
    for name, size in (
        ("anyv2v_man-walking", (64, 64)),
        ("tokenflow_wolf", (64, 64)),
        ("icve_kid", (48, 80)),
    ):
        write(read(shared_videos / f"{name}.mp4", size=size, max_frames=9), folder / f"{name}.mp4")
    return folder


@pytest.fixture(scope="module")
def task_file(sources: Path) -> Path:
    """Sources relative to the task file's folder; the first task has its own id, the others default."""
    return write_tasks(
        sources.parent / "tasks.jsonl",
        [
            {"id": "walk", "source": "sources/anyv2v_man-walking.mp4", "instruction": "give him a hat"},
            {"source": "sources/tokenflow_wolf.mp4", "instruction": "turn the wolf into a fox"},
            {"source": "sources/icve_kid.mp4", "instruction": "make it snow"},
        ],
    )


@pytest.fixture(scope="module")
def identity_edits(task_file: Path, tmp_path_factory) -> Path:
    """A folder of 'edits' that are the sources themselves: the null editor."""
    folder = tmp_path_factory.mktemp("identity") / "edits"
    folder.mkdir()
    for task in read_tasks(task_file):
        shutil.copy(task.source, folder / f"{task.id}.mp4")
    return folder


@pytest.fixture(scope="module")
def identity_run(task_file, identity_edits):
    tasks = read_tasks(task_file)
    editor = FolderClipEditor(FolderEditor(identity_edits))
    return run_clips(tasks, editor, identity_edits.parent / "run", progress=False)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A saved tiny random ICVE-style bundle: 2 steps, 5 frames of 32x32 by default."""
    from retake.model import build_transformer
    from retake.model.text import load_text_encoder
    from retake.model.vae import VideoVAE
    from retake.sample import EditConfig, EditPipeline
    from tiny_models import tiny_vae_model

    transformer = build_transformer("tiny", seed=0, text_embed_dim=384, pooled_projection_dim=384)
    defaults = EditConfig(steps=2, shift=3.0, text_scale=3.0, frames=5, height=32, width=32)
    pipeline = EditPipeline(
        transformer, VideoVAE(tiny_vae_model(), tiling=None), load_text_encoder("minilm"), defaults
    )
    return pipeline.save_pretrained(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture(scope="module")
def bundle_editor(tiny_bundle):
    return open_clip_editor(bundle=tiny_bundle, seed=3)


class Counting:
    """A clip editor that counts its edits."""

    def __init__(self, editor) -> None:
        self.editor, self.ids = editor, []

    def edit_clip(self, task: ClipTask) -> AlignedEdit:
        self.ids.append(task.id)
        return self.editor.edit_clip(task)

    def describe(self) -> dict:
        return self.editor.describe()


class FakeClip:
    model = SimpleNamespace(name_or_path="/models/fake-clip")

    def scores(self, video, text=None) -> ClipScores:
        return ClipScores(text_frame=0.25 if text else None, frame_frame=0.75)


class FakeJudge:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def describe(self) -> dict:
        return {"model": "fake-vlm", "prompt_hash": "abc", "scale": "0-3 per criterion, total 9"}

    def judge(self, source, edited, instruction) -> Judgement:
        self.asked.append(instruction)
        return Judgement(3, 2, 1, "looks fine", 0.0, False, "fake-vlm", "abc")


# ---- task files --------------------------------------------------------------------------------------------


def test_tasks_resolve_sources_from_the_task_files_folder_and_default_their_ids(task_file, sources):
    tasks = read_tasks(task_file)
    assert [t.id for t in tasks] == ["walk", "tokenflow_wolf", "icve_kid"]
    assert tasks[1].source == sources / "tokenflow_wolf.mp4" and tasks[1].source.is_absolute()
    assert tasks[2].instruction == "make it snow"


def test_ids_get_a_counter_when_stems_are_shared_or_taken(sources, tmp_path):
    wolf, kid = str(sources / "tokenflow_wolf.mp4"), str(sources / "icve_kid.mp4")  # absolute sources
    path = write_tasks(
        tmp_path / "t.jsonl",
        [
            {"source": wolf, "instruction": "a"},
            {"id": "icve_kid", "source": wolf, "instruction": "b"},
            {"source": wolf, "instruction": "c"},
            {"source": kid, "instruction": "d"},
        ],
    )
    path.write_text(path.read_text() + "\n")  # a blank line is skipped
    assert [t.id for t in read_tasks(path)] == [
        "tokenflow_wolf-1",
        "icve_kid",
        "tokenflow_wolf-2",
        "icve_kid-1",
    ]


def test_ids_that_differ_only_in_case_are_one_file_name(sources, tmp_path):
    # edits/Kid.mp4 and edits/kid.mp4 are one file on case-insensitive disks: derived ids get a counter.
    upper = tmp_path / "upper" / "Icve_Kid.mp4"
    upper.parent.mkdir()
    shutil.copy(sources / "icve_kid.mp4", upper)
    kid = str(sources / "icve_kid.mp4")
    path = write_tasks(
        tmp_path / "t.jsonl",
        [{"source": str(upper), "instruction": "a"}, {"source": kid, "instruction": "b"}],
    )
    assert [t.id for t in read_tasks(path)] == ["Icve_Kid-1", "icve_kid-2"]
    path = write_tasks(
        tmp_path / "t.jsonl",
        [{"id": "ICVE_KID", "source": kid, "instruction": "a"}, {"source": kid, "instruction": "b"}],
    )
    assert [t.id for t in read_tasks(path)] == ["ICVE_KID", "icve_kid-1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"source": "sources/icve_kid.mp4"}', r":2: no 'instruction'"),
        (
            '{"source": "sources/icve_kid.mp4", "instruction": "  "}',
            r":2: instruction must be a non-empty .*'  '",
        ),
        (
            '{"id": "a", "source": "sources/icve_kid.mp4", "instruction": "x"}',
            r":2: id 'a' is already used on line 1",
        ),
        (
            '{"id": "A", "source": "sources/icve_kid.mp4", "instruction": "x"}',
            r":2: id 'A' is already used on line 1 as 'a' \(ids name files",
        ),
        ('{"source": "sources/nope.mp4", "instruction": "x"}', r":2: source 'sources/nope.mp4' not found"),
        ('{"source": "sources", "instruction": "x"}', r":2: source 'sources' is a folder"),
        (
            '{"id": "../up", "source": "sources/icve_kid.mp4", "instruction": "x"}',
            r":2: id '../up' is not a safe",
        ),
        ('{"source": "sources/icve_kid.mp4", "instrution": "x"}', r":2: unknown keys \['instrution'\]"),
        ('{"source": "sources/icve_kid.mp4", "instruction": "x",}', r":2: not JSON"),
        ('["sources/icve_kid.mp4", "x"]', r":2: a task is a JSON object"),
    ],
)
def test_bad_task_lines_are_value_errors_naming_the_line(sources, line, message):
    path = sources.parent / "bad.jsonl"
    path.write_text('{"id": "a", "source": "sources/tokenflow_wolf.mp4", "instruction": "x"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"bad\.jsonl{message}"):
        read_tasks(path)


def test_an_empty_task_file_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="holds no tasks"):
        read_tasks(tmp_path / "empty.jsonl")


# ---- scoring -----------------------------------------------------------------------------------------------


def test_an_identity_edit_scores_exactly_as_its_source(identity_run):
    assert identity_run.complete and identity_run.summary["errors"] == 0
    for row in identity_run.rows:
        metrics = row["metrics"]
        assert metrics["warp_error"] == metrics["source_warp_error"] > 0
        assert metrics["flicker"] == metrics["source_flicker"]
        assert metrics["motion_epe"] == 0.0 and row["notes"] == [] and row["frames"] == 9
        assert not set(NO_REFERENCE) & set(metrics), "no reference and no mask: those metrics cannot exist"
        assert not any(name.startswith(("clip_", "vlm_")) for name in metrics)  # no scorer, no judge
    assert identity_run.rows[2]["size"] == [48, 80]  # scored at the clip's own size


def test_a_source_without_motion_says_why_motion_is_not_scored(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    still = write(Video(np.stack([frame] * 9), 8.0), tmp_path / "still.mp4")
    (tmp_path / "edits").mkdir()
    shutil.copy(still, tmp_path / "edits" / "still.mp4")
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", [{"source": "still.mp4", "instruction": "x"}]))
    run = run_clips(
        tasks, FolderClipEditor(FolderEditor(tmp_path / "edits")), tmp_path / "run", progress=False
    )
    (row,) = run.rows
    assert row["metrics"]["motion_epe"] is None and row["metrics"]["warp_error"] is not None
    assert row["notes"] == [
        "motion not scored: nothing in the source moves 0.5 px per frame at 32x48 (HxW; a still clip, or a size "
        "too small to see its motion)"
    ]


def test_the_summary_holds_mean_median_and_count_per_metric(identity_run):
    values = [row["metrics"]["warp_error"] for row in identity_run.rows]
    stats = identity_run.summary["metrics"]["warp_error"]
    assert stats == {
        "mean": pytest.approx(np.mean(values)),
        "median": pytest.approx(np.median(values)),
        "n": 3,
    }
    assert "edit_seconds" not in identity_run.summary["metrics"]  # edits made elsewhere are not timed


def test_the_report_has_every_sample_with_its_gif(identity_run):
    page = write_clips_report(identity_run)
    report = json.loads(page.with_name("report.json").read_text())
    assert report["summary"] == identity_run.summary and len(report["samples"]) == 3
    assert report["metrics"]["warp_error"]["higher_is_better"] is False
    text = page.read_text()
    for task in identity_run.tasks:
        assert f'src="gifs/{task.id}.gif"' in text and (page.parent / "gifs" / f"{task.id}.gif").is_file()
        assert read(page.parent / "edits" / f"{task.id}.mp4").num_frames == 9


def test_a_folder_edit_of_another_size_rate_and_length_is_scored_on_its_grid(task_file, tmp_path):
    """The edit (4 fps, 32x48, longer than the source) sets the grid; the source is read to match."""
    task = read_tasks(task_file)[0]
    source = read(task.source)  # 9 frames at 8 fps
    slow = read(task.source, fps=source.fps / 2, size=(32, 48))  # 5 frames at 4 fps, cropped to 32x48
    longer = Video(np.concatenate([slow.frames, slow.frames[::-1]]), slow.fps)
    (tmp_path / "edits").mkdir()
    write(longer, tmp_path / "edits" / "walk.mp4", crf=0)
    result = run_clips(
        [task], FolderClipEditor(FolderEditor(tmp_path / "edits")), tmp_path / "run", progress=False
    )
    row = result.rows[0]
    assert (row["frames"], row["size"], row["fps"]) == (5, [32, 48], 4.0)
    assert any("4 fps" in note for note in row["notes"]) and any(
        "64x64 to the edit's 48x32" in n for n in row["notes"]
    )
    assert any("first 5 of the edit's 10 frames" in note for note in row["notes"])
    # The same frames but for the encoding: as far from its own source as an identity edit.
    assert row["metrics"]["warp_error"] == pytest.approx(row["metrics"]["source_warp_error"], abs=1.0)


def test_clip_and_judge_scores_are_added_when_given(task_file, identity_edits, tmp_path):
    judge = FakeJudge()
    tasks = read_tasks(task_file)[:2]
    editor = FolderClipEditor(FolderEditor(identity_edits))
    result = run_clips(tasks, editor, tmp_path / "run", clip=FakeClip(), judge=judge, progress=False)
    metrics = result.rows[0]["metrics"]
    assert metrics["clip_text_frame"] == 0.25 and metrics["clip_frame_frame"] == 0.75
    assert (metrics["vlm_instruction"], metrics["vlm_total"]) == (3.0, 6.0)
    assert result.rows[0]["judge"]["reason"] == "looks fine" and judge.asked == [t.instruction for t in tasks]
    assert (
        result.header["clip"] == {"path": "/models/fake-clip"}
        and result.header["judge"]["model"] == "fake-vlm"
    )


def test_a_bundle_edits_as_retake_edit_does(bundle_editor, task_file, tmp_path):
    """The same frames, size and seed as `edit_file`: the saved edit is exactly what `retake edit` writes."""
    from retake.sample import edit_file

    tasks = read_tasks(task_file)
    result = run_clips(tasks, bundle_editor, tmp_path / "run", progress=False)
    row = result.rows[2]  # the 48x80 clip: edited at about the bundle's area in its shape
    assert row["frames"] == 5 and row["edit_seconds"] > 0 and row["size"][1] > row["size"][0]
    assert result.header["editor"]["seed"] == 3 and result.header["editor"]["type"] == "bundle"
    pipeline = bundle_editor.editor.pipeline
    written = edit_file(
        pipeline, tasks[2].source, tmp_path / "edit.mp4", tasks[2].instruction, seed=3, progress=False
    )
    assert written.read_bytes() == (tmp_path / "run" / "edits" / "icve_kid.mp4").read_bytes()


def test_unreadable_sources_fail_their_samples_and_the_run_goes_on(bundle_editor, sources, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    write(read(sources / "icve_kid.mp4", max_frames=3), tmp_path / "short.mp4")  # below the 5 asked
    good = ClipTask("good", sources / "tokenflow_wolf.mp4", "make it red")
    tasks = [
        ClipTask("broken", tmp_path / "broken.mp4", "x"),
        good,
        ClipTask("short", tmp_path / "short.mp4", "x"),
    ]
    editor = BundleClipEditor(bundle_editor.editor, frames=5)
    result = run_clips(tasks, editor, tmp_path / "run", progress=False)
    broken, scored, short = result.rows
    assert broken["error"].startswith(f"source {tmp_path / 'broken.mp4'}") and broken["metrics"] == {}
    assert "frames=5 is more than the source's 3 frames" in short["error"]
    assert "error" not in scored and scored["metrics"]["warp_error"] >= 0
    assert result.summary["errors"] == 2 and result.summary["metrics"]["warp_error"]["n"] == 1
    assert "failed: source" in write_clips_report(result).read_text()


# ---- resuming ----------------------------------------------------------------------------------------------


def test_a_rerun_scores_only_what_is_missing(task_file, identity_edits, tmp_path):
    tasks = read_tasks(task_file)
    first = Counting(FolderClipEditor(FolderEditor(identity_edits)))
    run_clips(tasks[:2], first, tmp_path / "run", progress=False)
    results = tmp_path / "run" / RESULTS_FILE
    text = results.read_text()
    results.write_text(text[: text.rindex("\n", 0, -1) + 40])  # the second line cut short, as by a kill
    again = Counting(FolderClipEditor(FolderEditor(identity_edits)))
    result = run_clips(tasks, again, tmp_path / "run", progress=False)
    assert first.ids == ["walk", "tokenflow_wolf"] and again.ids == ["tokenflow_wolf", "icve_kid"]
    assert result.complete and [r["id"] for r in result.rows] == ["walk", "tokenflow_wolf", "icve_kid"]
    assert len(results.read_text().splitlines()) == 3
    done = Counting(FolderClipEditor(FolderEditor(identity_edits)))
    assert run_clips(tasks, done, tmp_path / "run", progress=False).rows == result.rows and done.ids == []


def test_a_rerun_tries_failed_samples_again(task_file, identity_edits, sources, tmp_path):
    # A source that could not be read may be fixed (a download finished, a path put right): its sample is
    # tried again, and the file keeps one line per sample.
    walk = read_tasks(task_file)[0]
    source = tmp_path / "walk.mp4"
    source.write_bytes(b"half a download")
    tasks = [ClipTask("walk", source, walk.instruction)]
    editor = Counting(FolderClipEditor(FolderEditor(identity_edits)))
    assert "error" in run_clips(tasks, editor, tmp_path / "run", progress=False).rows[0]
    shutil.copy(walk.source, source)
    result = run_clips(tasks, editor, tmp_path / "run", progress=False)
    assert editor.ids == ["walk", "walk"] and "error" not in result.rows[0]
    assert result.summary["errors"] == 0 and result.rows[0]["metrics"]["warp_error"] >= 0
    assert [json.loads(line) for line in (tmp_path / "run" / RESULTS_FILE).read_text().splitlines()] == [
        result.rows[0]
    ]


def test_a_refused_rerun_keeps_the_failed_samples_on_record(task_file, identity_edits, tmp_path):
    walk = read_tasks(task_file)[0]
    (tmp_path / "walk.mp4").write_bytes(b"half a download")
    editor = FolderClipEditor(FolderEditor(identity_edits))
    run_clips(
        [ClipTask("walk", tmp_path / "walk.mp4", walk.instruction)], editor, tmp_path / "run", progress=False
    )
    before = (tmp_path / "run" / RESULTS_FILE).read_text()
    changed = [ClipTask("walk", tmp_path / "walk.mp4", "paint it blue")]
    with pytest.raises(RunMismatchError, match=r"as another task \(instruction: "):
        run_clips(changed, editor, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / RESULTS_FILE).read_text() == before and '"error"' in before


def test_a_rerun_with_other_settings_is_refused_naming_them(task_file, identity_edits, tmp_path):
    tasks = read_tasks(task_file)[:1]
    editor = FolderClipEditor(FolderEditor(identity_edits))
    run_clips(tasks, editor, tmp_path / "run", progress=False)
    with pytest.raises(RunMismatchError, match=r"other settings \(config\.edit_crf: 18 -> 0\)"):
        run_clips(tasks, editor, tmp_path / "run", ClipsConfig(edit_crf=0), progress=False)
    with pytest.raises(RunMismatchError, match=r"clip\.path: None -> '/models/fake-clip'"):
        run_clips(tasks, editor, tmp_path / "run", clip=FakeClip(), progress=False)
    changed = [ClipTask(tasks[0].id, tasks[0].source, "paint it blue")]
    with pytest.raises(
        RunMismatchError, match=r"task 'walk' as another task \(instruction: 'give him a hat' -> 'paint"
    ):
        run_clips(changed, editor, tmp_path / "run", progress=False)


def test_a_folder_missing_edits_is_refused_before_any_edit(task_file, identity_edits, tmp_path):
    shutil.copytree(identity_edits, tmp_path / "edits")
    (tmp_path / "edits" / "icve_kid.mp4").unlink()
    with pytest.raises(MissingEditsError, match=r"1 of 3 edited videos are missing .*: icve_kid$"):
        open_clip_editor(edits=tmp_path / "edits", ids=[t.id for t in read_tasks(task_file)])


def test_sampler_settings_are_refused_with_a_folder(identity_edits):
    with pytest.raises(ValueError, match=r"settings \{'frames': 5, 'seed': 1\} apply to a bundle"):
        open_clip_editor(edits=identity_edits, frames=5, seed=1)


# ---- the command -------------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of `retake eval clips ARGS`."""
    try:
        main(["eval", "clips", *map(str, args), "--no-progress"])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err.strip()


def one_line_error(code: int, err: str) -> str:
    assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def test_the_command_scores_a_folder_and_resumes(capsys, task_file, identity_edits, tmp_path):
    code, err = run_cli(capsys, task_file, "-o", tmp_path / "run", "--videos", identity_edits)
    assert code == 0 and "wrote" in err and (tmp_path / "run" / "index.html").is_file()
    rows = (tmp_path / "run" / RESULTS_FILE).read_text()
    assert run_cli(capsys, task_file, "-o", tmp_path / "run", "--videos", identity_edits)[0] == 0
    assert (tmp_path / "run" / RESULTS_FILE).read_text() == rows  # nothing scored twice


def test_the_command_runs_a_bundle_and_refuses_another_seed(capsys, task_file, tiny_bundle, tmp_path):
    args = (task_file, "-o", tmp_path / "run", "--model", tiny_bundle, "--size", "32", "--steps", "1")
    code, err = run_cli(capsys, *args, "--seed", "2")
    assert code == 0, err
    header = json.loads((tmp_path / "run" / RUN_FILE).read_text())
    assert header["editor"]["overrides"]["steps"] == 1 and header["editor"]["size"] == [32, 32]
    err = one_line_error(*run_cli(capsys, *args, "--seed", "4"))
    assert "editor.seed: 2 -> 4" in err


def test_the_command_adds_clip_scores_from_a_local_directory(
    capsys, task_file, identity_edits, tiny_clip, tmp_path
):
    args = (task_file, "-o", tmp_path / "run", "--videos", identity_edits, "--clip", tiny_clip)
    assert run_cli(capsys, *args)[0] == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["clip"] == {"path": str(tiny_clip)}
    assert all(-1 <= row["metrics"]["clip_text_frame"] <= 1 for row in report["samples"])
    assert run_cli(capsys, *args)[0] == 0  # the same CLIP directory: the run is the same
    err = one_line_error(*run_cli(capsys, task_file, "-o", tmp_path / "run", "--videos", identity_edits))
    assert f"clip.path: '{tiny_clip}' -> None" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--videos", "EDITS", "--model", "EDITS"), "exactly one of a bundle (--model) or a folder"),
        ((), "exactly one of a bundle (--model) or a folder of edited videos (--videos), got neither"),
        (("--videos", "EDITS", "--frames", "5"), "settings {'frames': 5} apply to a bundle"),
        (("--videos", "EDITS", "--clip", "nowhere"), "CLIP directory not found"),
        (("--videos", "EDITS", "--size", "big"), "size must look like HEIGHTxWIDTH"),
        (("--videos", "EDITS", "--duration", "all"), "settings {'duration': inf} apply to a bundle"),
        (("--videos", "EDITS", "--duration", "soon"), "--duration must be seconds or 'all', got 'soon'"),
        (("--videos", "EDITS", "--overlap", "5"), "overlap=5 needs a duration"),
        (("--model", "BUNDLE", "--duration", "all", "--overlap", "3"), "overlap must be 0 or 4m + 1"),
    ],
)
def test_bad_options_are_one_line_errors(
    capsys, task_file, identity_edits, tiny_bundle, tmp_path, monkeypatch, extra, message
):
    from retake.sample import EditPipeline

    monkeypatch.setattr(EditPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loaded the bundle"))
    paths = {"EDITS": str(identity_edits), "BUNDLE": str(tiny_bundle)}
    extra = [paths.get(arg, arg) for arg in extra]
    err = one_line_error(*run_cli(capsys, task_file, "-o", tmp_path / "run", *extra))
    assert message in err


def test_cheap_checks_come_before_the_model_loads(capsys, task_file, sources, tmp_path):
    """A bad task line, or an output folder of something else, is reported: the bundle, which does not exist,
    is never loaded."""
    bad = sources.parent / "typo.jsonl"
    bad.write_text('{"source": "sources/icve_kid.mp4", "instuction": "x"}\n')
    err = one_line_error(*run_cli(capsys, bad, "-o", tmp_path / "run", "--model", tmp_path / "no-bundle"))
    assert "typo.jsonl:1: unknown keys ['instuction']" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    err = one_line_error(
        *run_cli(capsys, task_file, "-o", tmp_path / "taken", "--model", tmp_path / "no-bundle")
    )
    assert "is not empty and holds no run.json" in err


def test_a_bundle_edits_a_whole_stretch_in_passes_as_retake_edit_does(tiny_bundle, task_file, tmp_path):
    """--duration/--fps/--start as `retake edit` takes them: every frame of the stretch, in passes."""
    import math

    from retake.sample import edit_file

    stretch = Stretch(fps=8, start=0.125, duration=math.inf, overlap=1)
    editor = open_clip_editor(bundle=tiny_bundle, seed=3, stretch=stretch)
    tasks = read_tasks(task_file)
    result = run_clips(tasks[:1], editor, tmp_path / "run", progress=False)
    row = result.rows[0]
    assert row["frames"] == 8  # 9 frames at 8 fps from the second: two 5-frame passes, the last padded
    assert result.header["editor"]["duration"] == math.inf and result.header["editor"]["start"] == 0.125
    pipeline = editor.editor.pipeline
    options = dict(seed=3, fps=8, start=0.125, duration=math.inf, overlap=1, progress=False)
    written = edit_file(pipeline, tasks[0].source, tmp_path / "edit.mp4", tasks[0].instruction, **options)
    assert written.read_bytes() == (tmp_path / "run" / "edits" / "walk.mp4").read_bytes()


def test_a_stretch_names_every_setting_off_its_default():
    import math

    assert Stretch().describe() == {}
    assert Stretch(duration=math.inf, overlap=0).describe() == {"duration": math.inf, "overlap": 0}
    assert Stretch(duration=1.0).describe() != Stretch(duration=1.0, overlap=0).describe()


def test_a_stretch_is_refused_with_a_folder_and_checked_before_loading(identity_edits, tiny_bundle):
    with pytest.raises(ValueError, match="apply to a bundle, not to a folder"):
        open_clip_editor(edits=identity_edits, stretch=Stretch(duration=2.0))
    with pytest.raises(ValueError, match="overlap=5 needs a duration"):
        Stretch(overlap=5)
    with pytest.raises(ValueError, match="duration must be > 0"):
        Stretch(duration=-1.0)
    with pytest.raises(ValueError, match="overlap must be 0 or 4m \\+ 1 frames"):
        open_clip_editor(bundle=tiny_bundle, stretch=Stretch(duration=1.0, overlap=2))


def test_a_bundle_loads_in_the_dtype_asked_and_run_json_says_so(tiny_bundle):
    import torch

    from retake.eval.editors import BundleEditConfig

    editor = open_clip_editor(bundle=tiny_bundle, config=BundleEditConfig(dtype="bfloat16"))
    assert editor.editor.pipeline.dtype == torch.bfloat16
    assert editor.describe()["overrides"]["dtype"] == "bfloat16"
    assert "dtype" not in open_clip_editor(bundle=tiny_bundle).describe()["overrides"]  # float32 by default
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype name"):
        open_clip_editor(bundle=tiny_bundle, config=BundleEditConfig(dtype="int8"))
