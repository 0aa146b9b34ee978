"""A class map as files: a GeoTIFF with the class palette as its colour table, and a PNG.

The GeoTIFF carries the cube's CRS and transform when the cube has them (plain-array
datasets such as the Trento ``.mat`` files have none) and the class names as a band tag;
the PNG shows the palette with a legend. Training writes the map of its own scene with
``write_class_map``; ``rsmiss.inference`` writes tiled maps with the same colour table,
tags and PNG rendering.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.errors import DataError
from rsmiss.workspace import atomic_path


def affine(transform: Any):
    from rasterio.transform import Affine

    t = [float(v) for v in transform]
    if len(t) >= 6:
        return Affine(*t[:6])
    raise DataError(f"cube transform {transform!r} is not 6 numbers")


def attr_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def geo_profile(crs: Any, transform: Any) -> dict[str, Any]:
    """The rasterio ``crs``/``transform`` entries for a cube's attributes (none when absent)."""
    import rasterio

    profile: dict[str, Any] = {}
    crs = attr_value(crs)
    if crs:
        profile["crs"] = rasterio.crs.CRS.from_user_input(crs)
    if transform is not None and attr_value(transform) is not None:
        profile["transform"] = affine(attr_value(transform))
    return profile


def colour_table(palette: list) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: raw class id (1-based) -> RGBA; 0 is no data."""
    return {i + 1: (*[int(v) for v in palette[i][:3]], 255) for i in range(len(palette))}


def class_tags(class_names: list[str]) -> dict[str, str]:
    """The band tags naming the classes of a map (GDAL metadata, JSON list)."""
    return {"class_names": json.dumps(class_names)}


def class_palette(palette: Any, n_classes: int) -> list[list[int]]:
    """The cube's palette, or a tab20 one when the cube has none."""
    return attr_value(palette) or default_palette(n_classes)


def write_class_map(
    class_map: np.ndarray,
    tif_path: str | Path,
    *,
    class_names: list[str],
    palette: list[list[int]] | None,
    crs: Any = None,
    transform: Any = None,
    title: str = "",
) -> tuple[Path, Path]:
    """Write ``class_map`` (raw 1-based ids, uint8) as GeoTIFF and a PNG beside it."""
    import warnings

    import rasterio

    tif_path = Path(tif_path)
    png_path = tif_path.with_suffix(".png")
    data = np.asarray(class_map, dtype=np.uint8)
    h, w = data.shape
    palette = class_palette(palette, len(class_names))
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "compress": "deflate",
        "nodata": 0,
        **geo_profile(crs, transform),
    }
    with atomic_path(tif_path) as tmp, warnings.catch_warnings():
        # plain-array cubes have no georeferencing: an identity transform is what we mean
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
            dst.write_colormap(1, colour_table(palette))
            dst.update_tags(1, **class_tags(class_names))
    write_png(data, png_path, class_names, palette, title)
    return tif_path, png_path


def default_palette(n: int) -> list[list[int]]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [[int(255 * c) for c in cmap(i % 20)[:3]] for i in range(n)]


# Shown for no-data pixels: the first colour no class uses (Houston2013's palette has white
# for Residential, so a fixed white or black could pass a class off as missing data).
NODATA_COLOURS = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 255))


def nodata_colour(palette: list) -> tuple[int, int, int]:
    used = {tuple(int(v) for v in colour[:3]) for colour in palette}
    return next((c for c in NODATA_COLOURS if c not in used), NODATA_COLOURS[0])


def write_png(
    data: np.ndarray, path: Path, class_names: list[str], palette: list, title: str
) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    blank = nodata_colour(palette)
    rgb = np.full((*data.shape, 3), blank, dtype=np.uint8)  # no data (0)
    for i, colour in enumerate(palette):
        rgb[data == i + 1] = [int(v) for v in colour[:3]]
    # outlined patches: a white or pale class stays visible on the white page
    handles = [
        Patch(facecolor=np.asarray(palette[i][:3]) / 255.0, edgecolor="0.4", label=name)
        for i, name in enumerate(class_names)
    ]
    if (data == 0).any():
        handles.append(Patch(facecolor=np.asarray(blank) / 255.0, edgecolor="0.4", label="no data"))
    h, w = data.shape
    # tall enough for one legend row per class (7 pt text), whatever the scene's shape
    height = max(min(10.0, 1.5 + h / 60), 0.6 + 0.16 * len(handles))
    width = min(16.0, 2 + w / 60)
    fig = Figure(figsize=(width, height))  # no pyplot: the caller's backend stays as it is
    ax = fig.subplots()
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    if title:  # wrapped to the image's width (about 13 characters per inch at 9 pt)
        ax.set_title(textwrap.fill(title, max(24, int(0.6 * width * 13))), fontsize=9)
    ax.legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False
    )
    with atomic_path(path) as tmp:
        # "tight" grows the saved area to the legend and the title instead of clipping them
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", pad_inches=0.1)
