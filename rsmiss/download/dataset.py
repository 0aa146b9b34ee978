"""``rsmiss download NAME``: a catalog entry's ``sources`` -> verified files in ``ROOT/raw/NAME/``.

Downloads go to ``ROOT/downloads/NAME/`` (a ``.part`` file while incomplete, resumed by the
next call), never to the raw folder. An archive's members are extracted beside their
destinations and checked against their sha256s; only when every member of the archive is
right are they renamed into place together, so a wrong, truncated or incomplete download
publishes nothing. Files already present with the right checksum are not fetched again.

Mirrors: ``--mirror URL`` (repeatable) or ``$RSMISS_MIRROR`` (several separated by spaces)
replace the catalog's URLs; a mirror holds each file under ``<host>/<path>`` of its
original URL, the layout ``wget -x`` writes (``https://github.com/a/b/x.zip`` is fetched
as ``<mirror>/github.com/a/b/x.zip``). The tests serve such a mirror from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from rsmiss.catalog import DatasetSpec, SourceSpec, load_catalog
from rsmiss.download.http import DISK_FULL, DownloadError, disk_full_error, fetch
from rsmiss.errors import ConfigError, DataError
from rsmiss.workspace import Workspace, atomic_path, file_sha256

logger = logging.getLogger(__name__)

MIRROR_ENV = "RSMISS_MIRROR"
SYNTHETIC_MARKER = "SYNTHETIC"  # written beside the files by `rsmiss synth`


@dataclass
class DownloadReport:
    """What a download did, file by file (names under the raw folder)."""

    raw: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def resolve_mirrors(mirrors: tuple[str, ...] | list[str] | None) -> list[str]:
    """``--mirror`` values, else ``$RSMISS_MIRROR``; each must be an http(s) URL."""
    chosen = list(mirrors or [])
    flag = "--mirror"
    if not chosen and os.environ.get(MIRROR_ENV):
        chosen, flag = os.environ[MIRROR_ENV].replace(",", " ").split(), f"${MIRROR_ENV}"
    for m in chosen:
        parts = urlsplit(m)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{flag}: {m!r} is not an http(s) URL; give e.g. https://host/path/")
    return chosen


def mirrored(urls: list[str], mirrors: list[str]) -> list[str]:
    """The URLs to try: the catalog's, or each mirror's copy of them (``<host>/<path>``)."""
    if not mirrors:
        return list(urls)
    out = []
    for base in mirrors:
        for url in urls:
            parts = urlsplit(url)
            out.append(f"{base.rstrip('/')}/{parts.netloc}{parts.path}")
    return out


def _is_correct(path: Path, sha256: str | None) -> bool:
    if not path.is_file():
        return False
    return sha256 is None or file_sha256(path) == sha256


class _Archive:
    """zip or tar behind one interface: member names and a readable stream per member."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if zipfile.is_zipfile(path):
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(path)
            self._tar: tarfile.TarFile | None = None
        else:
            self._zip = None
            self._tar = tarfile.open(path, "r:*")

    def names(self) -> set[str]:
        if self._zip is not None:
            return {n for n in self._zip.namelist() if not n.endswith("/")}
        assert self._tar is not None
        return {m.name for m in self._tar.getmembers() if m.isfile()}

    def open(self, name: str) -> IO[bytes]:
        if self._zip is not None:
            return self._zip.open(name)
        assert self._tar is not None
        fh = self._tar.extractfile(name)
        assert fh is not None  # names() lists regular files only
        return fh

    def close(self) -> None:
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()


@contextlib.contextmanager
def _opened(path: Path, label: str) -> Iterator[_Archive]:
    try:
        arc = _Archive(path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        path.unlink(missing_ok=True)
        raise DataError(
            f"truncated or corrupt archive ({type(exc).__name__}); it was removed, re-run to "
            "fetch it again (or check the mirror)",
            source=label,
        ) from None
    try:
        yield arc
    finally:
        arc.close()


def _mismatch(label: str, expected: str, got: str, removed: Path) -> DataError:
    return DataError(
        f"sha256 mismatch: expected {expected}, got {got}; {removed.name} was removed and "
        "nothing was published; re-run, or check the source / mirror",
        source=label,
    )


def _copy_hashed(src: IO[bytes], dest: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(dest, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(dest, exc) from None
        raise
    return h.hexdigest()


def _publish_archive(spec: DatasetSpec, src: SourceSpec, archive: Path, raw: Path) -> list[str]:
    """Extract, verify and publish every member together, or nothing."""
    label = f"{src.name}"
    with _opened(archive, label) as arc:
        try:
            names = arc.names()
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            archive.unlink(missing_ok=True)
            raise DataError(
                f"truncated or corrupt archive ({type(exc).__name__}); it was removed, re-run",
                source=label,
            ) from None
        missing = [m.member for m in src.members if m.member not in names]
        if missing:
            archive.unlink(missing_ok=True)
            raise DataError(
                f"the archive lacks {', '.join(missing)}; it was removed and nothing was "
                f"published; check the mirror, or the members listed in {spec.path}",
                source=label,
            )
        with contextlib.ExitStack() as stack:
            for m in src.members:
                tmp = stack.enter_context(atomic_path(raw / m.target))
                try:
                    with arc.open(m.member) as fh:
                        got = _copy_hashed(fh, tmp)
                except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
                    archive.unlink(missing_ok=True)
                    raise DataError(
                        f"member {m.member} is corrupt ({type(exc).__name__}); the archive was "
                        "removed and nothing was published; re-run",
                        source=label,
                    ) from None
                expected = m.sha256 or spec.expected_sha256(m.target)
                if expected is not None and got != expected:
                    archive.unlink(missing_ok=True)
                    raise _mismatch(f"{label}: {m.member}", expected, got, archive)
    return [m.target for m in src.members]


def _publish_file(spec: DatasetSpec, src: SourceSpec, download: Path, raw: Path) -> list[str]:
    expected = src.sha256 or spec.expected_sha256(src.name)
    with atomic_path(raw / src.name) as tmp:
        with open(download, "rb") as fh:
            got = _copy_hashed(fh, tmp)
        if expected is not None and got != expected:
            download.unlink(missing_ok=True)
            raise _mismatch(src.name, expected, got, download)
    return [src.name]


def _fetch_source(
    spec: DatasetSpec,
    src: SourceSpec,
    ws: Workspace,
    raw: Path,
    mirrors: list[str],
    force: bool,
    progress: bool | None,
) -> list[str]:
    cache = ws.root / "downloads" / spec.name
    download = cache / src.name
    part = download.with_name(download.name + ".part")
    if force:
        download.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if src.licence:
        logger.info("%s: by downloading you accept: %s", src.name, src.licence)
    if not download.is_file():
        if part.exists():
            logger.info("%s: resuming after %d bytes", src.name, part.stat().st_size)
        url = fetch(mirrored(src.urls, mirrors), download, progress=progress)
        logger.info("%s: fetched from %s", src.name, url)
    if src.sha256 is not None and src.is_archive:
        got = file_sha256(download)
        if got != src.sha256:
            download.unlink()
            raise _mismatch(src.name, src.sha256, got, download)
    raw.mkdir(parents=True, exist_ok=True)
    if src.is_archive:
        published = _publish_archive(spec, src, download, raw)
    else:
        published = _publish_file(spec, src, download, raw)
    download.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        cache.rmdir()  # only when empty: other .part files stay
    return published


def download_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    raw: str | os.PathLike[str] | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> DownloadReport:
    """Fetch, verify and place the raw files of catalog entry ``name`` (or a YAML path).

    Raises a one-line error for everything a user can fix: no sources, every URL failing,
    a checksum mismatch, a truncated archive or a missing member, a full disk, files that
    must be fetched by hand. Nothing incomplete or unverified is ever put under ``raw``.
    """
    spec = load_catalog(name)
    ws = Workspace(root)
    raw_dir = Path(raw).expanduser().absolute() if raw is not None else ws.raw(spec.name)
    if not spec.sources and spec.manual is None:
        files = ", ".join(dict.fromkeys(f.file for f in spec.files().values()))
        raise ConfigError(
            f"{spec.path}: no 'sources' to download from; put {files} in {raw_dir} yourself, "
            "or add 'sources' to the catalog entry (docs/adding-a-dataset.md)"
        )
    unsourced = spec.unsourced_files()
    if unsourced:
        raise ConfigError(
            f"{spec.path}: raw files {', '.join(unsourced)} come from no source; add them to "
            "'sources' or 'manual' (docs/adding-a-dataset.md)"
        )
    if (raw_dir / SYNTHETIC_MARKER).exists():
        raise DataError(
            "holds synthetic files written by rsmiss synth; move that folder away (or pass "
            "--raw DIR) before downloading the real ones",
            source=str(raw_dir),
        )
    mirror_list = resolve_mirrors(mirrors)
    report = DownloadReport(raw=raw_dir)
    for src in spec.sources:
        targets = spec.source_targets(src)
        wanted = {
            t: (src.sha256 if not src.is_archive else None) or spec.expected_sha256(t)
            for t in targets
        }
        for m in src.members:
            wanted[m.target] = m.sha256 or wanted[m.target]
        if not force and all(_is_correct(raw_dir / t, sha) for t, sha in wanted.items()):
            report.present += targets
            continue
        try:
            report.fetched += _fetch_source(spec, src, ws, raw_dir, mirror_list, force, progress)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise disk_full_error(Path(exc.filename or raw_dir), exc) from None
            raise DownloadError(
                f"cannot write ({exc.strerror or exc}); check the permissions of {ws.root}",
                source=str(exc.filename or raw_dir),
            ) from None
    if spec.manual is not None:
        absent = [f for f in spec.manual.files if not (raw_dir / f).is_file()]
        report.present += [f for f in spec.manual.files if f not in absent]
        if absent:
            done = (
                f" ({len(report.fetched)} other file(s) were downloaded)" if report.fetched else ""
            )
            raise DataError(
                f"{', '.join(absent)} must be fetched by hand{done}: get them from "
                f"{' '.join(spec.manual.where.split())}, and put them in {raw_dir}",
                source=str(raw_dir),
            )
    return report
