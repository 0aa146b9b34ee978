"""Options that several subcommands share, declared once so their flags and help agree."""

from __future__ import annotations

import sys

import click

ROOT_HELP = "Workspace folder (default: $RSMISS_ROOT, else ./rsmiss-data)."

# click builds a fresh Option each time a decorator is applied, so one decorator serves all.
root_option = click.option("--root", type=click.Path(file_okay=False), default=None, help=ROOT_HELP)

# Bars redraw one line with carriage returns: on a terminal that is a bar, in a log file it is
# thousands of frames. Default (None): bars only when stderr is a terminal.
progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: only when stderr is a terminal; training then logs one "
    "line per epoch instead).",
)


def show_progress(progress: bool | None) -> bool:
    """``--progress``/``--no-progress`` as given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress
