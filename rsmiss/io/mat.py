"""MATLAB .mat reader: v5 through scipy (read whole), v7.3/HDF5 through h5py (by windows).

HDF5 stores MATLAB arrays in column order, so h5py sees every axis reversed; the reader
turns them back once, here. When the catalog's key is absent, the file's single non-meta
array is accepted (re-saved copies often rename it); several candidates are an error that
lists them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsmiss.errors import DataError
from rsmiss.io.base import ArraySource, RasterSource, to_band_first


def _pick_key(path: Path, key: str | None, names: list[str]) -> str:
    if key is not None and key in names:
        return key
    if len(names) == 1:
        return names[0]
    found = ", ".join(sorted(names)) or "none"
    if key is None:
        raise DataError(f"{path}: several arrays ({found}); set 'key' in the catalog to choose one")
    raise DataError(
        f"{path}: array key '{key}' not found and no single array to fall back on "
        f"(keys: {found}); set 'key' in the catalog"
    )


def is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: raw file not found; put it there or pass --raw DIR")


def mat_keys(path: Path) -> list[str]:
    """Names of the arrays in a .mat file (meta entries such as __header__ left out)."""
    _check_file(path)
    if is_hdf5(path):
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                return [
                    k
                    for k, v in fh.items()
                    if isinstance(v, h5py.Dataset) and not k.startswith("#")
                ]
        except OSError as exc:
            raise DataError(
                f"{path}: cannot open MATLAB v7.3 file ({exc}); it looks corrupt"
            ) from exc
    import scipy.io

    try:
        return [name for name, _shape, _cls in scipy.io.whosmat(path) if not name.startswith("__")]
    except Exception as exc:
        raise DataError(
            f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc}); "
            "it looks truncated or corrupt, fetch it again"
        ) from exc


def read_mat(path: str | Path, key: str | None = None) -> np.ndarray:
    """The whole array ``key`` in MATLAB orientation (e.g. H x W x C), v5 or v7.3."""
    path = Path(path)
    names = mat_keys(path)
    name = _pick_key(path, key, names)
    if is_hdf5(path):
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                arr = np.asarray(fh[name][...])
        except OSError as exc:
            raise DataError(
                f"{path}: cannot read '{name}' ({exc}); the file looks corrupt"
            ) from exc
        return arr.T  # column order back to MATLAB's row/column convention
    import scipy.io

    try:
        arr = scipy.io.loadmat(path, variable_names=[name])[name]
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read array '{name}' ({type(exc).__name__}: {exc}); "
            "the file looks truncated or corrupt, fetch it again"
        ) from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: '{name}' is not a numeric array; check 'key' in the catalog")
    return arr


class Hdf5Source(RasterSource):
    """A MATLAB v7.3 array read by row windows, so memory stays bounded for large cubes."""

    def __init__(self, path: Path, name: str, layout: str | None) -> None:
        import h5py

        try:
            self._fh = h5py.File(path, "r")
            self._ds = self._fh[name]
        except OSError as exc:
            raise DataError(
                f"{path}: cannot open MATLAB v7.3 file ({exc}); it looks corrupt"
            ) from exc
        mshape = tuple(int(s) for s in self._ds.shape[::-1])  # MATLAB's own shape
        if self._ds.dtype.kind not in "biuf":
            raise DataError(f"{path}: '{name}' is not a numeric array; check 'key' in the catalog")
        layout = layout or {2: "hw", 3: "hwc"}.get(len(mshape))
        self.layout = layout
        if layout == "hw" and len(mshape) == 2:
            c, h, w = 1, *mshape
        elif layout == "hwc" and len(mshape) == 3:
            h, w, c = mshape
        elif layout == "chw" and len(mshape) == 3:
            c, h, w = mshape
        else:
            raise DataError(
                f"{path}: array of shape {mshape} does not fit layout '{layout or '?'}'; "
                "check 'layout' in the catalog"
            )
        super().__init__(path, c, h, w, np.dtype(self._ds.dtype), mshape)

    def _read(self, row0: int, row1: int) -> np.ndarray:
        if self.layout == "hw":  # stored (W, H)
            return np.asarray(self._ds[:, row0:row1]).T[None]
        if self.layout == "hwc":  # stored (C, W, H)
            return np.asarray(self._ds[:, :, row0:row1]).transpose(0, 2, 1)
        return np.asarray(self._ds[:, row0:row1, :]).transpose(2, 1, 0)  # chw: stored (W, H, C)

    def close(self) -> None:
        self._fh.close()


def open_mat(path: str | Path, key: str | None = None, layout: str | None = None) -> RasterSource:
    """A band-first source over array ``key`` of a .mat file (v5 in memory, v7.3 lazily)."""
    path = Path(path)
    names = mat_keys(path)
    name = _pick_key(path, key, names)
    if is_hdf5(path):
        return Hdf5Source(path, name, layout)
    arr = read_mat(path, name)
    return ArraySource(path, to_band_first(arr, layout, path), tuple(arr.shape))
