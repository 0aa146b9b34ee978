"""The project's one error type: what the user did wrong, said in one line.

The CLI turns an :class:`RsmissError` into a single line on stderr and exit code 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class RsmissError(Exception):
    """A user-facing error: names the file or flag, the problem and, where possible, the fix."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        text = f"{source}: {message}" if source else message
        super().__init__(" ".join(str(text).split()))  # always one line


class DataError(RsmissError):
    """Raw or stored data is missing, corrupt or inconsistent with the catalog."""


class ConfigError(RsmissError):
    """A flag, option or YAML file is invalid."""
