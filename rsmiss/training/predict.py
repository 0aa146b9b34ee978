"""Classification maps: classify every pixel of a cube's scene, write GeoTIFF + PNG.

Patches are cut on the fly from the padded scene (the same gather as training), in batches,
so a whole scene costs its own size in memory, not P² times it. The scene may be the run's
own cube or any cube with the same modalities and band counts, e.g. a new area ingested
without labels. Where a sensor has no data (the cube's per-pixel ``observed_map``) that
modality is missing for the pixel; ``missing`` simulates absent sensors for every pixel.
Missing encoders are skipped exactly as in training; a pixel no sensor observed is nodata.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.training.data import Scene, load_scene
from rsmiss.training.loop import autocast
from rsmiss.workspace import atomic_path


def missing_columns(missing: tuple[str, ...] | list[str], modalities: tuple[str, ...]) -> list[int]:
    unknown = [m for m in missing if m not in modalities]
    if unknown:
        raise ConfigError(
            f"--missing: unknown modality {unknown[0]!r}; this run uses {', '.join(modalities)}"
        )
    if len(set(missing)) >= len(modalities):
        raise ConfigError("--missing: at least one modality must stay available")
    return [modalities.index(m) for m in missing]


@torch.no_grad()
def classify_scene(
    model: torch.nn.Module,
    scene: Scene,
    device: torch.device,
    *,
    precision: str = "32",
    missing: tuple[str, ...] = (),
    batch_size: int = 2048,
    progress: bool = False,
) -> np.ndarray:
    """0-based class of every pixel, shape (H, W); -1 where no modality was observed.

    A pixel's modalities are those its sensors observed (``scene.observed``: a cloud, a
    LiDAR gap or the edge of a footprint makes that modality missing there, exactly as in
    training) minus the ``missing`` ones. Pixels left with none (the no-data border of a
    flight strip) are not classified at all. Availability masks are built on the host, so
    the model sizes its encoder batches without waiting on the device.
    """
    from tqdm import tqdm

    model.eval()
    h, w, m = scene.height, scene.width, len(scene.modalities)
    cols_missing = missing_columns(tuple(missing), scene.modalities)
    keep = torch.ones(m, dtype=torch.bool)
    keep[cols_missing] = False
    n = h * w
    if scene.observed is None:
        observed, todo = None, torch.arange(n)
    else:
        observed = scene.observed.reshape(m, -1) & keep[:, None]
        todo = observed.any(0).nonzero().view(-1)
    if device.type == "cuda":
        todo = todo.pin_memory()  # batches of it go to the device without a sync
    preds = []
    with tqdm(total=n, unit="px", unit_scale=True, disable=not progress, leave=False) as bar:
        bar.update(n - len(todo))
        for start in range(0, len(todo), batch_size):
            flat_host = todo[start : start + batch_size]
            flat = flat_host.to(device, non_blocking=True)
            if observed is None:
                avail = keep.expand(len(flat_host), -1).clone()
            else:
                avail = observed[:, flat_host].T.contiguous()
            with autocast(device, precision):
                out = model(scene.patches(flat // w, flat % w, device), avail)
            preds.append(out.logits.argmax(dim=1))
            bar.update(len(flat_host))
    classes = torch.full((n,), -1, dtype=torch.long)
    if preds:
        classes[todo] = torch.cat(preds).cpu()
    return classes.reshape(h, w).numpy()


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


def _affine(transform: Any):
    from rasterio.transform import Affine

    t = [float(v) for v in transform]
    if len(t) >= 6:
        return Affine(*t[:6])
    raise DataError(f"cube transform {transform!r} is not 6 numbers")


def _attr_list(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


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
    """Write ``class_map`` (raw 1-based ids, uint8) as GeoTIFF and a PNG beside it.

    The GeoTIFF carries the cube's CRS and transform when known and the class palette as
    its colour table; the PNG shows the palette with a legend.
    """
    import rasterio

    tif_path = Path(tif_path)
    png_path = tif_path.with_suffix(".png")
    data = np.asarray(class_map, dtype=np.uint8)
    h, w = data.shape
    palette = _attr_list(palette) or _default_palette(len(class_names))
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "compress": "deflate",
        "nodata": 0,
    }
    crs = _attr_list(crs)
    if crs:
        profile["crs"] = rasterio.crs.CRS.from_user_input(crs)
    if transform is not None and _attr_list(transform) is not None:
        profile["transform"] = _affine(_attr_list(transform))
    import warnings

    with atomic_path(tif_path) as tmp, warnings.catch_warnings():
        # plain-array cubes have no georeferencing: an identity transform is what we mean
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
            dst.write_colormap(
                1, {i + 1: (*[int(v) for v in palette[i][:3]], 255) for i in range(len(palette))}
            )
            dst.update_tags(1, class_names=json.dumps(class_names))
    _write_png(data, png_path, class_names, palette, title)
    return tif_path, png_path


def _default_palette(n: int) -> list[list[int]]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [[int(255 * c) for c in cmap(i % 20)[:3]] for i in range(n)]


# Shown for no-data pixels: the first colour no class uses (Houston2013's palette has white
# for Residential, so a fixed white or black could pass a class off as missing data).
NODATA_COLOURS = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 255))


def nodata_colour(palette: list) -> tuple[int, int, int]:
    used = {tuple(int(v) for v in colour[:3]) for colour in palette}
    return next((c for c in NODATA_COLOURS if c not in used), NODATA_COLOURS[0])


def _write_png(
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
