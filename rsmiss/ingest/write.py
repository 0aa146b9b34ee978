"""Writing the cube: sample index, standardised scene, then patches as dask tasks.

The store is built in a temporary sibling (``rsmiss.workspace.atomic_path``) and marked
finished (``rsmiss_complete``) as its very last write before the rename.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.catalog import DatasetSpec
from rsmiss.ingest.cf import band_coords, grid_coords, sample_coords, spatial_attrs
from rsmiss.ingest.grid import Aligned, Grid
from rsmiss.ingest.labels import Split
from rsmiss.ingest.patches import always_write, sample_chunks
from rsmiss.ingest.stats import BandStats, row_windows, tqdm_disable
from rsmiss.ingest.store import compressors, patch_chunk, patch_dtype
from rsmiss.scheduler import connect as connect_scheduler
from rsmiss.workspace import atomic_path

Runner = Callable[[list, str], list]
# Threads cut patches from an in-memory copy of the scene (in the patch dtype) when it is at
# most this big; otherwise, and on a cluster, each task reads its rows from the store.
SCENE_CACHE_BYTES = 1 << 30


@contextlib.contextmanager
def dask_runner(
    workers: int | None, scheduler: str | None, progress: bool | None
) -> Iterator[Runner]:
    """Run dask tasks: threads by default, a local cluster (``--workers``) or ``--scheduler``.

    The cluster or client is closed on the way out, whatever happens, so no worker process
    outlives the command.
    """
    if workers is None and scheduler is None:
        import dask
        from tqdm.dask import TqdmCallback

        def run_threads(tasks: list, desc: str) -> list:
            cb = (
                TqdmCallback(desc=desc, file=sys.stderr, disable=tqdm_disable(progress))
                if progress is not False
                else contextlib.nullcontext()
            )
            with cb:
                return list(dask.compute(*tasks, scheduler="threads"))

        yield run_threads
        return

    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    def run_client(client: Any) -> Runner:
        def run(tasks: list, desc: str) -> list:
            futures = client.compute(tasks)
            for fut in tqdm(
                as_completed(futures),
                total=len(futures),
                desc=desc,
                file=sys.stderr,
                disable=tqdm_disable(progress),
            ):
                fut.result()  # re-raise the first failure here
            return client.gather(futures)

        return run

    if scheduler is not None:
        client = connect_scheduler(scheduler)
        try:
            yield run_client(client)
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield run_client(client)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def _small_dataset(spec: DatasetSpec, grid: Grid, split: Split, stats: list[BandStats]):
    """Sample index, label and observation maps, and every coordinate of the cube."""
    import xarray as xr

    rows, cols, labels, is_train = split.samples()
    names = spec.modality_names
    if rows.size:
        observed = np.stack([st.valid[rows, cols] for st in stats], axis=1)
    else:
        observed = np.zeros((0, len(names)), bool)
    # Variable-length UTF-8 strings: zarr v3's specified "string" type (fixed-width unicode
    # has no v3 spec and warns); xarray.open_zarr reads them back as str.
    split_str = np.array(["train" if t else "test" for t in is_train], dtype=object)
    on_grid = spatial_attrs(grid)
    coords = {
        "modality": np.array(names, dtype=object),
        **grid_coords(grid),
        **sample_coords(grid, rows, cols),
    }
    for m in spec.modalities:
        coords.update(band_coords(m.name, m.wavelength_list()))
    return xr.Dataset(
        {
            "label": ("sample", labels),
            "split": ("sample", split_str),
            "row": ("sample", rows),
            "col": ("sample", cols),
            "observed": (("sample", "modality"), observed),
            "label_map": (("y", "x"), split.label_map, on_grid),
            # per pixel, for whole-scene prediction: a sensor's gap is a missing modality
            "observed_map": (("modality", "y", "x"), np.stack([st.valid for st in stats]), on_grid),
        },
        coords=coords,
    )


def write_cube(
    dest: Path,
    *,
    spec: DatasetSpec,
    aligned: list[Aligned],
    split: Split,
    stats: list[BandStats],
    attrs: dict[str, Any],
    patch_size: int,
    patches: bool,
    workers: int | None,
    scheduler: str | None,
    progress: bool | None,
) -> int:
    """Write the whole cube atomically at ``dest``; returns the bytes on disk."""
    import dask
    import dask.array as da
    import xarray as xr
    import zarr

    names = spec.modality_names
    grid = aligned[0].grid
    small = _small_dataset(spec, grid, split, stats)
    n = small.sizes["sample"]
    bands = [a.bands for a in aligned]
    kinds = [m.modality_kind for m in spec.modalities]
    pdt = {m: patch_dtype(k) for m, k in zip(names, kinds, strict=True)}
    chunk = patch_chunk(bands, patch_size, kinds)
    comp = compressors()
    p = patch_size

    big: dict[str, Any] = {}
    enc: dict[str, Any] = {}
    for m, c in zip(names, bands, strict=True):
        rows_chunk = grid.window_rows(c)
        big[f"scene_{m}"] = (
            (f"{m}_band", "y", "x"),
            da.zeros(
                (c, grid.height, grid.width), chunks=(c, rows_chunk, grid.width), dtype=np.float32
            ),
            spatial_attrs(grid),
        )
        enc[f"scene_{m}"] = {"compressors": comp, "chunks": (c, rows_chunk, grid.width)}
        if patches:
            big[m] = (
                ("sample", f"{m}_band", "py", "px"),
                da.zeros((n, c, p, p), chunks=(max(1, min(chunk, n)), c, p, p), dtype=pdt[m]),
            )
            enc[m] = {"compressors": comp, "chunks": (chunk, c, p, p)}
    small_enc = {v: {"compressors": comp} for v in small.variables if small[v].ndim}

    with dask_runner(workers, scheduler, progress) as run, atomic_path(dest, is_dir=True) as tmp:
        store = str(tmp)
        small.to_zarr(store, mode="w", zarr_format=3, consolidated=False, encoding=small_enc)
        xr.Dataset(big).to_zarr(
            store, mode="a", compute=False, zarr_format=3, consolidated=False, encoding=enc
        )
        group = zarr.open_group(store, mode="r+")
        cache_bytes = sum(
            c * grid.height * grid.width * pdt[m].itemsize
            for m, c in zip(names, bands, strict=True)
        )
        local = workers is None and scheduler is None
        scenes: dict[str, np.ndarray] | None = None
        if patches and n and local and cache_bytes <= SCENE_CACHE_BYTES:
            scenes = {  # pixel-major (H, W, C): the layout cut_patches gathers fastest from
                m: np.empty((grid.height, grid.width, c), pdt[m])
                for m, c in zip(names, bands, strict=True)
            }
        for m, a, st in zip(names, aligned, stats, strict=True):
            target = always_write(group[f"scene_{m}"])
            mean = st.mean.astype(np.float32)[:, None, None]
            std = st.std.astype(np.float32)[:, None, None]
            for r0, r1 in row_windows(a, f"scene {m}", progress):
                x = (a.read(r0, r1) - mean) / std
                np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                target[:, r0:r1, :] = x
                if scenes is not None:
                    scenes[m][r0:r1] = x.transpose(1, 2, 0)
        if patches and n:
            from rsmiss.ingest.patches import write_patch_chunk

            rows = small["row"].values
            cols = small["col"].values
            dtypes = [pdt[m].name for m in names]
            # pure=False: no hashing of arguments (the shared scenes are hundreds of MB)
            task = dask.delayed(functools.partial(write_patch_chunk, scenes=scenes), pure=False)
            tasks = [
                task(store, names, dtypes, s0, s1, rows[s0:s1], cols[s0:s1], p)
                for s0, s1 in sample_chunks(n, chunk)
            ]
            run(tasks, "patches")
        group.attrs.update({**attrs, "rsmiss_complete": True})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "consolidated metadata is not in the v3 spec"
            zarr.consolidate_metadata(store)
        written = _du(tmp)
    return written
