"""Split index CSV reader (``split: {method: index}``): one labelled pixel per line.

A header line names the columns (defaults ``row``, ``col``, ``split`` and, when no label
raster is given, ``label``); rows and columns are 0-based pixels of the reference grid, split
is ``train`` or ``test``. Every problem is one error naming the file and the line: a
missing column, a non-integer, a pixel outside the grid, a label outside 1..K, another split
value, a pixel listed twice with different splits or labels.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsmiss.errors import DataError

_INT = re.compile(r"[+-]?[0-9]+")
_SPLITS = {"train": True, "test": False}


@dataclass(frozen=True)
class IndexFile:
    """Unique pixels in first-listed order; ``labels`` is None when not read."""

    path: Path
    rows: np.ndarray  # int64
    cols: np.ndarray  # int64
    train: np.ndarray  # bool
    labels: np.ndarray | None  # int64
    lines: np.ndarray  # 1-based line of each pixel's first listing, for error messages


def _show(value: str) -> str:
    return repr(value if len(value) <= 24 else value[:24] + "...")


def read_mat_index(path: Path, keys, shape: tuple[int, int]) -> IndexFile:
    """A MATLAB index: ``keys.train`` and ``keys.test`` are (N, 2) arrays of 0-based (row,
    col) pairs (the layout of re-packaged benchmarks such as Augsburg's ``augsburg_index.mat``);
    labels come from the catalog's label raster. "Line" in errors is the 1-based array row."""
    from rsmiss.io.mat import read_mat

    parts = []
    for name, is_train in ((keys.train, True), (keys.test, False)):
        arr = read_mat(path, name)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iuf":
            raise DataError(
                f"{path}: '{name}' has shape {arr.shape}, expected (N, 2) pixel row, col pairs; "
                "check split.keys in the catalog"
            )
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise DataError(f"{path}: '{name}' holds non-integer pixel positions")
        arr = arr.astype(np.int64)
        bad = (arr < 0).any(axis=1) | (arr[:, 0] >= shape[0]) | (arr[:, 1] >= shape[1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: '{name}' row {i + 1}: pixel {tuple(int(v) for v in arr[i])} is outside "
                f"the reference grid ({shape[0]} rows x {shape[1]} columns, 0-based)"
            )
        parts.append((arr, np.full(len(arr), is_train), np.arange(1, len(arr) + 1)))
    rc = np.concatenate([p[0] for p in parts])
    train = np.concatenate([p[1] for p in parts])
    lines = np.concatenate([p[2] for p in parts])
    flat = rc[:, 0] * shape[1] + rc[:, 1]
    _, first = np.unique(flat, return_index=True)
    if first.size != flat.size:
        seen = np.zeros(flat.size, bool)
        seen[first] = True
        dup = int(np.flatnonzero(~seen)[0])
        r, c = (int(v) for v in rc[dup])
        if train[flat == flat[dup]].min() != train[flat == flat[dup]].max():
            raise DataError(
                f"{path}: pixel row {r}, col {c} is in both '{keys.train}' and '{keys.test}'; "
                "keep one"
            )
    keep = np.sort(first)
    return IndexFile(path, rc[keep, 0], rc[keep, 1], train[keep], None, lines[keep])


def read_index(
    path: str | Path, columns, shape: tuple[int, int], n_classes: int | None, keys=None
) -> IndexFile:
    """Parse ``path`` for a ``shape`` (height, width) grid; ``columns`` is a
    :class:`rsmiss.catalog.IndexColumns`. Labels are read (and must be 1..``n_classes``) only
    when ``n_classes`` is given, i.e. when no label raster provides them. With ``keys``
    (:class:`rsmiss.catalog.IndexKeys`) the file is a MATLAB index (:func:`read_mat_index`)."""
    path = Path(path)
    if keys is not None:
        if not path.is_file():
            raise DataError(f"{path}: index file not found; put it there or pass --raw DIR")
        return read_mat_index(path, keys, shape)
    with_labels = n_classes is not None
    names = [columns.row, columns.col, columns.split] + ([columns.label] if with_labels else [])
    limits = [shape[0], shape[1]] + ([n_classes + 1] if with_labels else [])
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _parse(path, csv.reader(fh), names, limits)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: index file not found; put it there or pass --raw DIR") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the index CSV ({msg})") from exc


def _parse(path: Path, reader, names: list[str], limits: list[int]) -> IndexFile:
    header = next(reader, None)
    while header is not None and not any(h.strip() for h in header):
        header = next(reader, None)
    if header is None:
        raise DataError(
            f"{path}: index CSV is empty; it needs a header line naming the columns "
            f"{', '.join(names)}"
        )
    header = [h.strip() for h in header]
    where = []
    for name in names:
        if name not in header:
            found = ", ".join(_show(h) for h in header[:8])
            fix = "rename it or set split.columns in the catalog"
            if len(where) == 3:  # the label column: only read without a label raster
                fix = "add it, give a 'labels' raster in the catalog or set split.columns"
            raise DataError(f"{path}: no column {_show(name)} in the header ({found}); {fix}")
        where.append(header.index(name))
    seen: dict[tuple[int, int], int] = {}
    rows, cols, train, labels, lines = [], [], [], [], []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) <= max(where):
            raise DataError(
                f"{path}: line {line} has {len(fields)} fields, the header has {len(header)}; "
                "fix the line"
            )
        values = [fields[i].strip() for i in where]
        nums = []
        for k, (name, v) in enumerate(
            zip(names[:2] + names[3:], values[:2] + values[3:], strict=True)
        ):
            if not _INT.fullmatch(v):
                raise DataError(f"{path}: line {line}: {name} {_show(v)} is not an integer")
            lo = 1 if k == 2 else 0
            n = int(v) if len(v) <= 19 else limits[k]  # longer: out of range, not int64
            if not lo <= n < limits[k]:
                what = (
                    f"outside the reference grid ({limits[0]} rows x {limits[1]} columns, 0-based)"
                    if k < 2
                    else f"outside the class list 1..{limits[2] - 1}"
                )
                raise DataError(f"{path}: line {line}: {name} {_show(v)} is {what}")
            nums.append(n)
        is_train = _SPLITS.get(values[2].lower())
        if is_train is None:
            raise DataError(
                f"{path}: line {line}: {names[2]} {_show(values[2])} is neither train nor test"
            )
        r, c = nums[0], nums[1]
        label = nums[2] if len(nums) > 2 else 0
        first = seen.get((r, c))
        if first is not None:
            if train[first] != is_train or labels[first] != label:
                what = "splits" if train[first] != is_train else "labels"
                raise DataError(
                    f"{path}: pixel row {r}, col {c} is listed on lines {lines[first]} and "
                    f"{line} with different {what}; keep one"
                )
            continue
        seen[(r, c)] = len(rows)
        rows.append(r)
        cols.append(c)
        train.append(is_train)
        labels.append(label)
        lines.append(line)
    return IndexFile(
        path,
        np.array(rows, np.int64),
        np.array(cols, np.int64),
        np.array(train, bool),
        np.array(labels, np.int64) if len(names) > 3 else None,
        np.array(lines, np.int64),
    )
