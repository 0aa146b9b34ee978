"""Raw-file readers, one per format; :func:`open_source` picks one from a catalog entry.

Every reader yields band-first ``(bands, rows, cols)`` windows (:class:`RasterSource`) so
orientation is normalised once, here.
"""

from __future__ import annotations

from pathlib import Path

from rsmiss.errors import DataError
from rsmiss.io.base import ArraySource, RasterSource
from rsmiss.io.index import IndexFile, read_index
from rsmiss.io.mat import mat_keys, open_mat, read_mat
from rsmiss.io.roi import Roi, RoiFile, read_roi

__all__ = [
    "ArraySource",
    "IndexFile",
    "RasterSource",
    "Roi",
    "RoiFile",
    "check_shape",
    "dtype_mismatch",
    "expected_bands",
    "mat_keys",
    "open_mat",
    "open_source",
    "read_index",
    "read_mat",
    "read_roi",
]


def open_source(path: str | Path, spec) -> RasterSource:
    """Open ``path`` as described by a :class:`rsmiss.catalog.FileSpec` (its reader, key,
    layout and nodata); :func:`check_shape` compares the shape with the catalog's."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: raw file not found; put it there or pass --raw DIR")
    reader = spec.reader
    if reader == "mat":
        src = open_mat(path, spec.key, spec.layout)
    elif reader in ("geotiff", "envi"):
        from rsmiss.io.raster import open_raster

        src = open_raster(path, nodata=spec.nodata)
    else:
        raise DataError(f"{path}: format '{reader}' is not a raster; check 'format' in the catalog")
    if spec.nodata is not None:
        src.nodata = spec.nodata
    return src


def expected_bands(spec) -> int | None:
    """Band count implied by the catalog's stored ``shape`` and the file's layout."""
    shape = spec.shape
    if shape is None:
        return None
    if len(shape) == 2:
        return 1
    if spec.reader == "mat" and (spec.layout or "hwc") == "hwc":
        return shape[-1]
    return shape[0]  # chw arrays and GDAL rasters (bands, rows, cols)


def check_shape(src: RasterSource, spec, *, catalog_size: bool = True) -> None:
    """Compare the stored shape with the catalog's; ``catalog_size=False`` checks bands only.

    ``catalog_size`` says whether the scene should have the catalog's height and width: a
    synthetic scene at another ``--scale`` keeps the band count but not the size.
    """
    expected = spec.shape
    if expected is None:
        return
    found = tuple(src.stored_shape)
    if catalog_size:
        ok = found == tuple(expected)
    else:
        ok = len(found) == len(expected) and src.count == expected_bands(spec)
    if not ok:
        what = "shape" if catalog_size else "band count of shape"
        raise DataError(
            f"{src.path}: array {what} {found} is not the catalog's {tuple(expected)}; "
            "wrong file, key or band count"
        )


# scipy.io.whosmat names MATLAB classes, not numpy dtypes.
_MAT_CLASSES = {"double": "float64", "single": "float32", "logical": "bool"}


def dtype_mismatch(path: str | Path, spec) -> str | None:
    """Why the stored dtype of raster file ``path`` is not the catalog's ``dtype``, or None.

    Read from the file's header (``whosmat``, HDF5, GDAL) without loading the array, so
    ingest can report it beside the checksums before anything is read.
    """
    import numpy as np

    if spec.dtype is None or spec.reader not in ("mat", "geotiff", "envi"):
        return None
    path = Path(path)
    if spec.reader != "mat":
        import rasterio

        with rasterio.open(path) as ds:
            found = np.dtype(ds.dtypes[0])
    else:
        from rsmiss.io.mat import _pick_key, is_hdf5

        name = _pick_key(path, spec.key, mat_keys(path))
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as fh:
                found = np.dtype(fh[name].dtype)
        else:
            import scipy.io

            cls = next(c for n, _s, c in scipy.io.whosmat(path) if n == name)
            found = np.dtype(_MAT_CLASSES.get(cls, cls))
    if found == np.dtype(spec.dtype):
        return None
    return (
        f"{path}: dtype {found} is not the catalog's {spec.dtype} (a different or converted copy)"
    )
