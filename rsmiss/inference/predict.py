"""Classification maps of whole scenes with a trained run: GeoTIFF + PNG.

The scene may be the run's own cube or any cube with the same modalities and band counts,
e.g. a new area ingested without labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rsmiss.errors import DataError
from rsmiss.inference.rundir import RunDir, resolve_device
from rsmiss.training.data import Scene, load_scene
from rsmiss.workspace import Workspace


def scene_for_run(
    ds: Any,
    modalities: tuple[str, ...],
    channels: dict[str, int],
    patch_size: int,
    device: torch.device,
    source: str,
) -> Scene:
    """The scene of ``ds`` for a run's modalities, after checking it is compatible."""
    cube_mods = [str(m) for m in ds.attrs.get("modalities", [])] or [
        str(m) for m in ds["modality"].values
    ]
    lacking = [m for m in modalities if m not in cube_mods or f"scene_{m}" not in ds]
    if lacking:
        raise DataError(
            f"cube has no modality {lacking[0]!r} that the run needs ({', '.join(modalities)})",
            source=source,
        )
    for m in modalities:
        c = int(ds[f"scene_{m}"].shape[0])
        if c != channels[m]:
            raise DataError(
                f"modality {m!r} has {c} bands but the run was trained on {channels[m]}",
                source=source,
            )
    return load_scene(ds, modalities, patch_size, device)


def predict_run(
    run: RunDir,
    *,
    cube: str | os.PathLike[str] | None = None,
    missing: tuple[str, ...] = (),
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 2048,
    device: str | None = None,
    progress: bool = False,
) -> Path:
    """Classify every pixel of a cube's scene with ``run``; write GeoTIFF + PNG, return the tif.

    Default output: ``runs/<id>/predict/<cube-name>[-missing-<mods>].tif``.
    """
    from rsmiss.cube import open_cube
    from rsmiss.training.classify import classify_scene, missing_columns
    from rsmiss.training.classmap import write_class_map

    cfg = run.config
    modalities = tuple(run.modalities)
    missing = tuple(m.strip() for m in missing if m.strip())
    missing_columns(missing, modalities)  # validate before any work
    cube_path = Path(cube) if cube else Workspace(run.root).cube(cfg.dataset)
    if not cube_path.exists():
        raise DataError(f"cube {cube_path} does not exist; pass --cube PATH of an ingested cube")
    if out is None:
        tag = f"-missing-{'+'.join(missing)}" if missing else ""
        out = run.path / "predict" / f"{cube_path.name.removesuffix('.zarr')}{tag}.tif"
    out = Path(out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise DataError(f"--out {out}: give a .tif path (the PNG is written beside it)")
    try:
        ds = open_cube(cube_path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot open cube ({type(exc).__name__})", source=str(cube_path)) from None
    dev = resolve_device(device)
    scene = scene_for_run(ds, modalities, run.modalities, cfg.patch_size, dev, str(cube_path))
    model = run.load_model(dev)
    cmap = classify_scene(
        model,
        scene,
        dev,
        precision=cfg.precision,
        missing=missing,
        batch_size=batch_size,
        progress=progress,
    )
    palette = run.model_info.get("palette") or None
    title = f"{run.run_id} on {cube_path.name}" + (
        f", missing {', '.join(missing)}" if missing else ""
    )
    tif, _ = write_class_map(
        cmap + 1,
        out,
        class_names=list(run.model_info["class_names"]),
        palette=palette,
        crs=ds.attrs.get("crs"),
        transform=ds.attrs.get("transform"),
        title=title,
    )
    return tif
