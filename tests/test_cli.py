"""The `retake` command's contract: --help everywhere, one-line errors with exit code 2, tracebacks only with
--debug."""

from __future__ import annotations

import pytest
import typer

from retake.cli import app, main


def _command_paths(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click classes)
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def test_the_main_subcommands_exist():
    names = {" ".join(p) for p in COMMANDS}
    for expected in (
        "flatland footage",
        "flatland pairs",
        "convert icve",
        "curate",
        "edit",
        "bundle",
        "eval run",
    ):
        assert expected in names, f"missing subcommand {expected!r}; have {sorted(names)}"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "retake")
def test_every_command_has_help(path, capsys):
    try:
        main([*path, "--help"])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    out = capsys.readouterr().out
    assert "Usage" in out and "--help" in out


def test_bad_input_is_one_red_line_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "icve", str(missing), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope.safetensors" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises((FileNotFoundError, ValueError, OSError)):
        main(["--debug", "convert", "icve", str(missing), str(tmp_path / "out")])


def test_usage_errors_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["edit"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Missing argument" in err and "Traceback" not in err


def test_no_progress_also_hides_the_model_libraries_loading_bars(tmp_path, capfd):
    from retake.demo import CLIPS, EDITOR

    source = str(CLIPS / "recolour.source.mp4")
    out = tmp_path / "e.mp4"
    main(
        [
            "edit",
            source,
            "make it red",
            "-o",
            str(out),
            "--model",
            str(EDITOR),
            "--steps",
            "1",
            "--frames",
            "5",
            "--no-progress",
        ]
    )
    captured = capfd.readouterr()
    assert out.is_file() and "Loading weights" not in captured.err + captured.out


def _demo_raising(monkeypatch, exc: BaseException) -> None:
    import retake.demo

    def run_demo(*args, **kwargs):
        raise exc

    monkeypatch.setattr(retake.demo, "run_demo", run_demo)


def test_ctrl_c_exits_130_not_0(tmp_path, monkeypatch, capsys):
    _demo_raising(monkeypatch, KeyboardInterrupt())
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", str(tmp_path / "out")])
    assert exit_info.value.code == 130 and "aborted" in capsys.readouterr().err


def test_what_the_machine_refuses_is_one_line(tmp_path, monkeypatch, capsys):
    _demo_raising(monkeypatch, OSError(30, "Read-only file system", str(tmp_path / "out")))
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: [Errno 30] Read-only file system")
    assert len(err.splitlines()) == 1


def test_every_sampling_command_names_the_guidance_scales_alike():
    """`--guidance` as EditPipeline.edit says it, with `--cfg` (what `retake edit` first shipped) an alias."""
    names = {"guidance": {"--guidance", "--cfg"}, "video_guidance": {"--video-guidance", "--video-cfg"}}
    sampling = []
    for path in COMMANDS:
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        for param in getattr(command, "params", []):
            if param.name in names:
                assert set(param.opts) == names[param.name], (path, param.opts)
                sampling.append(" ".join(path))
    assert {"edit", "eval run", "eval probe", "eval clips"} <= set(sampling)


@pytest.mark.parametrize("flags", [("--cfg", "--video-cfg"), ("--guidance", "--video-guidance")])
def test_edit_passes_either_guidance_name_to_the_pipeline(flags, tmp_path, monkeypatch):
    from retake.demo import CLIPS, EDITOR
    from retake.sample.pipeline import EditPipeline

    seen = {}

    def edit(self, video, instruction, **options):
        seen.update(options)
        return video

    monkeypatch.setattr(EditPipeline, "edit", edit)
    source = CLIPS / "recolour.source.mp4"
    text, video = flags
    out = tmp_path / "out.mp4"
    main(
        [
            "edit",
            str(source),
            "x",
            "-o",
            str(out),
            "--model",
            str(EDITOR),
            "--no-progress",
            text,
            "3.5",
            video,
            "1.5",
        ]
    )
    assert (seen["guidance"], seen["video_guidance"]) == (3.5, 1.5)
