"""Finished tiles -> a cloud-optimised GeoTIFF (and a PNG preview), published atomically.

Tiles arrive as small ``.npy`` files (in any order, from any worker). They are written
window by window into a tiled GeoTIFF beside the output, which GDAL's COG driver then copies
into the published file with internal overviews, so QGIS or ``rio info`` open it and
neither step holds more than a tile in memory. The PNG preview is read from the COG's
overviews, at most ``PREVIEW_SIDE`` pixels on the long side.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.inference.tiles import Window
from rsmiss.training.classmap import colour_table, write_png
from rsmiss.workspace import atomic_path

BLOCK = 256
PREVIEW_SIDE = 2048


def tile_file(parts: Path, tile: Window) -> Path:
    return parts / f"{tile.tag}.npy"


def save_tile(parts: Path, tile: Window, bands: np.ndarray) -> None:
    """(B, h, w) uint8 bands of one tile, written atomically: present means finished."""
    with atomic_path(tile_file(parts, tile)) as tmp, open(tmp, "wb") as f:
        np.save(f, bands)


def write_cog(
    out: Path,
    parts: Path,
    tiles: Sequence[Window],
    window: Window,
    *,
    band: int,
    nodata: int,
    geo: dict[str, Any],
    palette: list | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Band ``band`` of every tile file into the cloud-optimised GeoTIFF ``out``."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy
    from rasterio.windows import Window as RioWindow

    h, w = window.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        **geo,
    }
    staging = parts / f"staging-{out.name}"
    with warnings.catch_warnings():
        # plain-array cubes have no georeferencing: pixel coordinates are what we mean
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(staging, "w", **profile) as dst:
            for tile in tiles:
                data = np.load(tile_file(parts, tile))[band]
                where = RioWindow(
                    tile.col0 - window.col0, tile.row0 - window.row0, *tile.shape[::-1]
                )
                dst.write(data, 1, window=where)
            if palette is not None:
                dst.write_colormap(1, colour_table(palette))
            if tags:
                dst.update_tags(1, **tags)
        with atomic_path(out) as tmp:
            gdal_copy(
                staging,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                BLOCKSIZE=str(BLOCK),
                OVERVIEW_RESAMPLING="NEAREST",
            )
    staging.unlink()
    return out


def write_preview(tif: Path, class_names: list[str], palette: list, title: str) -> Path:
    """The PNG beside ``tif``: the class map with its legend, read from the overviews."""
    import rasterio
    from rasterio.enums import Resampling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        src = rasterio.open(tif)
    with src:
        step = max(1, -(-max(src.height, src.width) // PREVIEW_SIDE))
        shape = (max(1, src.height // step), max(1, src.width // step))
        data = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    png = tif.with_suffix(".png")
    write_png(data, png, class_names, palette, title)
    return png
