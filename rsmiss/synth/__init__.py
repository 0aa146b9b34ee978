"""Synthetic scenes of the three benchmarks, written in exactly the official raw formats.

The benchmarks' hyperspectral cubes are large and must be downloaded, so tests, the demo
and offline users run the real reading code on stand-ins with the real file names, keys,
shapes, dtypes and georeferencing (``specs.py`` holds those facts). Every write is validated
first, generated into a hidden temporary folder and moved into ``out`` only when all files
exist, with a ``SYNTHETIC`` marker so that ingest and every report can say the data were
synthetic. The marker lands
before the files and records their sha256 (see :func:`_publish`), so a killed run never
leaves a folder that passes for real data.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rsmiss.errors import ConfigError, DataError
from rsmiss.synth.specs import (
    AUGSBURG,
    DATASETS,
    HOUSTON2013,
    MAT_LAYOUT,
    SPECS,
    TRENTO,
    DatasetSpec,
    scaled_counts,
    scaled_shape,
)
from rsmiss.workspace import file_sha256

GENERATOR_VERSION = "1"
MARKER = "SYNTHETIC"

__all__ = [
    "AUGSBURG",
    "DATASETS",
    "GENERATOR_VERSION",
    "HOUSTON2013",
    "MARKER",
    "MAT_LAYOUT",
    "SPECS",
    "TRENTO",
    "DatasetSpec",
    "read_marker",
    "synthesize",
]


def _module(dataset: str):
    import importlib

    return importlib.import_module(f"rsmiss.synth.{dataset}")


def _check_scale(dataset: str, scale: float | None, real_from: Path | None) -> float:
    if real_from is not None:
        if scale is not None and scale != 1.0:
            raise ConfigError(
                f"--real-from implies --scale 1 (the real files are full size), got --scale "
                f"{scale}; drop --scale"
            )
        return 1.0
    if scale is None:
        return 1.0
    if not (math.isfinite(scale) and 0.0 < scale <= 1.0):
        raise ConfigError(f"--scale must be in (0, 1], got {scale}")
    spec = SPECS[dataset]
    h, w = scaled_shape(spec, scale)
    need = sum(scaled_counts(spec.train_counts, scale)) + sum(
        scaled_counts(spec.test_counts, scale)
    )
    if need > 0.55 * h * w:
        raise ConfigError(
            f"--scale {scale} is too small for {dataset}: {need} labelled pixels do not fit a "
            f"{h}x{w} scene; use a larger --scale"
        )
    return float(scale)


def _writable_base(out: Path) -> Path:
    """The existing folder that will hold the temporary output (``out`` or an ancestor)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; choose a folder path")
    base = out
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"--out {out}: {base} is not a folder; choose another --out")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {base} is not writable; choose another --out")
    return base


def synthesize(
    dataset: str,
    out: str | os.PathLike[str],
    seed: int = 0,
    scale: float | None = None,
    real_from: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a synthetic ``dataset`` into ``out`` in the official raw formats; return ``out``.

    ``scale`` (0 < scale <= 1, default 1) shrinks both sides; every class keeps at least
    5 training and 5 test pixels. ``real_from`` (Trento only) copies the real LiDAR, label
    and split files byte for byte and synthesises only the HS cube from the real labels.
    The same arguments give byte-identical files.
    """
    if dataset not in SPECS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    real = None
    if real_from is not None:
        real = Path(real_from).expanduser().absolute()
        if dataset != "trento":
            raise ConfigError(
                f"--real-from is only available for trento (its real LiDAR and labels are "
                f"shared), not {dataset}; drop --real-from"
            )
    scale = _check_scale(dataset, scale, real)
    if real is not None:
        if not real.is_dir():
            raise DataError(f"--real-from {real}: no such folder")
        _module("trento").check_real(real)
    out = Path(out).expanduser().absolute()
    base = _writable_base(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-synth-{dataset}.", dir=base))
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror})") from None
    try:
        rng = np.random.default_rng([int(seed), DATASETS.index(dataset)])
        try:
            _module(dataset).write(tmp, rng, scale, real)
        except _layout_error() as exc:
            raise ConfigError(f"--scale {scale} is too small for {dataset} ({exc})") from None
        names = sorted(p.name for p in tmp.iterdir())
        marker = {
            "dataset": dataset,
            "files": names,
            "generator": "rsmiss.synth",
            "real_from": str(real) if real is not None else None,
            "scale": scale,
            "seed": int(seed),
            "sha256": {n: file_sha256(tmp / n) for n in names},
            "version": GENERATOR_VERSION,
        }
        _publish(tmp, out, marker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _layout_error() -> type[Exception]:
    from rsmiss.synth.layout import LayoutError

    return LayoutError


def _write_marker(tmp: Path, out: Path, marker: dict, state: str) -> None:
    staged = tmp / f".{MARKER}.{state}"
    staged.write_text(json.dumps({**marker, "state": state}, indent=2, sort_keys=True) + "\n")
    os.replace(staged, out / MARKER)


def _publish(tmp: Path, out: Path, marker: dict) -> None:
    """Move the finished files into ``out`` so that a kill at any point never leaves files
    that look real: the new marker (``state: publishing``, with every file's sha256) lands
    first, then the files one by one, then the marker again with ``state: complete``.
    Ingest refuses a ``publishing`` marker whose files do not all match it."""
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(tmp, out, marker, "publishing")
    for name in marker["files"]:
        os.replace(tmp / name, out / name)
    _write_marker(tmp, out, marker, "complete")


def read_marker(folder: str | os.PathLike[str]) -> dict | None:
    """The ``SYNTHETIC`` marker of a raw folder as a dict, or None for real data."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    return json.loads(path.read_text())
