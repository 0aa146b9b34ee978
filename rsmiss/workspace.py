"""The workspace folder (``--root``) and atomic publishing of outputs.

Every stage writes beside its destination and renames on success, so a later stage never
reads a half-written output and a killed process leaves at most a ``.tmp-*`` sibling.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "rsmiss-data"
TMP_PREFIX = ".tmp-"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``--root``, else ``$RSMISS_ROOT``, else ``./rsmiss-data``."""
    if root is None:
        root = os.environ.get("RSMISS_ROOT") or DEFAULT_ROOT
    return Path(root).expanduser().absolute()


class Workspace:
    """Paths of one workspace: raw/, weights/, cubes/, scenarios/, runs/, reports/."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_root(root)

    def raw(self, dataset: str) -> Path:
        return self.root / "raw" / dataset

    @property
    def weights(self) -> Path:
        return self.root / "weights"

    @property
    def cubes(self) -> Path:
        return self.root / "cubes"

    def cube(self, dataset: str) -> Path:
        return self.cubes / f"{dataset}.zarr"

    def scenarios(self, dataset: str) -> Path:
        return self.root / "scenarios" / dataset

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def reports(self, pipeline: str) -> Path:
        return self.root / "reports" / pipeline


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publishable(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; published outputs get the usual
    permissions (0644/0755 under the default umask) so other users can read them."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; rename it onto ``dest`` only if the block succeeds.

    For a directory destination an existing one is replaced (moved aside, then removed), so
    readers see either the old or the new complete output, never a mixture.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _publishable(tmp, is_dir)
        if is_dir:
            old = None
            if dest.exists():
                old = dest.with_name(f"{TMP_PREFIX}{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
            os.replace(tmp, dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, read in chunks (``hashlib.file_digest``): the one hash helper."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | os.PathLike[str], obj: Any) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so the same content gives the same bytes."""
    write_text_atomic(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def clean_stale_tmp(folder: str | os.PathLike[str]) -> None:
    """Remove ``.tmp-*`` leftovers of killed processes in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.glob(f"{TMP_PREFIX}*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
