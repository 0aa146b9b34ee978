"""Annotated field types shared by the catalog models: checksums and plain file names."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def _hex_digest(v: str | None) -> str | None:
    if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
        raise ValueError("must be 64 hexadecimal digits")
    return None if v is None else v.lower()


# A sha256 given in a catalog: 64 hex digits, stored lower-case.
Sha256 = Annotated[str | None, AfterValidator(_hex_digest)]


def plain_name(v: str | None) -> str | None:
    """A file name under ``raw/NAME/``: no folders, so a download cannot write elsewhere."""
    if v is not None and (not v or "/" in v or "\\" in v or v in (".", "..")):
        raise ValueError(f"must be a plain file name, got {v!r}")
    return v


PlainName = Annotated[str | None, AfterValidator(plain_name)]
