"""The `retake` command. Parses arguments, builds configs and calls library functions; nothing below this
module sees typer or argparse objects.

Each subcommand group lives in its own section below. Errors a user can cause (RetakeError, ValueError,
FileNotFoundError) are printed as one red line with exit code 2; `retake --debug ...` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from retake.errors import RetakeError

app = typer.Typer(
    name="retake",
    help="Instruction-based video editing: build data, train, edit, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


# ----------------------------------------------------------------------------------------------------------
# flatland
# ----------------------------------------------------------------------------------------------------------
flatland_app = typer.Typer(help="The synthetic Flatland world: raw footage and paired edits.", no_args_is_help=True)
app.add_typer(flatland_app, name="flatland")


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------
USER_ERRORS = (RetakeError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning user errors into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, standalone_mode=False)
    except USER_ERRORS as exc:
        if "--debug" in args:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        console.print("[red]aborted[/]")
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


def _path_arg(p: Path) -> Path:
    return Path(p).expanduser()


if __name__ == "__main__":
    main()
