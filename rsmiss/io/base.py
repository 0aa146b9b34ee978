"""The common face of every raster reader: band-first windows of one file.

Readers normalise orientation once (HWC vs CHW, MATLAB column order in HDF5) so that the
rest of rsmiss only ever sees ``(bands, rows, cols)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import DataError


@dataclass
class RasterSource:
    """A raster readable by row windows; subclasses implement :meth:`_read`.

    ``stored_shape`` is the array's shape as the file stores it (what the catalog's ``shape``
    describes); ``count, height, width`` are the normalised band-first sizes.
    """

    path: Path
    count: int
    height: int
    width: int
    dtype: np.dtype
    stored_shape: tuple[int, ...]
    crs: Any = None  # rasterio.crs.CRS or None
    transform: Any = None  # affine.Affine or None
    nodata: float | None = None
    band_indices: list[int] | None = field(default=None)

    # True when _read() itself returns only the selected bands (rasterio reads them directly)
    _selects_bands = False

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    @property
    def bands(self) -> int:
        return len(self.band_indices) if self.band_indices is not None else self.count

    def select_bands(self, indices: list[int] | None) -> None:
        if indices is None:
            return
        bad = [i for i in indices if not 0 <= i < self.count]
        if bad:
            raise DataError(
                f"{self.path}: band_indices {bad} out of range, the file has {self.count} bands"
            )
        self.band_indices = list(indices)

    def read(self, row0: int = 0, row1: int | None = None) -> np.ndarray:
        """Rows ``row0:row1`` of the selected bands as ``(bands, rows, width)``."""
        row1 = self.height if row1 is None else row1
        try:
            arr = self._read(row0, row1)
        except DataError:
            raise
        except Exception as exc:  # a reader library failing mid-file: truncated or corrupt
            raise DataError(
                f"{self.path}: cannot read rows {row0}..{row1} ({type(exc).__name__}: {exc}); "
                "the file looks truncated or corrupt, fetch it again"
            ) from exc
        if self.band_indices is not None and not self._selects_bands:
            arr = arr[self.band_indices]
        return arr

    def _read(self, row0: int, row1: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op for in-memory arrays)."""


class ArraySource(RasterSource):
    """A plain in-memory array (MATLAB v5): no georeferencing."""

    def __init__(self, path: Path, array: np.ndarray, stored_shape: tuple[int, ...]) -> None:
        c, h, w = array.shape
        super().__init__(path, c, h, w, array.dtype, stored_shape)
        self.array = array

    def _read(self, row0: int, row1: int) -> np.ndarray:
        return self.array[:, row0:row1, :]


def to_band_first(array: np.ndarray, layout: str | None, path: Path) -> np.ndarray:
    """HW / HWC / CHW -> CHW (a view where possible)."""
    if layout is None:
        layout = {2: "hw", 3: "hwc"}.get(array.ndim)
    if layout == "hw" and array.ndim == 2:
        return array[None]
    if layout == "hwc" and array.ndim == 3:
        return np.moveaxis(array, -1, 0)
    if layout == "chw" and array.ndim == 3:
        return array
    raise DataError(
        f"{path}: array of shape {tuple(array.shape)} does not fit layout "
        f"'{layout or '?'}'; check 'layout' in the catalog"
    )
