"""Tiles of a scene read from its cube: the window to map, its tiles, each with its halo.

A tile's patches need the P//2 pixels around it (the halo). Inside the scene they are read
from the cube; past the scene's edge they are the reflection the untiled path pads the
whole scene with (``rsmiss.training.data.pad_scene``: numpy's ``reflect``, the edge pixel
not repeated), so a pixel gets the same patch whichever tile it falls in. Only the rows and
columns a tile needs are read, so memory follows the tile size, not the scene's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.training.data import Scene


@dataclass(frozen=True)
class Window:
    """Rows [row0, row1) and columns [col0, col1) of a scene."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.row1 - self.row0, self.col1 - self.col0

    @property
    def tag(self) -> str:
        return f"r{self.row0}-{self.row1}c{self.col0}-{self.col1}"


def parse_window(text: str, height: int, width: int) -> Window:
    """``ROW0:ROW1,COL0:COL1`` (end exclusive) inside a ``height`` x ``width`` scene."""
    try:
        rows, cols = text.split(",")
        (r0, r1), (c0, c1) = (tuple(int(v) for v in part.split(":")) for part in (rows, cols))
    except ValueError:
        raise ConfigError(f"--window {text!r}: expected ROW0:ROW1,COL0:COL1 (integers)") from None
    if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
        raise ConfigError(
            f"--window {text!r}: must lie inside the scene's {height} rows x {width} columns "
            "with ROW0 < ROW1 and COL0 < COL1"
        )
    return Window(r0, r1, c0, c1)


def bbox_window(text: str, transform: Any, height: int, width: int) -> Window:
    """The pixels a ``MINX,MINY,MAXX,MAXY`` box in the cube's CRS touches (clipped)."""
    from rasterio.transform import rowcol

    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bbox {text!r}: expected MINX,MINY,MAXX,MAXY (numbers)") from None
    if transform is None:
        raise ConfigError("--bbox: this cube has no georeference; use --window ROWS,COLS")
    if not (minx < maxx and miny < maxy):
        raise ConfigError(f"--bbox {text!r}: needs MINX < MAXX and MINY < MAXY")
    rows, cols = rowcol(transform, [minx, maxx, minx, maxx], [miny, miny, maxy, maxy], op=float)
    r0, r1 = max(0, math.floor(min(rows))), min(height, math.ceil(max(rows)))
    c0, c1 = max(0, math.floor(min(cols))), min(width, math.ceil(max(cols)))
    if r0 >= r1 or c0 >= c1:
        raise ConfigError(f"--bbox {text!r}: does not overlap the scene")
    return Window(r0, r1, c0, c1)


def tile_grid(window: Window, tile: int) -> list[Window]:
    """Row-major tiles of at most ``tile`` x ``tile`` pixels covering ``window``."""
    return [
        Window(r, min(r + tile, window.row1), c, min(c + tile, window.col1))
        for r in range(window.row0, window.row1, tile)
        for c in range(window.col0, window.col1, tile)
    ]


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """numpy ``reflect`` padding indices (one reflection: the pad is below the scene size)."""
    index = np.abs(index)
    return np.where(index >= n, 2 * (n - 1) - index, index)


def read_padded(array: Any, tile: Window, patch_size: int, height: int, width: int) -> np.ndarray:
    """(C, h + P - 1, w + P - 1) float32: ``tile`` of a (C, H, W) array with its halo."""
    before, after = patch_size // 2, patch_size - 1 - patch_size // 2
    if min(height, width) <= max(before, after):
        raise DataError(
            f"scene of {height} x {width} px is too small for {patch_size} x {patch_size} patches"
        )
    rows = _reflect(np.arange(tile.row0 - before, tile.row1 + after), height)
    cols = _reflect(np.arange(tile.col0 - before, tile.col1 + after), width)
    r_lo, r_hi, c_lo, c_hi = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    block = np.asarray(array[:, r_lo:r_hi, c_lo:c_hi], dtype=np.float32)
    return np.ascontiguousarray(block[:, rows - r_lo][:, :, cols - c_lo])


def tile_scene(ds: Any, modalities: tuple[str, ...], patch_size: int, tile: Window) -> Scene:
    """The ``Scene`` of one tile (halo included) for the classifier."""
    height, width = (int(v) for v in ds["observed_map"].shape[-2:])
    cube_mods = [str(m) for m in ds["modality"].values]
    padded = {
        m: torch.from_numpy(read_padded(ds[f"scene_{m}"].data, tile, patch_size, height, width))
        for m in modalities
    }
    obs = np.asarray(
        ds["observed_map"].data[:, tile.row0 : tile.row1, tile.col0 : tile.col1], dtype=bool
    )
    observed = torch.from_numpy(obs[[cube_mods.index(m) for m in modalities]].copy())
    h, w = tile.shape
    return Scene(tuple(modalities), padded, patch_size, h, w, observed)
