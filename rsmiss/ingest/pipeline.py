"""``rsmiss ingest``: raw files -> ``ROOT/cubes/<name>.zarr`` (docs/design.md, "Cube format").

Everything that can be wrong with the inputs is checked before the store is created
(files, checksums, keys, shapes, grids, labels, split, band statistics); the store is then
written beside its destination and renamed when finished, so a killed run leaves nothing a
later stage would read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.catalog import DatasetSpec, load_catalog
from rsmiss.errors import ConfigError, DataError
from rsmiss.ingest.grid import Aligned, Grid
from rsmiss.ingest.labels import build_split
from rsmiss.ingest.stats import BandStats, scan_modality, tqdm_disable
from rsmiss.ingest.store import CUBE_FORMAT, finished_cube_id
from rsmiss.io import check_shape, dtype_mismatch, open_source
from rsmiss.version import __version__
from rsmiss.workspace import TMP_PREFIX, Workspace, file_sha256

MARKER = "SYNTHETIC"

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What ``ingest`` did: the cube path and id, whether it was already up to date, counts."""

    path: Path
    cube_id: str
    up_to_date: bool
    n_train: int = 0
    n_test: int = 0
    bytes_written: int = 0
    warnings: list[str] = field(default_factory=list)


def read_marker(raw: Path) -> dict[str, Any] | None:
    """The ``SYNTHETIC`` marker ``rsmiss synth`` leaves beside its files, if any."""
    path = raw / MARKER
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        doc = {}
    return doc if isinstance(doc, dict) else {}


def check_marker(raw: Path, marker: dict[str, Any] | None) -> None:
    """Refuse the files of a ``rsmiss synth`` that was killed while publishing them.

    synth writes its marker (``state: publishing``, every file's sha256) before moving any
    file in and rewrites it as ``complete`` after the last; a ``publishing`` marker whose
    files do not all match is a mix of old and new files.
    """
    if not marker or marker.get("state") != "publishing":
        return
    sums = marker.get("sha256")
    for name, digest in sorted(sums.items() if isinstance(sums, dict) else []):
        path = raw / name
        if not path.is_file() or file_sha256(path) != digest:
            dataset = marker.get("dataset", "DATASET")
            raise DataError(
                f"{raw / MARKER}: an interrupted rsmiss synth left a partial set of files "
                f"({name} is not the one the marker describes); re-run rsmiss synth "
                f"{dataset} --out {raw}"
            )


def _check_params(patch_size: int, workers: int | None, scheduler: str | None) -> None:
    if patch_size < 1:
        raise ConfigError(f"--patch-size {patch_size}: must be a positive number of pixels")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if workers is not None and scheduler is not None:
        raise ConfigError("--workers and --scheduler exclude each other; give one")


def _raster_files(path: Path, fs: Any) -> list[Path]:
    """Every file GDAL reads for a GeoTIFF/ENVI source (ENVI ``.hdr``, ``.aux.xml``, ...).

    A sidecar changes what is read (``map info``, nodata, band order) without touching the
    catalog-named file, so it must be part of the checksums and the cube id. A file GDAL
    cannot open contributes only itself; the reader reports the problem later.
    """
    if fs.reader not in ("geotiff", "envi"):
        return [path]
    import warnings

    import rasterio

    try:
        with rasterio.Env(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                files = [Path(f) for f in ds.files]
    except Exception:
        return [path]
    return sorted({path, *(f for f in files if f.is_file())})


def _checksums(
    spec: DatasetSpec,
    raw: Path,
    strict: bool,
    progress: bool | None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    from tqdm import tqdm

    files = spec.files()
    for fs in files.values():
        if not (raw / fs.file).is_file():
            raise DataError(f"{raw / fs.file}: raw file not found; put it there or pass --raw DIR")
    out: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for fs in tqdm(
        list(files.values()),
        desc="checksums",
        unit="file",
        file=sys.stderr,
        disable=tqdm_disable(progress),
    ):
        digest = file_sha256(raw / fs.file)
        matched = None if fs.sha256 is None else digest == fs.sha256
        out[fs.file] = {"sha256": digest, "expected": fs.sha256, "matched": matched}
        if matched is False:
            msg = (
                f"{raw / fs.file}: sha256 {digest[:12]}... does not match the catalog's "
                f"{fs.sha256[:12]}... (a different or modified copy)"
            )
            if strict:
                raise DataError(msg + "; drop --strict to ingest it anyway")
            warnings.append(msg)
            logger.warning("warning: %s", msg)
        if (msg := dtype_mismatch(raw / fs.file, fs)) is not None:
            if strict:
                raise DataError(msg + "; drop --strict to ingest it anyway")
            warnings.append(msg)
            logger.warning("warning: %s", msg)
        for side in _raster_files(raw / fs.file, fs):
            name = os.path.relpath(side, raw)
            if name not in out:
                out[name] = {"sha256": file_sha256(side), "expected": None, "matched": None}
    return dict(sorted(out.items())), warnings


# What of the SYNTHETIC marker identifies the data: not where --real-from was copied from
# (the file checksums cover the inputs) nor the marker's own bookkeeping.
MARKER_IDENTITY = ("dataset", "generator", "scale", "seed", "version")


def marker_identity(marker: dict | None) -> dict | None:
    if marker is None:
        return None
    doc = {k: marker.get(k) for k in MARKER_IDENTITY}
    doc["real_files"] = marker.get("real_from") is not None
    return doc


def _cube_id(
    spec: DatasetSpec, checksums: dict, marker: dict | None, patch_size: int, patches: bool
) -> str:
    doc = {
        "format": CUBE_FORMAT,
        "version": __version__,
        "spec": json.loads(spec.canonical_json()),
        "files": {k: v["sha256"] for k, v in sorted(checksums.items())},
        "synthetic": marker_identity(marker),
        "patch_size": patch_size,
        "has_patches": patches,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def ingest(
    dataset: str | Path | DatasetSpec,
    *,
    raw: str | Path | None = None,
    root: str | Path | None = None,
    patch_size: int = 14,
    patches: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    strict: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> IngestResult:
    """Build (or confirm up to date) the cube of ``dataset``; the layout is in rsmiss.cube."""
    _check_params(patch_size, workers, scheduler)
    spec = dataset if isinstance(dataset, DatasetSpec) else load_catalog(dataset)
    ws = Workspace(root)
    raw_dir = Path(raw).expanduser().absolute() if raw is not None else ws.raw(spec.name)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: raw folder not found; put the files there or pass --raw DIR")
    dest = ws.cube(spec.name)

    marker = read_marker(raw_dir)
    check_marker(raw_dir, marker)
    checksums, warnings = _checksums(spec, raw_dir, strict, progress)
    cube_id = _cube_id(spec, checksums, marker, patch_size, patches)
    if not force and finished_cube_id(dest) == cube_id:
        _remove_leftovers(dest)  # a killed --force rebuild of this cube may have left one
        logger.info(f"{dest}: up to date (cube_id {cube_id}); nothing to do (--force rebuilds)")
        return IngestResult(dest, cube_id, True, warnings=warnings)

    # Synthetic scenes at another --scale keep band counts but not the catalog's height/width.
    catalog_size = marker is None or float(marker.get("scale", 1.0)) == 1.0
    sources = []
    try:
        aligned = _open_modalities(spec, raw_dir, catalog_size, sources)
        ref = aligned[spec.modality_names.index(spec.reference_name)]
        split = build_split(spec, raw_dir, ref.grid, ref.src.path, catalog_size)
        for note in split.notes:
            logger.info(f"note: {note}")
        stats = [
            scan_modality(a, split, progress=progress, name=m.name)
            for a, m in zip(aligned, spec.modalities, strict=True)
        ]
        from rsmiss.ingest.write import write_cube

        _remove_leftovers(dest)
        written = write_cube(
            dest,
            spec=spec,
            aligned=aligned,
            split=split,
            stats=stats,
            attrs=_attrs(spec, ref.grid, checksums, marker, stats, patch_size, patches, cube_id),
            patch_size=patch_size,
            patches=patches,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
    finally:
        for s in sources:
            s.close()
    n_train = int(split.train.sum())
    n_test = int((split.label_map > 0).sum()) - n_train
    logger.info(f"{dest}: written ({n_train} train / {n_test} test samples, cube_id {cube_id})")
    return IngestResult(dest, cube_id, False, n_train, n_test, written, warnings)


def _remove_leftovers(dest: Path) -> None:
    """Delete ``.tmp-<name>.zarr.*`` stores of killed runs (a patch cube can be GBs).

    Two ingests of the same dataset into the same workspace at once are not supported: the
    second would remove the first one's temporary store.
    """
    stale = sorted(dest.parent.glob(f"{TMP_PREFIX}{dest.name}.*"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if stale:
        logger.info(
            f"note: removed {len(stale)} temporary store(s) left by an interrupted ingest of {dest}"
        )


def _open_modalities(
    spec: DatasetSpec, raw: Path, catalog_size: bool, sources: list
) -> list[Aligned]:
    """Open and check every modality; the reference defines the grid, others align to it."""
    opened = {}
    for m in spec.modalities:
        src = open_source(raw / m.source.file, m.source)
        sources.append(src)
        check_shape(src, m.source, catalog_size=catalog_size)
        src.select_bands(m.band_indices)
        if src.bands != m.bands:
            raise DataError(
                f"{src.path}: {src.bands} bands, the catalog's modality '{m.name}' has "
                f"{m.bands}; wrong file or catalog"
            )
        opened[m.name] = src
    ref = opened[spec.reference_name]
    grid = Grid(ref.height, ref.width, ref.crs, ref.transform)
    if catalog_size and spec.shape is not None and (grid.height, grid.width) != tuple(spec.shape):
        raise DataError(
            f"{ref.path}: scene {grid.height} x {grid.width} is not the catalog's "
            f"{spec.shape[0]} x {spec.shape[1]}"
        )
    return [
        Aligned(opened[m.name], grid, resampling=m.resampling, ref_path=ref.path)
        for m in spec.modalities
    ]


def _attrs(
    spec: DatasetSpec,
    grid: Grid,
    checksums: dict,
    marker: dict | None,
    stats: list[BandStats],
    patch_size: int,
    patches: bool,
    cube_id: str,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "dataset": spec.name,
        "title": spec.title,
        "modalities": spec.modality_names,
        "reference": spec.reference_name,
        "class_names": spec.class_names,
        "palette": spec.palette,
        # the grid's georeferencing as plain values (the same as spatial_ref's crs_wkt and
        # GeoTransform), read by the class-map writers
        "crs": grid.crs.to_wkt() if grid.crs is not None else None,
        "transform": list(grid.transform)[:6] if grid.transform is not None else None,
        "checksums": checksums,
        "synthetic": marker is not None,
        "synthetic_info": marker,
        "split_method": spec.split.method,
        "has_labels": spec.split.method != "none",
        "patch_size": patch_size,
        "has_patches": patches,
        "rsmiss_version": __version__,
        "cube_format": CUBE_FORMAT,
        "cube_id": cube_id,
        "catalog": json.loads(spec.canonical_json()),
        "observed_rule": "True where at least one band of the modality is valid (finite, "
        "not nodata)",
    }
    for m, st in zip(spec.modalities, stats, strict=True):
        attrs[f"kind_{m.name}"] = m.modality_kind
        attrs[f"norm_mean_{m.name}"] = [float(v) for v in st.mean]
        attrs[f"norm_std_{m.name}"] = [float(v) for v in st.std]
    return attrs


__all__ = ["IngestResult", "ingest"]
