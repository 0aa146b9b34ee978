"""Reading cubes: :func:`open_cube` (lazy xarray) and :class:`CubeDataset` (torch samples).

A cube (``ROOT/cubes/<dataset>.zarr``, written by ``rsmiss ingest``) is a zarr v3 store
with consolidated metadata following the CF / GeoZarr conventions, so a plain
``xarray.open_zarr`` shows labelled coordinates and ``rioxarray`` (``ds.rio.crs``,
``ds.scene_hs.rio.to_raster``) works without reading rsmiss attributes
(docs/design.md, "Cube format"):

- Dimensions: ``sample`` (labelled pixels, raster order), ``modality``, ``<m>_band`` per
  modality, ``y``/``x`` (the reference grid), ``py``/``px`` (patch rows/columns).
- Coordinates: ``modality`` (names, column order of ``observed``); ``y``/``x`` at the pixel
  centres, from the affine transform, in CRS units with CF ``standard_name``/``units``;
  ``spatial_ref`` (scalar) with ``crs_wkt``, ``spatial_ref`` (WKT), ``GeoTransform`` (GDAL
  order) and pyproj's CF grid-mapping parameters; ``<m>_band``: band-centre wavelengths
  (``units: nm``) for modalities whose catalog entry gives them; ``sample_y``/``sample_x``:
  the ``y``/``x`` of each sample's pixel centre.
- A grid without a CRS (Trento's and Augsburg's ``.mat`` arrays) has no ``spatial_ref``
  and no ``grid_mapping``: ``y``/``x`` are then int32 pixel indices (0..H-1, 0..W-1,
  ``units: 1``) and ``sample_y``/``sample_x`` equal ``row``/``col``. A rotated transform
  has ``spatial_ref`` but no 1-D ``y``/``x`` coordinates (``GeoTransform`` places pixels).
- Per sample: ``label`` int16 (raw 1-based class id), ``split`` str ``"train"``/``"test"``
  (zarr v3 variable-length strings), ``row``/``col`` int32 (pixel indices on the grid),
  ``observed`` bool (``sample``, ``modality``): True where at least one band of that
  modality is valid (finite, not nodata); invalid values are 0 after standardisation.
- Per pixel (``grid_mapping: spatial_ref`` when georeferenced): ``scene_<m>`` float32
  (``<m>_band``, ``y``, ``x``), standardised with the training pixels' band mean/std,
  chunked by ~16 MB row bands; ``label_map`` int16 (0 = unlabelled); ``observed_map`` bool
  (``modality``, ``y``, ``x``), ``observed`` for every pixel, so whole-scene prediction
  treats a sensor's gap as a missing modality.
- Patches ``<m>`` (``sample``, ``<m>_band``, ``py``, ``px``), centre at ``P//2``, reflect
  padding; float16 for modalities of kind ``hyperspectral``, float32 otherwise; chunked
  along ``sample`` (256..2048 samples, ~48 MB for the widest modality). A
  ``--no-patches`` cube stores none: :func:`open_cube` cuts them lazily from the scene.
- Root attributes: ``dataset``, ``title``, ``modalities``, ``reference``,
  ``class_names``, ``palette``, ``kind_<m>``, ``norm_mean_<m>``/``norm_std_<m>``,
  ``patch_size``, ``has_patches``, ``has_labels``, ``split_method``, ``checksums`` (per
  file ``{sha256, expected, matched}``), ``synthetic``/``synthetic_info``, ``catalog``,
  ``crs`` (WKT) and ``transform`` (the six coefficients ``affine.Affine(*t)`` takes; both
  null without a CRS), ``cube_format``, ``rsmiss_version``, ``cube_id`` and
  ``rsmiss_complete`` (written last).
- A scene without labels (split method ``none``) has a ``sample`` dimension of length 0,
  ``label_map`` all 0, ``has_labels: false``; its band statistics use all valid pixels.
- All arrays are Zstd level 1 compressed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import DataError
from rsmiss.ingest.patches import cut_patches, sample_chunks
from rsmiss.ingest.store import patch_chunk, patch_dtype, require_cube

__all__ = ["CubeDataset", "cut_patches", "open_cube"]  # noqa: F822 (CubeDataset: lazy)


def _lazy_patches(ds: Any, path: Path, modality: str, patch_size: int, chunk: int) -> Any:
    import dask
    import dask.array as da
    import zarr

    scene = zarr.open_group(str(path), mode="r")[f"scene_{modality}"]
    rows = ds["row"].values
    cols = ds["col"].values
    bands = scene.shape[0]
    dtype = patch_dtype(ds.attrs[f"kind_{modality}"])
    cut = dask.delayed(cut_patches, pure=False)
    blocks = [
        da.from_delayed(
            cut(scene, rows[s0:s1], cols[s0:s1], patch_size, dtype),
            shape=(s1 - s0, bands, patch_size, patch_size),
            dtype=dtype,
        )
        for s0, s1 in sample_chunks(rows.size, chunk)
    ]
    if not blocks:
        return da.zeros((0, bands, patch_size, patch_size), dtype=dtype)
    return da.concatenate(blocks, axis=0)


def open_cube(path: str | Path) -> Any:
    """The cube at ``path`` as a lazy ``xarray.Dataset`` (layout: this module's docstring).

    Refuses anything that is not a finished rsmiss cube (a ``.tmp-*`` store of an
    interrupted ingest, a foreign zarr store) with a DataError naming the path.
    """
    import xarray as xr

    path = Path(path)
    attrs = require_cube(path)
    try:
        ds = xr.open_zarr(path, consolidated=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot open the cube ({exc}); rebuild it with --force") from exc
    if not attrs.get("has_patches", True):
        p = int(attrs["patch_size"])
        names = list(attrs["modalities"])
        bands = [ds.sizes[f"{m}_band"] for m in names]
        chunk = patch_chunk(bands, p, [attrs[f"kind_{m}"] for m in names])
        for m in names:
            ds[m] = (("sample", f"{m}_band", "py", "px"), _lazy_patches(ds, path, m, p, chunk))
        ds.attrs = dict(attrs)
    return ds


def __getattr__(name: str) -> Any:
    # CubeDataset subclasses torchgeo's NonGeoDataset, which imports torch (seconds); build
    # it on first use so open_cube stays light.
    if name == "CubeDataset":
        cls = _make_cube_dataset()
        globals()["CubeDataset"] = cls
        return cls
    raise AttributeError(f"module 'rsmiss.cube' has no attribute {name!r}")


def _make_cube_dataset() -> type:
    from torchgeo.datasets import NonGeoDataset

    return type(
        "CubeDataset",
        (_CubeDatasetMixin, NonGeoDataset),
        {"__module__": __name__, "__doc__": _CubeDatasetMixin.__doc__},
    )


class _CubeDatasetMixin:
    """Samples of a cube as ``{"<m>": FloatTensor(C, P, P), ..., "label": LongTensor}``.

    Labels are 0-based (raw id - 1), as training uses them. Patches are cut from the scene
    held in memory (small next to the patch variables) and rounded to the stored patch
    dtype, so values equal the cube's ``<m>`` variables while random access stays O(1).
    ``split`` ("train"/"test") restricts the samples, keeping cube order.
    """

    def __init__(
        self,
        path_or_ds: str | Path | Any,
        modalities: list[str] | None = None,
        split: str | None = None,
    ) -> None:
        ds = open_cube(path_or_ds) if isinstance(path_or_ds, str | Path) else path_or_ds
        names = list(ds.attrs["modalities"])
        self.modalities = list(modalities) if modalities is not None else names
        unknown = [m for m in self.modalities if m not in names]
        if unknown:
            raise DataError(f"modalities {unknown} are not in the cube (it has {names})")
        self.patch_size = int(ds.attrs["patch_size"])
        self.rows = ds["row"].values.astype(np.int64)
        self.cols = ds["col"].values.astype(np.int64)
        self.labels = ds["label"].values.astype(np.int64) - 1
        self.index = np.arange(self.rows.size)
        if split is not None:
            if split not in ("train", "test"):
                raise DataError(f"split '{split}': must be 'train' or 'test'")
            self.index = np.flatnonzero(ds["split"].values == split)
        self._ds = ds
        self._scenes: dict[str, np.ndarray] | None = None

    def _scene(self) -> dict[str, np.ndarray]:
        if self._scenes is None:  # loaded on first use, so forked DataLoader workers share it
            self._scenes = {  # pixel-major in the patch dtype: the fastest layout to cut from
                m: np.ascontiguousarray(
                    self._ds[f"scene_{m}"].values.transpose(1, 2, 0), dtype=self._dtype(m)
                )
                for m in self.modalities
            }
        return self._scenes

    def _dtype(self, m: str) -> np.dtype:
        return patch_dtype(self._ds.attrs[f"kind_{m}"])

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        j = int(self.index[i])
        r, c = self.rows[j : j + 1], self.cols[j : j + 1]
        out: dict[str, Any] = {}
        for m, scene in self._scene().items():
            patch = cut_patches(scene, r, c, self.patch_size, self._dtype(m), layout="hwc")[0]
            out[m] = torch.from_numpy(patch.astype(np.float32))
        out["label"] = torch.tensor(self.labels[j], dtype=torch.long)
        return out
