"""Classify every pixel of a scene with a model: the forward pass behind every class map.

Patches are cut on the fly from the padded scene (the same gather as training), in batches,
so a scene costs its own size in memory, not P² times it. Where a sensor has no data (the
cube's per-pixel ``observed_map``) that modality is missing for the pixel; ``missing``
simulates absent sensors for every pixel. Missing encoders are skipped exactly as in
training; a pixel no sensor observed is not classified (-1).

Training maps its own scene with this at the end of a run; ``rsmiss.inference`` maps whole
scenes tile by tile with the same function, so both give the same classes.
"""

from __future__ import annotations

import numpy as np
import torch

from rsmiss.errors import ConfigError
from rsmiss.training.data import Scene
from rsmiss.training.loop import autocast


def missing_columns(missing: tuple[str, ...] | list[str], modalities: tuple[str, ...]) -> list[int]:
    """Mask columns of the ``missing`` modalities; at least one modality must stay."""
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
            avail = observed[:, flat_host].T.contiguous()
            with autocast(device, precision):
                out = model(scene.patches(flat // w, flat % w, device), avail)
            preds.append(out.logits.argmax(dim=1))
            bar.update(len(flat_host))
    classes = torch.full((n,), -1, dtype=torch.long)
    if preds:
        classes[todo] = torch.cat(preds).cpu()
    return classes.reshape(h, w).numpy()
