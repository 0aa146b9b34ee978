"""The cube store on disk: format version, codecs, chunking and the "finished cube" test.

A store counts as a cube only when its root attributes carry ``rsmiss_complete: true`` and
a ``cube_id`` (written last, just before the atomic rename) and its name is not a
``.tmp-*`` sibling left by a killed run. The variables, coordinates and attributes a cube
holds are described in :mod:`rsmiss.cube` (and docs/design.md, "Cube format").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import DataError
from rsmiss.workspace import TMP_PREFIX

# Part of every cube_id: bumped when the content of a cube changes, so an old cube is
# rebuilt by the next `rsmiss ingest` instead of reported up to date. 2: observed_map;
# 3: CF/GeoZarr coordinates (y/x, spatial_ref grid mapping, <m>_band wavelengths, sample_y/x).
CUBE_FORMAT = 3
PATCH_CHUNK_BYTES = 48 * 2**20


def patch_dtype(kind: str) -> np.dtype:
    """float16 for hyperspectral patches (they dominate storage), float32 otherwise.

    ``kind`` is the catalog's modality kind (the cube's ``kind_<m>`` attribute).
    """
    return np.dtype(np.float16 if kind == "hyperspectral" else np.float32)


def patch_chunk(bands: list[int], patch_size: int, kinds: list[str]) -> int:
    """Samples per chunk: a power of two in 256..2048, about 48 MB for the widest modality.

    ``bands`` and ``kinds``: band count and catalog kind of each modality.
    """
    bps = max(
        [
            b * patch_size * patch_size * patch_dtype(k).itemsize
            for b, k in zip(bands, kinds, strict=True)
        ]
        or [1]
    )
    n = 2 ** int(math.floor(math.log2(max(1, PATCH_CHUNK_BYTES // bps))))
    return int(min(2048, max(256, n)))


def compressors() -> list[Any]:
    """Zstandard level 1: as fast as LZ4 here, and its long match window finds the pixels
    that overlapping patches repeat (neighbouring samples share P-1 of P columns), which
    block-wise codecs such as Blosc cannot."""
    from zarr.codecs import ZstdCodec

    return [ZstdCodec(level=1)]


def read_attrs(path: str | Path) -> dict[str, Any] | None:
    """Root attributes of a zarr v3 store, or None when ``path`` holds no readable group."""
    meta = Path(path) / "zarr.json"
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("node_type") != "group":
        return None
    attrs = doc.get("attributes") or {}
    return attrs if isinstance(attrs, dict) else None


def finished_cube_id(path: str | Path) -> str | None:
    """The ``cube_id`` of a finished rsmiss cube at ``path``, else None."""
    path = Path(path)
    if path.name.startswith(TMP_PREFIX):
        return None
    attrs = read_attrs(path)
    if not attrs or attrs.get("rsmiss_complete") is not True:
        return None
    cube_id = attrs.get("cube_id")
    return cube_id if isinstance(cube_id, str) else None


def require_cube(path: str | Path) -> dict[str, Any]:
    """Attributes of a finished cube; a DataError naming the path otherwise."""
    path = Path(path)
    if path.name.startswith(TMP_PREFIX):
        raise DataError(
            f"{path}: a temporary store left by an interrupted ingest, not a cube; "
            "delete it and run rsmiss ingest again"
        )
    if not path.exists():
        raise DataError(f"{path}: cube not found; run rsmiss ingest first")
    if finished_cube_id(path) is None:
        raise DataError(
            f"{path}: not a finished rsmiss cube (incomplete or foreign store); "
            "run rsmiss ingest --force to rebuild it"
        )
    attrs = read_attrs(path) or {}
    return attrs
