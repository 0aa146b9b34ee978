"""GeoTIFF and ENVI reader (rasterio/GDAL), by row windows so memory stays bounded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rsmiss.errors import DataError
from rsmiss.io.base import RasterSource


class RasterioSource(RasterSource):
    """A GDAL-readable raster; ENVI files are opened through their binary (``.hdr`` beside)."""

    _selects_bands = True

    def __init__(self, path: Path, nodata: float | None = None) -> None:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError

        if not path.is_file():
            raise DataError(f"{path}: raw file not found; put it there or pass --raw DIR")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds = rasterio.open(path)
        except RasterioError as exc:
            raise DataError(
                f"{path}: not a readable raster ({exc}); it looks truncated or corrupt"
            ) from exc
        ds = self._ds
        crs = ds.crs
        transform = ds.transform
        if crs is None or transform.is_identity:
            crs, transform = None, None
        super().__init__(
            path,
            ds.count,
            ds.height,
            ds.width,
            np.dtype(ds.dtypes[0]),
            (ds.count, ds.height, ds.width),
            crs=crs,
            transform=transform,
            nodata=nodata if nodata is not None else ds.nodata,
        )

    def _read(self, row0: int, row1: int) -> np.ndarray:
        from rasterio.windows import Window

        window = Window(0, row0, self.width, row1 - row0)
        indexes = [i + 1 for i in self.band_indices] if self.band_indices else None
        return self._ds.read(indexes=indexes, window=window)

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """A rectangular window of the selected bands, for warping part of a big raster."""
        from rasterio.windows import Window

        indexes = (
            [i + 1 for i in self.band_indices]
            if self.band_indices
            else list(range(1, self.count + 1))
        )
        try:
            return self._ds.read(
                indexes=indexes, window=Window(col0, row0, col1 - col0, row1 - row0)
            )
        except Exception as exc:
            raise DataError(
                f"{self.path}: cannot read ({type(exc).__name__}: {exc}); "
                "the file looks truncated or corrupt, fetch it again"
            ) from exc

    def close(self) -> None:
        self._ds.close()


def open_raster(path: str | Path, nodata: float | None = None) -> RasterioSource:
    return RasterioSource(Path(path), nodata=nodata)
