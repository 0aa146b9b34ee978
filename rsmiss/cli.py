"""The ``rsmiss`` command line: click commands only — parse, call one function, print.

Each subcommand lives in a ``register_*`` function next to the stage it drives and imports
its stage lazily, so ``rsmiss --help`` stays fast and heavy libraries load only when used.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from rsmiss.errors import RsmissError
from rsmiss.logs import show_logs
from rsmiss.version import __version__


def setup_logging(debug: bool = False) -> None:
    """The command line shows the library's log lines (DEBUG with ``--debug``)."""
    show_logs(logging.DEBUG if debug else logging.INFO)


class RsmissGroup(click.Group):
    """Every user error becomes one line on stderr and exit code 2 (a traceback with --debug).

    That covers our own :class:`RsmissError` and click's usage errors (bad flag values,
    unknown options), which click would otherwise print over several lines.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        setup_logging(debug)
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except RsmissError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            if debug:
                traceback.print_exc()
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"error: {where}{' '.join(exc.format_message().split())}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=RsmissGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rsmiss")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def main(debug: bool) -> None:
    """rsmiss: multimodal remote-sensing land-cover classification with missing modalities."""
    del debug  # read by RsmissGroup.main before parsing, so errors raised while parsing obey it


def _register_commands() -> None:
    from rsmiss.commands import register_all

    register_all(main)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
