"""The one handler that shows rsmiss's log lines: plain messages on stderr.

Library code only logs (``logging.getLogger(__name__)`` under ``rsmiss``, which carries a
``NullHandler``). The command line shows the lines with :func:`show_logs`; processes rsmiss
starts (spawned ranks, dask workers) call it too, at their parent's level.
"""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record arrives (click's test runner and
    notebooks replace it after the handler is installed)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_logs(level: int) -> None:
    """Show the ``rsmiss`` log lines at ``level``; the handler is installed once per process."""
    log = logging.getLogger("rsmiss")
    if not any(isinstance(h, StderrHandler) for h in log.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(level)
