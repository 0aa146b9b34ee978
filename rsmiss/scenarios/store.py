"""Scenario ids and the ``.npz`` file: byte-identical for the same request, verified on load.

Layout (an uncompressed zip of ``.npy`` entries, in this order, each with a fixed
timestamp so that the same request gives the same bytes on any machine):

- ``meta.npy``: 0-d str, JSON (sorted keys): format, scenario_id, dataset, cube_id,
  modalities, params.
- ``modalities.npy``: str (M,), the column order.
- ``train.npy`` / ``test.npy``: bool (n_split, M), True = available, rows in the cube's
  sample order restricted to that split.
- ``train_index.npy`` / ``test_index.npy``: int64 (n_split,), the cube sample indices.
- ``sha256.npy``: 0-d str, sha256 over the meta JSON and every array above (name, dtype,
  shape, bytes), so a changed mask or parameter is detected.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import DataError

FORMAT = "rsmiss-scenario/1"
SPLITS = ("train", "test")
ARRAYS = ("modalities", "train", "test", "train_index", "test_index")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def fmt_rate(x: float) -> str:
    """``0.9`` -> ``0.90``; more digits only when two would lose information."""
    text = f"{x:.2f}"
    if abs(float(text) - x) > 1e-12:
        text = f"{x:.6f}".rstrip("0")
    return text


def scenario_id(
    pattern: str,
    rate: float,
    seed: int,
    *,
    modalities: tuple[str, ...] | None = None,
    availability: dict[str, float] | None = None,
    spatial: bool = False,
    test_pattern: str | None = None,
    test_rate: float | None = None,
) -> str:
    """Readable id derived from the parameters.

    ``both-r0.90-s0``; ``all-r0.75-s0-m-hs-sar-lidar`` (``modalities`` given only when they
    differ from the dataset default); ``avail-hs1.00-sar0.75-lidar0.50-s0`` (every modality
    taking part, in column order); then ``-spatial`` and ``-test-<pattern>-r<rate>`` when
    the test split is built with another setting.
    """
    if availability is not None:
        parts = "-".join(f"{m}{fmt_rate(a)}" for m, a in availability.items())
        sid = f"avail-{parts}-s{seed}"
    else:
        sid = f"{pattern}-r{fmt_rate(rate)}-s{seed}"
        if modalities:
            sid += "-m-" + "-".join(modalities)
    if spatial:
        sid += "-spatial"
    if test_pattern is not None or test_rate is not None:
        sid += (
            f"-test-{test_pattern or pattern}-r{fmt_rate(rate if test_rate is None else test_rate)}"
        )
    return sid


@dataclass(frozen=True, eq=False)
class Scenario:
    """One scenario: availability masks of the train and test split over ``modalities``."""

    scenario_id: str
    dataset: str
    cube_id: str
    modalities: tuple[str, ...]
    train: np.ndarray
    test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    params: dict[str, Any]
    sha256: str = ""
    path: Path | None = field(default=None, compare=False)

    def split(self, name: str) -> np.ndarray:
        """Availability of split ``name`` ("train" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        return self.train if name == "train" else self.test

    def pattern_counts(self, split: str) -> dict[str, int]:
        """Samples per pattern name (``complete``, ``hs_missing``, ...) in ``split``."""
        from rsmiss.scenarios.patterns import pattern_names

        names, counts = np.unique(
            pattern_names(self.split(split), self.modalities), return_counts=True
        )
        return {str(k): int(v) for k, v in zip(names, counts, strict=True)}


def _meta(s: Scenario) -> str:
    meta = {
        "format": FORMAT,
        "scenario_id": s.scenario_id,
        "dataset": s.dataset,
        "cube_id": s.cube_id,
        "modalities": list(s.modalities),
        "params": s.params,
    }
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def _arrays(s: Scenario) -> dict[str, np.ndarray]:
    return {
        "modalities": np.array(list(s.modalities), dtype=np.str_),
        "train": np.ascontiguousarray(s.train, dtype=bool),
        "test": np.ascontiguousarray(s.test, dtype=bool),
        "train_index": np.ascontiguousarray(s.train_index, dtype=np.int64),
        "test_index": np.ascontiguousarray(s.test_index, dtype=np.int64),
    }


def content_hash(meta_json: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_json.encode("utf-8"))
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def scenario_bytes(s: Scenario) -> bytes:
    """The file's exact bytes (hash computed here; ``s.sha256`` is ignored)."""
    meta_json = _meta(s)
    arrays = _arrays(s)
    entries = {"meta": np.array(meta_json), **arrays}
    entries["sha256"] = np.array(content_hash(meta_json, arrays))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in entries.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the platform writing it
            data = io.BytesIO()
            np.lib.format.write_array(data, arr, allow_pickle=False)
            zf.writestr(info, data.getvalue())
    return buf.getvalue()


def save_scenario(s: Scenario, path: str | os.PathLike[str]) -> Path:
    """Write atomically (beside, then rename)."""
    from rsmiss.workspace import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, scenario_bytes(s))
    return path


def _cube_id_of(cube: Any) -> str:
    """``cube`` may be a cube_id string, a cube path, or an opened cube (xarray.Dataset)."""
    if isinstance(cube, str) and not os.path.exists(cube):
        if cube.endswith(".zarr") or os.sep in cube:
            raise DataError(f"no cube at {cube}; give an existing cube path or its cube_id")
        return cube
    if isinstance(cube, (str, os.PathLike)):
        from rsmiss.ingest.store import require_cube

        return str(require_cube(cube)["cube_id"])
    attrs = getattr(cube, "attrs", None)
    if attrs is None or "cube_id" not in attrs:
        raise DataError("the cube given has no cube_id attribute; re-run rsmiss ingest")
    return str(attrs["cube_id"])


def load_scenario(path: str | os.PathLike[str], cube: Any = None) -> Scenario:
    """Read and verify a scenario file; with ``cube`` (an opened cube, its path or its cube_id)
    check that the masks were built for that cube."""
    path = Path(path)
    bad = "rebuild it with 'rsmiss scenarios ... --force'"
    if not path.is_file():
        raise DataError(f"scenario file {path} does not exist; build it with rsmiss scenarios")
    try:
        with zipfile.ZipFile(path) as zf:
            entries = {}
            for name in ("meta", *ARRAYS, "sha256"):
                with zf.open(f"{name}.npy") as fh:
                    entries[name] = np.lib.format.read_array(fh, allow_pickle=False)
        meta_json = str(entries["meta"][()])
        meta = json.loads(meta_json)
        stored_hash = str(entries["sha256"][()])
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable rsmiss scenario file ({exc}); {bad}") from None
    arrays = {k: entries[k] for k in ARRAYS}
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}, expected {FORMAT}; {bad}")
    if content_hash(meta_json, arrays) != stored_hash:
        raise DataError(f"{path} does not match its stored sha256 (modified or corrupt); {bad}")
    s = Scenario(
        scenario_id=meta["scenario_id"],
        dataset=meta["dataset"],
        cube_id=meta["cube_id"],
        modalities=tuple(str(m) for m in arrays["modalities"]),
        train=arrays["train"],
        test=arrays["test"],
        train_index=arrays["train_index"],
        test_index=arrays["test_index"],
        params=meta["params"],
        sha256=stored_hash,
        path=path,
    )
    if cube is not None:
        cube_id = _cube_id_of(cube)
        if cube_id != s.cube_id:
            raise DataError(
                f"{path} was built for cube {s.cube_id[:12]}, but the cube is {cube_id[:12]} "
                f"(re-ingested?); rebuild it with 'rsmiss scenarios --dataset {s.dataset}'"
            )
    return s
