"""The split: label map, training mask and the sample index, validated before anything is written.

Sample order is the raster (row-major) order of labelled pixels; ``split`` comes from two
label maps, two ENVI ROI files, an index CSV or a seeded stratified draw, and never lets a
pixel be both training and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsmiss.catalog import DatasetSpec, FileSpec
from rsmiss.errors import DataError
from rsmiss.ingest.grid import Aligned, Grid
from rsmiss.io import check_shape, open_source, read_index, read_roi


@dataclass
class Split:
    """Labels on the reference grid; ``train`` marks training pixels."""

    label_map: np.ndarray  # (H, W) int16, 0 = unlabelled
    train: np.ndarray  # (H, W) bool
    notes: list[str] = field(default_factory=list)

    @property
    def flat_index(self) -> np.ndarray:
        return np.flatnonzero(self.label_map)  # row-major = raster order

    def samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``rows, cols, labels, is_train`` of every labelled pixel, in raster order."""
        idx = self.flat_index
        rows, cols = np.divmod(idx, self.label_map.shape[1])
        labels = self.label_map.reshape(-1)[idx]
        is_train = self.train.reshape(-1)[idx]
        return rows.astype(np.int32), cols.astype(np.int32), labels.astype(np.int16), is_train


def _as_labels(arr: np.ndarray, path: Path, n_classes: int) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(
                f"{path}: label map holds NaN or infinite values; labels must be 0..{n_classes}"
            )
        if not np.array_equal(arr, np.round(arr)):
            raise DataError(
                f"{path}: label map holds non-integer values; labels must be 0..{n_classes}"
            )
    values = np.unique(arr)
    bad = values[(values < 0) | (values > n_classes)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8])
        raise DataError(
            f"{path}: label values {shown} are outside the class list 0..{n_classes} "
            "(0 = unlabelled); check the file or the catalog's classes"
        )
    return arr.astype(np.int16)


def _read_label_raster(
    fspec: FileSpec, raw: Path, grid: Grid, n_classes: int, ref_path: Path, catalog_size: bool
) -> np.ndarray:
    path = raw / fspec.file
    src = open_source(path, fspec)
    try:
        check_shape(src, fspec, catalog_size=catalog_size)
        if src.count != 1:
            raise DataError(f"{path}: a label map needs 1 band, the file has {src.count}")
        arr = Aligned(src, grid, categorical=True, ref_path=ref_path).read(0, grid.height)[0]
    finally:
        src.close()
    return _as_labels(arr, path, n_classes)


def _check_disjoint(train: np.ndarray, test: np.ndarray, tr: Path, ts: Path) -> None:
    both = (train > 0) & (test > 0)
    if both.any():
        r, c = np.unravel_index(int(np.flatnonzero(both)[0]), both.shape)
        raise DataError(
            f"{tr} and {ts}: training and test maps overlap in {int(both.sum())} pixels "
            f"(first at row {r}, col {c}); a pixel must be in one split only"
        )


def _roi_map(fspec: FileSpec, raw: Path, grid: Grid, n_classes: int) -> np.ndarray:
    roi = read_roi(raw / fspec.file)
    if (roi.height, roi.width) != (grid.height, grid.width):
        raise DataError(
            f"{roi.path}: File Dimension {roi.width} x {roi.height} does not match the "
            f"reference grid {grid.width} x {grid.height}"
        )
    if len(roi.rois) != n_classes:
        raise DataError(
            f"{roi.path}: {len(roi.rois)} ROIs for {n_classes} classes; ROI i must be class i"
        )
    return roi.label_map().astype(np.int16)


def _random_train(labels: np.ndarray, spec: DatasetSpec, path: Path) -> np.ndarray:
    s = spec.split
    rng = np.random.default_rng(s.seed)
    train = np.zeros(labels.size, bool)
    flat = labels.reshape(-1)
    for k, name in enumerate(spec.class_names, start=1):
        idx = np.flatnonzero(flat == k)
        if s.train_per_class is not None:
            n = s.train_per_class
        else:
            n = max(1, round(s.train_fraction * idx.size))
        if idx.size <= n:
            raise DataError(
                f"{path}: class '{name}' has {idx.size} labelled pixels, not enough for {n} "
                "training pixels and at least one test pixel; lower train_per_class"
            )
        train[rng.choice(idx, n, replace=False)] = True
    return train.reshape(labels.shape)


def _index_split(
    spec: DatasetSpec, raw: Path, grid: Grid, ref_path: Path, catalog_size: bool, notes: list[str]
) -> Split:
    """Labels at the listed pixels: from the ``labels`` raster if given, else the CSV."""
    s = spec.split
    k = len(spec.classes)
    shape = (grid.height, grid.width)
    path = raw / s.file
    full = None
    if s.labels is not None:
        full = _read_label_raster(s.labels, raw, grid, k, ref_path, catalog_size)
    idx = read_index(path, s.columns, shape, None if full is not None else k, s.keys)
    if full is not None:
        labels = full[idx.rows, idx.cols]
        if (labels == 0).any():
            i = int(np.flatnonzero(labels == 0)[0])
            r, c = int(idx.rows[i]), int(idx.cols[i])
            raise DataError(
                f"{path}: line {int(idx.lines[i])}: pixel row {r}, col {c} has no label (0) in "
                f"{raw / s.labels.file}; drop it from the index or fix the label raster"
            )
        extra = int((full > 0).sum()) - idx.rows.size
        if extra:
            notes.append(
                f"{raw / s.labels.file}: {extra} labelled pixels are not in {path}; "
                "they are left out of the samples"
            )
    else:
        labels = idx.labels
    label_map = np.zeros(shape, np.int16)
    label_map[idx.rows, idx.cols] = labels
    train = np.zeros(shape, bool)
    train[idx.rows, idx.cols] = idx.train
    return Split(label_map, train, notes)


def build_split(
    spec: DatasetSpec, raw: Path, grid: Grid, ref_path: Path, catalog_size: bool
) -> Split:
    """Read and validate the split files of ``spec`` onto ``grid``.

    ``catalog_size``: whether label files must have the catalog's stored shape (False for a
    synthetic scene at another ``--scale``, whose bands match but whose size does not).
    """
    s = spec.split
    k = len(spec.classes)
    notes: list[str] = []
    if s.method == "none":
        shape = (grid.height, grid.width)
        return Split(np.zeros(shape, np.int16), np.zeros(shape, bool), notes)
    if s.method == "random":
        labels = _read_label_raster(s.labels, raw, grid, k, ref_path, catalog_size)
        split = Split(labels, _random_train(labels, spec, raw / s.labels.file), notes)
        train_path = raw / s.labels.file
    elif s.method == "index":
        split = _index_split(spec, raw, grid, ref_path, catalog_size, notes)
        train_path = raw / s.file
    else:
        if s.method == "roi":
            tr = _roi_map(s.train, raw, grid, k)
            ts = _roi_map(s.test, raw, grid, k)
        else:
            tr = _read_label_raster(s.train, raw, grid, k, ref_path, catalog_size)
            ts = _read_label_raster(s.test, raw, grid, k, ref_path, catalog_size)
        train_path, test_path = raw / s.train.file, raw / s.test.file
        _check_disjoint(tr, ts, train_path, test_path)
        label_map = np.where(tr > 0, tr, ts).astype(np.int16)
        if s.labels is not None:
            full = _read_label_raster(s.labels, raw, grid, k, ref_path, catalog_size)
            known = label_map > 0
            if (full[known] != label_map[known]).any():
                n = int((full[known] != label_map[known]).sum())
                raise DataError(
                    f"{raw / s.labels.file}: disagrees with the training/test maps at {n} "
                    "labelled pixels; check the files"
                )
            extra = int(((full > 0) & ~known).sum())
            if extra:
                notes.append(
                    f"{raw / s.labels.file}: {extra} labelled pixels are in neither split; "
                    "they are left out of the samples"
                )
        split = Split(label_map, tr > 0, notes)
    counts = np.bincount(split.label_map[split.train], minlength=k + 1)[1:]
    for name, n in zip(spec.class_names, counts, strict=True):
        if n == 0:
            raise DataError(
                f"{train_path}: class '{name}' has no training pixel; every class in the "
                "catalog needs at least one"
            )
    return split
