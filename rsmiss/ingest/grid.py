"""Co-registration: every modality and label raster read by row windows on one reference grid.

Georeferenced rasters on another grid are warped with ``rasterio.warp.reproject`` one
destination window at a time (reading only the source window that covers it), so memory
stays bounded; plain arrays must already have the reference's height and width.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsmiss.errors import DataError
from rsmiss.io.base import RasterSource

WINDOW_BYTES = 16 * 2**20  # float32 bytes per row window (and per scene chunk)


@dataclass(frozen=True)
class Grid:
    """The reference grid: size and, when known, CRS and affine transform."""

    height: int
    width: int
    crs: Any = None
    transform: Any = None

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    def window_rows(self, bands: int) -> int:
        """Rows per window so one float32 window of ``bands`` bands is about WINDOW_BYTES."""
        return max(1, min(self.height, WINDOW_BYTES // max(1, bands * self.width * 4)))


def _same_grid(src: RasterSource, grid: Grid) -> bool:
    if (src.height, src.width) != (grid.height, grid.width):
        return False
    if not (src.georeferenced and grid.georeferenced):
        return True  # same shape, at least one side without georeferencing: taken as aligned
    return src.crs == grid.crs and src.transform.almost_equals(grid.transform)


class Aligned:
    """A source as seen on the reference grid; :meth:`read` returns float32 with NaN = invalid.

    ``categorical`` sources (label rasters) are warped with nearest neighbour and returned
    as integers with 0 = unlabelled.
    """

    def __init__(
        self,
        src: RasterSource,
        grid: Grid,
        *,
        resampling: str = "bilinear",
        categorical: bool = False,
        ref_path: Any = None,
    ) -> None:
        self.src = src
        self.grid = grid
        self.categorical = categorical
        self.resampling = "nearest" if categorical else resampling
        self.direct = _same_grid(src, grid)
        if not self.direct:
            if not (src.georeferenced and grid.georeferenced):
                raise DataError(
                    f"{src.path}: shape {src.height} x {src.width} differs from the reference "
                    f"{ref_path} ({grid.height} x {grid.width}) and one of them has no "
                    "georeferencing, so they cannot be co-registered; resample them to one grid"
                )
            self._check_reprojectable(ref_path)

    @property
    def bands(self) -> int:
        return self.src.bands

    def _dst_bounds(self, row0: int, row1: int) -> tuple[float, float, float, float]:
        t = self.grid.transform
        xs, ys = zip(*(t @ (c, r) for c in (0, self.grid.width) for r in (row0, row1)), strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    def _check_reprojectable(self, ref_path: Any) -> None:
        import rasterio
        from rasterio.warp import transform_bounds

        try:
            # Inside an Env, rasterio turns GDAL/PROJ errors into exceptions instead of letting
            # GDAL dump them (a PROJJSON dump of both CRSs) on stderr.
            with rasterio.Env():
                b = transform_bounds(
                    self.grid.crs, self.src.crs, *self._dst_bounds(0, self.grid.height)
                )
            if not all(math.isfinite(v) for v in b):
                raise ValueError("non-finite bounds")
        except Exception as exc:
            raise DataError(
                f"{self.src.path}: CRS {_crs_name(self.src.crs)} cannot be reprojected to the "
                f"reference CRS {_crs_name(self.grid.crs)} of {ref_path} (no usable coordinate "
                "transformation between them); give both rasters compatible CRSs"
            ) from exc
        s = self.src
        sb = _bounds(s.transform, s.width, s.height)
        if b[0] >= sb[2] or b[2] <= sb[0] or b[1] >= sb[3] or b[3] <= sb[1]:
            raise DataError(
                f"{s.path}: does not overlap the reference grid of {ref_path}; "
                "check its CRS and geotransform"
            )

    def read(self, row0: int, row1: int) -> np.ndarray:
        """Rows ``row0:row1`` of the reference grid: (bands, rows, width)."""
        if self.direct:
            arr = self.src.read(row0, row1)
        else:
            arr = self._warp(row0, row1)
        if self.categorical:
            return arr if not self.direct else self._unlabel(arr)
        return self._mask(arr)

    def _unlabel(self, arr: np.ndarray) -> np.ndarray:
        """Label raster: its nodata value (file's own or the catalog's) means unlabelled (0)."""
        nodata = self.src.nodata
        if nodata is None:
            return arr
        if math.isnan(nodata):
            if arr.dtype.kind != "f":
                return arr
            bad = np.isnan(arr)
        else:
            bad = arr == nodata
        if not bad.any():
            return arr
        out = arr.copy()
        out[bad] = 0
        return out

    def _mask(self, arr: np.ndarray) -> np.ndarray:
        out = arr.astype(np.float32, copy=True)
        nodata = self.src.nodata
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            out[arr == nodata] = np.nan
        out[~np.isfinite(out)] = np.nan
        return out

    def _warp(self, row0: int, row1: int) -> np.ndarray:
        import rasterio
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.warp import reproject, transform_bounds
        from rasterio.windows import from_bounds

        s, g = self.src, self.grid
        n = s.bands
        fill = 0 if self.categorical else np.nan
        dtype = s.dtype if self.categorical else np.float32
        dest = np.full((n, row1 - row0, g.width), fill, dtype=dtype)
        with rasterio.Env():
            b = transform_bounds(g.crs, s.crs, *self._dst_bounds(row0, row1), densify_pts=21)
        win = from_bounds(*b, transform=s.transform)
        pad = 3  # resampling kernels reach a little beyond the footprint
        r0 = max(0, math.floor(win.row_off) - pad)
        r1 = min(s.height, math.ceil(win.row_off + win.height) + pad)
        c0 = max(0, math.floor(win.col_off) - pad)
        c1 = min(s.width, math.ceil(win.col_off + win.width) + pad)
        if r0 >= r1 or c0 >= c1:
            return dest  # window entirely outside this raster's footprint
        data = s.read_window(r0, r1, c0, c1)
        # 0 is nodata on the way in and out: categorical sources have their nodata mapped to
        # 0 (unlabelled) first, continuous ones are NaN-masked.
        data = self._unlabel(data) if self.categorical else self._mask(data)
        try:
            with rasterio.Env():
                reproject(
                    source=data,
                    destination=dest,
                    src_transform=s.transform @ Affine.translation(c0, r0),
                    src_crs=s.crs,
                    src_nodata=fill,
                    dst_transform=g.transform @ Affine.translation(0, row0),
                    dst_crs=g.crs,
                    dst_nodata=fill,
                    resampling=getattr(Resampling, self.resampling),
                )
        except Exception as exc:
            raise DataError(
                f"{s.path}: reprojection to the reference grid failed ({exc}); check its CRS"
            ) from exc
        return dest


def _bounds(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*(transform @ (c, r) for c in (0, width) for r in (0, height)), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def _crs_name(crs: Any, limit: int = 80) -> str:
    """A short name for messages: ``EPSG:32632``, else the WKT's type and name."""
    try:
        auth = crs.to_authority()
        if auth:
            return f"{auth[0]}:{auth[1]}"
    except Exception:
        pass
    try:
        wkt = crs.to_wkt()
    except Exception:
        wkt = str(crs)
    m = re.match(r'\s*(\w+)\s*\[\s*"([^"]*)"', wkt)
    name = f'{m.group(1)}["{m.group(2)}"]' if m else wkt
    return name if len(name) <= limit else name[: limit - 3] + "..."
