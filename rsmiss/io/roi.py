"""ENVI "Output of ROIs" ASCII reader (the Houston 2013 training/test sample files).

Layout: ``;`` header lines (``Number of ROIs``, ``File Dimension: W x H``, then per ROI
``ROI name``, ``ROI rgb value``, ``ROI npts``), a ``;`` column-header line, then one block of
points per ROI separated by blank lines. Columns are found by their header names because
exports may add ``Map X``, ``Lat``, band values, ...; X and Y are 1-based column and row.
``npts`` counts rows, duplicates included; a pixel listed twice in one ROI counts once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsmiss.errors import DataError


@dataclass(frozen=True)
class Roi:
    name: str
    rgb: tuple[int, ...] | None
    npts: int
    rows: np.ndarray  # 0-based, unique pixels in first-listed order
    cols: np.ndarray


@dataclass(frozen=True)
class RoiFile:
    path: Path
    width: int
    height: int
    rois: list[Roi]

    def label_map(self) -> np.ndarray:
        """``(height, width)`` uint16 map, ROI *i* -> class *i* + 1, 0 elsewhere.

        A pixel in two ROIs is an error naming it: with one ROI per class the pixel would have
        two labels.
        """
        out = np.zeros((self.height, self.width), np.uint16)
        for k, roi in enumerate(self.rois, start=1):
            taken = out[roi.rows, roi.cols]
            if taken.any():
                i = int(np.flatnonzero(taken)[0])
                r, c = int(roi.rows[i]), int(roi.cols[i])
                other = self.rois[int(taken[i]) - 1].name
                raise DataError(
                    f"{self.path}: pixel X={c + 1} Y={r + 1} (row {r}, col {c}) is in ROI "
                    f"'{other}' and in ROI '{roi.name}' of another class; fix the ROI file"
                )
            out[roi.rows, roi.cols] = k
        return out


_HEADER = re.compile(r"^;\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")


def _columns(line: str) -> list[str]:
    body = line.lstrip(";").strip()
    cols = re.split(r"\s{2,}|\t", body)
    if "X" in cols and "Y" in cols:
        return cols
    return body.split()  # single-spaced header: X and Y are still the first such tokens


def read_roi(path: str | Path) -> RoiFile:
    """Parse an ENVI ROI ASCII export; every inconsistency is a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: raw file not found; put it there or pass --raw DIR")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ROI file ({exc})") from exc
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    n_rois = width = height = None
    names: list[str] = []
    rgbs: list[tuple[int, ...] | None] = []
    npts: list[int] = []
    columns: list[str] | None = None
    blocks: list[list[list[str]]] = []
    current: list[list[str]] = []
    for lineno, line in enumerate(lines, start=1):
        s = line.strip()
        if s.startswith(";"):
            m = _HEADER.match(s)
            if m:
                key, value = m["key"].lower(), m["value"]
                if key == "number of rois":
                    n_rois = _int(value, path, lineno)
                elif key == "file dimension":
                    dims = re.findall(r"\d+", value)
                    if len(dims) != 2:
                        raise DataError(f"{path}: line {lineno}: bad 'File Dimension' '{value}'")
                    width, height = int(dims[0]), int(dims[1])
                elif key == "roi name":
                    names.append(value)
                elif key == "roi rgb value":
                    rgbs.append(tuple(int(v) for v in re.findall(r"\d+", value)) or None)
                elif key == "roi npts":
                    npts.append(_int(value, path, lineno))
            elif re.search(r"(^|\s)X(\s|$)", s) and re.search(r"(^|\s)Y(\s|$)", s):
                columns = _columns(s)
            continue
        if not s:
            if current:
                blocks.append(current)
                current = []
            continue
        current.append(s.split())
    if current:
        blocks.append(current)

    if n_rois is None or width is None or height is None or columns is None:
        raise DataError(
            f"{path}: not an ENVI ROI text export (missing 'Number of ROIs', "
            "'File Dimension' or the ';  ID  X  Y' column header)"
        )
    if not (len(names) == len(npts) == n_rois):
        raise DataError(
            f"{path}: header announces {n_rois} ROIs but describes {len(names)} names and "
            f"{len(npts)} point counts; the file looks truncated"
        )
    ix, iy = columns.index("X"), columns.index("Y")
    iid = columns.index("ID") if "ID" in columns else None
    if len(blocks) != n_rois and iid is not None:
        blocks = _split_on_id_restart([r for b in blocks for r in b], iid)
    nonempty = [n for n in npts if n > 0]
    if len(blocks) != len(nonempty):
        raise DataError(
            f"{path}: {len(blocks)} point blocks for {len(nonempty)} non-empty ROIs; "
            "the file looks truncated or edited"
        )
    rois: list[Roi] = []
    it = iter(blocks)
    for k, (name, n) in enumerate(zip(names, npts, strict=True)):
        block = next(it) if n > 0 else []
        if len(block) != n:
            raise DataError(
                f"{path}: ROI '{name}' header says npts={n} but lists {len(block)} points; "
                "the file looks truncated or edited"
            )
        try:
            xs = np.array([int(float(r[ix])) for r in block], dtype=np.int64)
            ys = np.array([int(float(r[iy])) for r in block], dtype=np.int64)
        except (ValueError, IndexError, OverflowError) as exc:  # "x", short row, inf, 1e30
            raise DataError(f"{path}: ROI '{name}' has a malformed point row ({exc})") from exc
        bad = (xs < 1) | (xs > width) | (ys < 1) | (ys > height)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: ROI '{name}' point X={xs[j]} Y={ys[j]} lies outside the "
                f"{width} x {height} file dimension"
            )
        flat = (ys - 1) * width + (xs - 1)
        _, first = np.unique(flat, return_index=True)
        keep = np.sort(first)  # duplicates of one ROI count once
        rgb = rgbs[k] if k < len(rgbs) else None
        rois.append(Roi(name, rgb, n, ys[keep] - 1, xs[keep] - 1))
    return RoiFile(path, width, height, rois)


def _int(value: str, path: Path, lineno: int) -> int:
    try:
        return int(value.split()[0])
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path}: line {lineno}: expected a number, got '{value}'") from exc


def _split_on_id_restart(rows: list[list[str]], iid: int) -> list[list[list[str]]]:
    blocks: list[list[list[str]]] = []
    for r in rows:
        # a row too short to hold the ID column stays in its block; the npts check rejects it
        if not blocks or (len(r) > iid and r[iid] == "1"):
            blocks.append([])
        blocks[-1].append(r)
    return blocks
