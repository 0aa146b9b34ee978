"""Classification maps of whole scenes with a trained run, streamed tile by tile.

The scene may be the run's own cube or any cube with the same modalities and band counts,
e.g. a new area ingested without labels; ``--window`` / ``--bbox`` map a part of it. The
window is cut into tiles; each tile is read from the cube with its halo
(``rsmiss.inference.tiles``), classified (``rsmiss.training.classify``, the function the
run's own ``map.tif`` comes from) and saved as a small file in a folder beside the output,
so memory follows the tile size and a killed prediction resumes at the first unfinished
tile. Tiles run in this process, or as tasks on dask workers (``devices`` local worker
processes, one per GPU when there are GPUs, or an existing cluster's ``scheduler``). When
all are done they are assembled into a cloud-optimised GeoTIFF (``rsmiss.inference.mapfile``)
published atomically, with a PNG preview and optionally a confidence GeoTIFF.

torchgeo's ``GridGeoSampler`` was considered: it walks a ``GeoDataset`` (rasterio files
indexed by bounds in map units) with fixed-size windows and a stride, the last row and
column shifted back to fit. Using it would mean wrapping the zarr cube as a ``GeoDataset``
and turning its map-unit windows back into pixel rows and columns, and its windows carry no
halo: the reflection at the scene's edge that makes a tile's patches equal the untiled
ones would still be ours. Plain row/column tiles of the cube need neither.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmiss.errors import ConfigError, DataError
from rsmiss.inference.mapfile import save_tile, tile_file, write_cog, write_preview
from rsmiss.inference.rundir import RunDir, resolve_device
from rsmiss.inference.tiles import Window, bbox_window, parse_window, tile_grid, tile_scene
from rsmiss.scheduler import check_address
from rsmiss.scheduler import connect as connect_scheduler
from rsmiss.training.classify import missing_columns
from rsmiss.workspace import Workspace, write_json_atomic

CONFIDENCE_NODATA = 255


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to classify tiles of one request (picklable)."""

    run_path: str
    cube_path: str
    missing: tuple[str, ...]
    batch_size: int | None
    device: str | None
    confidence: bool
    parts: str


_LOADED: dict[tuple[str, str, str, int], Any] = {}


def _worker_device(job: TileJob) -> Any:
    """This process's device: a local cluster's worker N takes GPU N (modulo the count)."""
    import torch

    dev = resolve_device(job.device)
    if dev.type == "cuda" and dev.index is None:
        try:
            from distributed import get_worker

            name = get_worker().name
            index = int(name) if str(name).isdigit() else 0
        except (ImportError, ValueError):
            index = 0
        dev = torch.device("cuda", index % max(1, torch.cuda.device_count()))
    return dev


def classify_tile(tile: Window, job: TileJob) -> str:
    """Classify one tile and save it (raw class ids, 0 = no data; confidence in percent)."""
    import numpy as np

    from rsmiss.cube import open_cube
    from rsmiss.training.classify import classify

    parts = Path(job.parts)
    if tile_file(parts, tile).is_file():
        return tile.tag
    dev = _worker_device(job)
    ckpt = Path(job.run_path) / "checkpoint.pt"
    key = (job.run_path, job.cube_path, str(dev), ckpt.stat().st_mtime_ns)
    if key not in _LOADED:  # one model and cube per process, reused by its next tiles
        _LOADED.clear()
        run = RunDir(job.run_path)
        _LOADED[key] = (run, run.load_model(dev), open_cube(job.cube_path))
    run, model, ds = _LOADED[key]
    scene = tile_scene(ds, tuple(run.modalities), run.config.patch_size, tile)
    out = classify(
        model,
        scene,
        dev,
        precision=run.config.precision,
        missing=job.missing,
        batch_size=job.batch_size,
        confidence=job.confidence,
    )
    bands = [(out.classes + 1).astype(np.uint8)]
    if out.confidence is not None:
        pct = np.rint(out.confidence * 100).astype(np.uint8)
        bands.append(np.where(out.classes < 0, CONFIDENCE_NODATA, pct).astype(np.uint8))
    save_tile(parts, tile, np.stack(bands))
    return tile.tag


def check_cube(ds: Any, channels: dict[str, int], source: str) -> None:
    """The cube has every modality of the run with the run's band counts."""
    cube_mods = [str(m) for m in ds["modality"].values]
    lacking = [m for m in channels if m not in cube_mods or f"scene_{m}" not in ds]
    if lacking:
        raise DataError(
            f"cube has no modality {lacking[0]!r} that the run needs ({', '.join(channels)})",
            source=source,
        )
    for m, want in channels.items():
        c = int(ds[f"scene_{m}"].shape[0])
        if c != want:
            raise DataError(
                f"modality {m!r} has {c} bands but the run was trained on {want}", source=source
            )
    if "observed_map" not in ds:
        raise DataError("cube has no variable 'observed_map'; re-run rsmiss ingest", source=source)


def georeference(ds: Any) -> tuple[Any, Any]:
    """(CRS text or None, rasterio Affine or None) of a cube."""
    from rsmiss.training.classmap import affine, attr_value

    crs, transform = attr_value(ds.attrs.get("crs")), attr_value(ds.attrs.get("transform"))
    if "spatial_ref" in ds.variables:  # CF grid mapping, when the cube carries one
        ref = ds["spatial_ref"].attrs
        crs = crs or ref.get("crs_wkt")
        if transform is None and ref.get("GeoTransform"):
            gt = [float(v) for v in str(ref["GeoTransform"]).split()]
            transform = [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]]
    return crs or None, affine(transform) if transform is not None else None


def _run_tiles(todo: list[Window], job: TileJob, devices: int, scheduler: str | None, bar) -> None:
    if not todo:
        return
    if scheduler is None and devices == 1:
        for tile in todo:
            classify_tile(tile, job)
            bar.update(1)
        return
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        import dask

        # dask starts workers with glibc's trim threshold at 64 KiB so idle workers hand
        # memory back; a worker that allocates and frees tens of MB per batch then faults
        # it back in every batch (measured: half its CPU time in the kernel, 2.3x slower).
        # The tile workers keep glibc's own adaptive threshold.
        trim = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
        with dask.config.set({trim: None}):
            cluster = LocalCluster(
                n_workers=devices, threads_per_worker=1, processes=True, dashboard_address=None
            )
    with Client(cluster) if cluster is not None else connect_scheduler(scheduler) as client:
        futures = client.map(classify_tile, todo, job=job, pure=False, retries=2)
        for fut in as_completed(futures):
            fut.result()
            bar.update(1)
    if cluster is not None:
        cluster.close()


def predict_run(
    run: RunDir,
    *,
    cube: str | os.PathLike[str] | None = None,
    missing: tuple[str, ...] = (),
    out: str | os.PathLike[str] | None = None,
    window: str | None = None,
    bbox: str | None = None,
    tile: int = 512,
    batch_size: int | None = None,
    device: str | None = None,
    devices: int = 1,
    scheduler: str | None = None,
    confidence: bool = False,
    progress: bool = False,
) -> Path:
    """Map ``cube``'s scene (or a window of it) with ``run``; returns the GeoTIFF path.

    Default output: ``runs/<id>/predict/<cube-name>[-missing-<mods>][-<window>].tif``, a
    PNG beside it, and ``<name>.confidence.tif`` (softmax probability of the class, in
    percent) when ``confidence``.
    """
    from tqdm import tqdm

    from rsmiss.cube import open_cube
    from rsmiss.training.classmap import class_palette, class_tags, geo_profile

    cfg = run.config
    modalities = tuple(run.modalities)
    missing = tuple(m.strip() for m in missing if m.strip())
    missing_columns(missing, modalities)  # validate before any work
    if window and bbox:
        raise ConfigError("--window and --bbox: give one of them")
    if scheduler is not None:
        check_address(scheduler)
    batch = 1 if batch_size is None else batch_size
    for name, value in (("--tile", tile), ("--batch-size", batch), ("--devices", devices)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    cube_path = Path(cube) if cube else Workspace(run.root).cube(cfg.dataset)
    if not cube_path.exists():
        raise DataError(f"cube {cube_path} does not exist; pass --cube PATH of an ingested cube")
    try:
        ds = open_cube(cube_path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot open cube ({type(exc).__name__})", source=str(cube_path)) from None
    check_cube(ds, run.modalities, str(cube_path))
    height, width = (int(v) for v in ds["observed_map"].shape[-2:])
    crs, transform = georeference(ds)
    if window:
        area = parse_window(window, height, width)
    elif bbox:
        area = bbox_window(bbox, transform, height, width)
    else:
        area = Window(0, height, 0, width)
    if out is None:
        tag = f"-missing-{'+'.join(missing)}" if missing else ""
        tag += f"-{area.tag}" if area != Window(0, height, 0, width) else ""
        out = run.path / "predict" / f"{cube_path.name.removesuffix('.zarr')}{tag}.tif"
    out = Path(out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise DataError(f"--out {out}: give a .tif path (the PNG is written beside it)")
    run.load_model("cpu")  # weights and checkpoint present: one line now, not per worker

    parts = out.parent / f".{out.name}.parts"
    request = {
        "run_id": run.run_id,
        "cube": str(cube_path.resolve()),
        "cube_id": str(ds.attrs.get("cube_id")),
        "window": [area.row0, area.row1, area.col0, area.col1],
        "tile": tile,
        "missing": list(missing),
        "confidence": confidence,
        "batch_size": batch_size,
    }
    manifest = parts / "request.json"
    if parts.is_dir() and (not manifest.is_file() or _load(manifest) != request):
        shutil.rmtree(parts)  # another request's tiles: start over
    parts.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        write_json_atomic(manifest, request)
    tiles = tile_grid(area, tile)
    todo = [t for t in tiles if not tile_file(parts, t).is_file()]
    job = TileJob(
        str(run.path), str(cube_path), missing, batch_size, device, confidence, str(parts)
    )
    with tqdm(
        total=len(tiles), initial=len(tiles) - len(todo), unit="tile", disable=not progress
    ) as bar:
        _run_tiles(todo, job, devices, scheduler, bar)

    from rasterio.transform import Affine

    # a cube without georeference: the window keeps its place in pixel coordinates
    placed = (transform or Affine.identity()) @ Affine.translation(area.col0, area.row0)
    geo = geo_profile(crs, list(placed)[:6] if placed != Affine.identity() else None)
    names = list(run.model_info["class_names"])
    palette = class_palette(run.model_info.get("palette"), len(names))
    write_cog(out, parts, tiles, area, band=0, nodata=0, geo=geo, palette=palette,
              tags=class_tags(names))  # fmt: skip
    if confidence:
        write_cog(out.with_suffix(".confidence.tif"), parts, tiles, area, band=1,
                  nodata=CONFIDENCE_NODATA, geo=geo, tags={"units": "percent"})  # fmt: skip
    title = f"{run.run_id} on {cube_path.name}" + (
        f", missing {', '.join(missing)}" if missing else ""
    )
    write_preview(out, names, palette, title)
    shutil.rmtree(parts)
    return out


def _load(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
