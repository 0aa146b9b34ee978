"""Options that several subcommands share, declared once so their flags and help agree."""

from __future__ import annotations

import click

ROOT_HELP = "Workspace folder (default: $RSMISS_ROOT, else ./rsmiss-data)."

# click builds a fresh Option each time a decorator is applied, so one decorator serves all.
root_option = click.option("--root", type=click.Path(file_okay=False), default=None, help=ROOT_HELP)
