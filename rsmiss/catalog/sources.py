"""Where a dataset's raw files come from: downloadable files and archives, or by hand."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from rsmiss.catalog.fields import PlainName, Sha256, plain_name
from rsmiss.yamlschema import StrictModel


class MemberSpec(StrictModel):
    """One file taken out of a downloaded archive and published under ``raw/NAME/``."""

    member: str = Field(min_length=1, description="path inside the archive")
    file: PlainName = Field(None, description="name under raw/NAME (default: the member's)")
    sha256: Sha256 = Field(
        None, description="checksum of the member (default: the catalog's for that file)"
    )

    @property
    def target(self) -> str:
        return self.file or self.member.rsplit("/", 1)[-1]


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class SourceSpec(StrictModel):
    """Where one downloadable file comes from: a single raw file, or an archive of several.

    ``urls`` are tried in order, the first that answers wins. ``sha256`` checks the
    downloaded bytes where the host serves stable ones; for an archive the ``members``'
    checksums are what decide (GitHub regenerates its archives and their bytes may change).
    """

    urls: list[str] = Field(min_length=1)
    file: PlainName = Field(
        None,
        description="single file: its name under raw/NAME; archive: the download's name "
        "(default: the last part of the first URL)",
    )
    sha256: Sha256 = None
    members: list[MemberSpec] = Field(
        default_factory=list, description="files to extract (empty: the download is one file)"
    )
    licence: str = Field("", description="terms the user accepts by downloading, shown once")

    @field_validator("urls")
    @classmethod
    def _http(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.fullmatch(r"https?://[^/\s]+/\S*", url):
                raise ValueError(f"must be http(s) URLs with a path, got {url!r}")
        return v

    @model_validator(mode="after")
    def _archive(self) -> SourceSpec:
        if self.members and not self.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ValueError(
                f"'{self.name}' has members but is not an archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )
        targets = [m.target for m in self.members]
        if len(set(targets)) != len(targets):
            raise ValueError(f"two members publish the same file: {targets}")
        return self

    @property
    def name(self) -> str:
        """The download's file name."""
        return self.file or self.urls[0].rstrip("/").rsplit("/", 1)[-1].split("?")[0]

    @property
    def is_archive(self) -> bool:
        return bool(self.members)


class ManualSpec(StrictModel):
    """Files a user must fetch by hand (a licence or a login stands between them and a URL)."""

    files: list[str] = Field(min_length=1, description="names to place under raw/NAME")
    where: str = Field(min_length=1, description="where to get them (URL or instructions)")

    @field_validator("files")
    @classmethod
    def _plain(cls, v: list[str]) -> list[str]:
        for name in v:
            plain_name(name)
        return v
