"""CF / GeoZarr coordinates of a cube, so GIS tools (rioxarray, GDAL, QGIS) read it as is.

A georeferenced grid gets ``y``/``x`` coordinates at the pixel centres (from the affine
transform, when it has no rotation) and a scalar ``spatial_ref`` grid-mapping variable
carrying the CRS (``crs_wkt``, ``spatial_ref`` and the CF parameters pyproj derives) and
``GeoTransform`` in GDAL order; spatial variables name it in their ``grid_mapping``
attribute. A grid without a CRS (plain ``.mat`` arrays) gets pixel-index coordinates and no
grid mapping. Bands with wavelengths get a ``<m>_band`` coordinate in nanometres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsmiss.ingest.grid import Grid

GRID_MAPPING = "spatial_ref"


def _rectilinear(grid: Grid) -> bool:
    t = grid.transform
    return t.b == 0 and t.d == 0


def _axis_attrs(grid: Grid) -> dict[str, dict[str, Any]]:
    """CF attributes of the ``x`` and ``y`` axes: standard name, long name, units."""
    if not grid.georeferenced:
        return {
            "y": {"long_name": "pixel row index (no georeferencing)", "units": "1"},
            "x": {"long_name": "pixel column index (no georeferencing)", "units": "1"},
        }
    import pyproj

    out: dict[str, dict[str, Any]] = {"x": {}, "y": {}}
    for axis in pyproj.CRS.from_wkt(grid.crs.to_wkt()).cs_to_cf():
        name = str(axis.get("axis", "")).lower()
        if name in out and not out[name]:
            out[name] = {k: v for k, v in axis.items() if k != "axis"}
    return out


def grid_mapping_attrs(grid: Grid) -> dict[str, Any]:
    """Attributes of the ``spatial_ref`` variable of a georeferenced grid."""
    import pyproj

    wkt = grid.crs.to_wkt()
    attrs = dict(pyproj.CRS.from_wkt(wkt).to_cf())
    attrs.update(
        crs_wkt=wkt,
        spatial_ref=wkt,  # GDAL's name for the same WKT
        GeoTransform=" ".join(repr(float(v)) for v in grid.transform.to_gdal()),
    )
    return attrs


def grid_coords(grid: Grid) -> dict[str, Any]:
    """``y``/``x`` (and ``spatial_ref``) coordinates of the scene grid, as xarray tuples.

    A rotated transform has no 1-D map coordinates: ``y``/``x`` are then left without
    coordinates and ``GeoTransform`` alone places the pixels.
    """
    axes = _axis_attrs(grid)
    if not grid.georeferenced:
        return {
            "y": ("y", np.arange(grid.height, dtype=np.int32), axes["y"]),
            "x": ("x", np.arange(grid.width, dtype=np.int32), axes["x"]),
        }
    coords: dict[str, Any] = {GRID_MAPPING: ((), np.int32(0), grid_mapping_attrs(grid))}
    if _rectilinear(grid):
        t = grid.transform
        coords["y"] = ("y", t.f + t.e * (np.arange(grid.height) + 0.5), axes["y"])
        coords["x"] = ("x", t.c + t.a * (np.arange(grid.width) + 0.5), axes["x"])
    return coords


def sample_coords(grid: Grid, rows: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
    """``sample_y``/``sample_x``: the ``y``/``x`` of each sample's pixel centre."""
    axes = _axis_attrs(grid)
    if grid.georeferenced:
        t = grid.transform
        c, r = np.asarray(cols, np.float64) + 0.5, np.asarray(rows, np.float64) + 0.5
        x, y = t.c + t.a * c + t.b * r, t.f + t.d * c + t.e * r
    else:
        y, x = np.asarray(rows, np.int32), np.asarray(cols, np.int32)
    return {
        "sample_y": ("sample", y, {**axes["y"], "long_name": "y of the sample's pixel centre"}),
        "sample_x": ("sample", x, {**axes["x"], "long_name": "x of the sample's pixel centre"}),
    }


def band_coords(modality: str, wavelengths: list[float] | None) -> dict[str, Any]:
    """The ``<m>_band`` coordinate: band-centre wavelengths in nm, when the catalog gives them."""
    if wavelengths is None:
        return {}
    attrs = {
        "standard_name": "radiation_wavelength",
        "long_name": "band centre wavelength",
        "units": "nm",
    }
    dim = f"{modality}_band"
    return {dim: (dim, np.asarray(wavelengths, dtype=np.float64), attrs)}


def spatial_attrs(grid: Grid) -> dict[str, str]:
    """Attributes every ``(…, y, x)`` variable carries: its ``grid_mapping`` when georeferenced."""
    return {"grid_mapping": GRID_MAPPING} if grid.georeferenced else {}
