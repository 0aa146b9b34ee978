"""Per-band statistics from training pixels only, and the per-pixel "observed" mask.

One windowed pass per modality: standardisation must not see test pixels (no leakage), and
a band with no valid value anywhere (all NaN / nodata) is refused before anything is written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rsmiss.errors import DataError
from rsmiss.ingest.grid import Aligned
from rsmiss.ingest.labels import Split


@dataclass
class BandStats:
    """``raw = standardised * std + mean`` per band; ``valid`` = pixel observed (any band)."""

    mean: np.ndarray  # float64 (bands,)
    std: np.ndarray  # float64 (bands,)
    valid: np.ndarray  # bool (H, W)


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for ``progress``: None = bars only when stderr is a terminal (tqdm's
    own ``disable=None``), so logs and pipes get no bar debris; True forces them, False off."""
    if progress is None:
        return None
    return not progress


def row_windows(aligned: Aligned, desc: str, progress: bool | None) -> Iterable[tuple[int, int]]:
    """The (row0, row1) windows in which ``aligned`` is read (a bounded number of bytes each,
    ``Grid.window_rows``), with a progress bar named ``desc``."""
    from tqdm import tqdm

    height, rows = aligned.grid.height, aligned.grid.window_rows(aligned.bands)
    spans = [(r, min(height, r + rows)) for r in range(0, height, rows)]
    return tqdm(spans, desc=desc, unit="win", file=sys.stderr, disable=tqdm_disable(progress))


def scan_modality(
    aligned: Aligned, split: Split, *, progress: bool | None = None, name: str = ""
) -> BandStats:
    """Mean/std per band over training pixels (all pixels when the scene has no labels)."""
    grid = aligned.grid
    c = aligned.bands
    use_all = not split.train.any()
    count = np.zeros(c)
    mean = np.zeros(c)
    m2 = np.zeros(c)
    finite_any = np.zeros(c, dtype=np.int64)
    valid = np.zeros((grid.height, grid.width), bool)
    for r0, r1 in row_windows(aligned, f"statistics {name}", progress):
        arr = aligned.read(r0, r1)  # (c, h, W) float32, NaN = invalid
        ok = np.isfinite(arr)
        finite_any += ok.sum(axis=(1, 2))
        valid[r0:r1] = ok.any(axis=0)
        sel = np.ones((r1 - r0, grid.width), bool) if use_all else split.train[r0:r1]
        if not sel.any():
            continue
        x = arr[:, sel].astype(np.float64)
        v = ok[:, sel]
        n = v.sum(axis=1).astype(np.float64)
        xs = np.where(v, x, 0.0)
        bmean = xs.sum(axis=1) / np.maximum(n, 1)
        bm2 = (np.where(v, x - bmean[:, None], 0.0) ** 2).sum(axis=1)
        tot = count + n
        delta = bmean - mean
        mean = mean + delta * n / np.maximum(tot, 1)
        m2 = m2 + bm2 + delta**2 * count * n / np.maximum(tot, 1)
        count = tot
    path = aligned.src.path
    dead = np.flatnonzero(finite_any == 0)
    if dead.size:
        raise DataError(
            f"{path}: band {int(dead[0])} (0-based) has no valid value (all NaN or nodata); "
            "drop it with band_indices in the catalog or fix the file"
        )
    blind = np.flatnonzero(count == 0)
    if blind.size:
        raise DataError(
            f"{path}: band {int(blind[0])} (0-based) has no valid value at any training pixel, "
            "so it cannot be standardised; check the file or the split"
        )
    std = np.sqrt(m2 / count)
    std[~np.isfinite(std) | (std <= 0)] = 1.0  # constant band: centre only
    return BandStats(mean, std, valid)
