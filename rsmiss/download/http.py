"""Fetch one file over HTTP(S) into a ``.part`` file that survives interruption.

`requests` streams the body into ``<name>.part``; a dropped connection, a Ctrl-C or a
``kill -9`` leaves that file, and the next attempt (in the same call, or the next command)
asks for the rest with an HTTP ``Range`` header. A server that ignores ``Range`` answers 200
and the file is started again. The caller verifies checksums and publishes; this module
never writes anywhere but the ``.part`` file and its final name beside it.

Failures become one :class:`DownloadError` line naming every URL tried and why it failed
(404, refused, host not found, timed out, dropped), and a full disk names the file written.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path

from rsmiss.errors import RsmissError
from rsmiss.version import __version__

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
RESUME_ATTEMPTS = 5  # dropped connections resumed per URL before the next URL is tried
CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0
USER_AGENT = f"rsmiss/{__version__} (python-requests)"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DownloadError(RsmissError):
    """A download failed: every URL tried, what each answered, and what to do."""


def disk_full_error(path: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"disk full while writing ({exc.strerror or exc}); free space there or pass --root "
        "on a larger disk, then re-run (the partial download is kept and resumed)",
        source=str(path),
    )


def _reason(exc: Exception) -> str:
    """A few words for a connection-level failure (the exception chain says which)."""
    import requests

    text = repr(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if "NameResolution" in text or "Name or service not known" in text or "gaierror" in text:
        return "host not found (no network?)"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "Network is unreachable" in text:
        return "network unreachable"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ConnectionError
    ):
        return "connection dropped"
    return type(exc).__name__


def _progress(total: int | None, initial: int, name: str, show: bool | None):
    from tqdm import tqdm

    if show is None:
        show = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        disable=not show,
        leave=False,
    )


def _content_total(resp, offset: int) -> int | None:
    """Full size of the file from Content-Range (206) or Content-Length (200)."""
    if resp.status_code == 206:
        rng = resp.headers.get("Content-Range", "")
        if "/" in rng and rng.rsplit("/", 1)[1].isdigit():
            return int(rng.rsplit("/", 1)[1])
        length = resp.headers.get("Content-Length")
        return offset + int(length) if length and length.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _attempt(session, url: str, part: Path, show: bool | None) -> tuple[str, int | None]:
    """One request: append what the server sends to ``part``.

    Returns ("done" | "short" | "http <code>", total size). Connection errors raise.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(
        url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    ) as resp:
        if resp.status_code == 416 and offset:
            # The .part is already whole (or longer than the file: start again).
            rng = resp.headers.get("Content-Range", "")
            size = rng.rsplit("/", 1)[-1]
            if size.isdigit() and int(size) == offset:
                return "done", offset
            part.unlink()
            return "short", None
        if resp.status_code not in (200, 206):
            return f"HTTP {resp.status_code}", None
        if resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if not start.isdigit() or int(start) != offset:
                part.unlink()  # an answer for another range: never splice it in
                return "short", None
        else:
            offset = 0  # the server ignored Range: start the file again
        total = _content_total(resp, offset)
        mode = "ab" if offset else "wb"
        written = offset
        try:
            with open(part, mode) as fh, _progress(total, offset, part.stem, show) as bar:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise disk_full_error(part, exc) from None
            raise
        if total is not None and written < total:
            return "short", total
        return "done", total


def fetch(
    urls: list[str],
    dest: Path,
    *,
    progress: bool | None = None,
) -> str:
    """Download the first URL that answers into ``dest`` (via ``dest.part``); returns it.

    ``dest`` appears only when the body is complete (the size the server announced); a
    leftover ``.part`` from an earlier, interrupted call is resumed.
    """
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    tried: list[str] = []
    with requests.Session() as session:
        for url in urls:
            outcome = ""
            for _ in range(RESUME_ATTEMPTS + 1):
                try:
                    outcome, _total = _attempt(session, url, part, progress)
                except requests.exceptions.RequestException as exc:
                    outcome = _reason(exc)
                    if outcome != "connection dropped" or not part.exists():
                        break
                    continue  # resume with Range
                if outcome != "short":
                    break
            if outcome == "done":
                try:
                    os.replace(part, dest)
                except OSError as exc:  # pragma: no cover - same folder, cannot be cross-device
                    raise DownloadError(f"cannot rename ({exc})", source=str(part)) from None
                return url
            logger.info("%s: %s", url, outcome)
            tried.append(f"{url} ({outcome})")
    raise DownloadError(
        f"download failed from every URL: {'; '.join(tried)}; check the network, or pass "
        "--mirror URL (or set $RSMISS_MIRROR) to fetch it from a mirror",
        source=dest.name,
    )
