"""Patch cutting: one P x P window per labelled pixel, centre at P//2, reflect padding.

The same function serves the stored patch variables, the lazy patches of a ``--no-patches``
cube and the torch dataset, so all three give identical values.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pad_index(n: int, patch_size: int) -> np.ndarray:
    """Source index of every position of a reflect-padded axis of length ``n``.

    Padded position ``i + P//2`` is pixel ``i``; a patch for pixel ``r`` spans padded
    positions ``r .. r+P-1`` (``np.pad(mode="reflect")`` semantics, the edge not repeated).
    """
    before = patch_size // 2
    after = patch_size - 1 - before
    return np.pad(np.arange(n), (before, after), mode="reflect")


def cut_patches(
    scene: Any,
    rows: np.ndarray,
    cols: np.ndarray,
    patch_size: int,
    dtype: Any = np.float32,
    layout: str = "chw",
) -> np.ndarray:
    """Patches ``(n, C, P, P)`` of ``scene`` centred on ``(rows, cols)``.

    ``scene`` is ``(C, H, W)`` (``layout="chw"``, as stored) or pixel-major ``(H, W, C)``
    (``"hwc"``, the fast layout for repeated cutting from memory). It may be a numpy array
    or anything sliceable like one (a zarr array): only the rows the patches need are read,
    which keeps memory bounded when the samples are close in raster order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if layout == "chw":
        c, h, w = scene.shape
    else:
        h, w, c = scene.shape
    n, p = rows.size, patch_size
    if n == 0:
        return np.empty((0, c, p, p), dtype=dtype)
    steps = np.arange(p)
    rix = pad_index(h, p)[rows[:, None] + steps]  # (n, P) scene row of each patch row
    cix = pad_index(w, p)[cols[:, None] + steps]  # (n, P) scene column of each patch column
    lo, hi = int(rix.min()), int(rix.max()) + 1
    if layout == "chw":
        # Convert first: the band is ~P times smaller than its patches, and float32 ->
        # float16 is the slowest step when done on the patches.
        band = np.asarray(scene[:, lo:hi, :]).astype(dtype, copy=False)
        pix = np.ascontiguousarray(band.transpose(1, 2, 0))
    else:
        pix = np.ascontiguousarray(np.asarray(scene[lo:hi]), dtype=dtype)
    # Pixel-major, every patch pixel is one contiguous run of C values: a single np.take
    # gathers all patches (several times faster than per-band fancy indexing).
    flat = ((rix - lo)[:, :, None] * w + cix[:, None, :]).reshape(-1)
    gathered = np.take(pix.reshape(-1, c), flat, axis=0).reshape(n, p, p, c)
    return np.ascontiguousarray(gathered.transpose(0, 3, 1, 2))


def always_write(array: Any) -> Any:
    """The zarr array set to write every chunk without first testing it for all-fill.

    Patches and scenes are never all-fill, and with a NaN fill value zarr's test is a full
    ``array_equal(..., equal_nan=True)`` over each chunk: a third of the ingest's time in a
    profile of the Augsburg-size scene. (``open_array(config=...)`` does not apply the
    setting to an existing array in zarr 3.1; ``with_config`` does.)
    """
    return array.with_config({"write_empty_chunks": True})


def sample_chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + chunk)) for s in range(0, n, chunk)]


def write_patch_chunk(
    store: str,
    names: list[str],
    dtypes: list[str],
    s0: int,
    s1: int,
    rows: np.ndarray,
    cols: np.ndarray,
    patch_size: int,
    scenes: dict[str, np.ndarray] | None = None,
) -> int:
    """Cut samples ``s0:s1`` of every modality from the scene and write them.

    Runs as one dask task. ``scenes`` are in-memory scenes shared by threads; without them
    the task reads the rows it needs from the stored scene, so on a distributed cluster
    (sharing the filesystem) the task graph carries only indices. Returns bytes written.
    """
    import zarr

    group = zarr.open_group(store, mode="r+")
    written = 0
    for name, dtype in zip(names, dtypes, strict=True):
        if scenes is not None:  # pixel-major copy in memory
            patches = cut_patches(scenes[name], rows, cols, patch_size, dtype, layout="hwc")
        else:
            patches = cut_patches(group[f"scene_{name}"], rows, cols, patch_size, dtype)
        target = always_write(group[name])
        target[s0:s1] = patches
        written += patches.nbytes
    return written
