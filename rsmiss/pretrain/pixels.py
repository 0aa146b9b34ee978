"""The pixels a pretraining objective reads from one cube.

Self-supervised objectives (``mae``, ``contrastive``) read only the co-registered scene and
its per-pixel ``observed_map``: every pixel some sensor observed is a sample, labelled or
not, training or test location alike — that is what domain pretraining on unlabelled
imagery means, and the provenance says so. They never open ``label``, ``label_map`` or
``split``, so relabelling a cube cannot change a weight. ``supervised`` reads the
training-split samples and their labels, never a test label.

Patches are cut from the padded scene by index gathering (``rsmiss.training.data``), the
same code that feeds training and prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.errors import DataError
from rsmiss.training.data import Scene, load_scene


@dataclass
class PixelSet:
    """One cube's samples for pretraining: scene, pixel positions, observed mask, labels."""

    dataset: str
    cube_id: str
    scene: Scene
    row: torch.Tensor  # (N,) int64
    col: torch.Tensor  # (N,) int64
    observed: torch.Tensor  # (N, M) bool, columns in scene.modalities order
    label: torch.Tensor | None  # (N,) 0-based class, supervised only
    n_classes: int
    synthetic: bool

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.scene.modalities

    def to(self, device: torch.device) -> PixelSet:
        return replace(self, scene=self.scene.to(device))


def _attr(ds: Any, key: str, default: Any = None) -> Any:
    from rsmiss.training.data import _json_attr

    return _json_attr(ds.attrs.get(key, default))


def load_pixels(
    cube_path: str | Path, patch_size: int, *, labels: bool, scene: Scene | None = None
) -> PixelSet:
    """Read one cube for pretraining (host memory).

    ``labels=False``: every observed pixel of the scene, no label read. ``labels=True``:
    the training-split samples with their labels (refused when the cube has none).
    ``scene``: this cube's scene, already read and padded for ``patch_size`` (not re-read).
    """
    from rsmiss.cube import open_cube

    path = Path(cube_path)
    ds = open_cube(path)
    modalities = tuple(str(m) for m in ds["modality"].values)
    dataset = str(_attr(ds, "dataset", path.stem))
    if scene is None:
        scene = load_scene(ds, modalities, patch_size, torch.device("cpu"))
    observed_map = scene.observed.numpy()
    label = None
    n_classes = 0
    if labels:
        split = np.asarray(ds["split"].values).astype(object).astype(str)
        idx = np.flatnonzero(split == "train")
        if idx.size == 0:
            raise DataError(
                "cube has no training-split labels; --objective supervised needs a labelled "
                "source cube (use mae or contrastive for unlabelled data)",
                source=str(path),
            )
        rows = np.asarray(ds["row"].values, dtype=np.int64)[idx]
        cols = np.asarray(ds["col"].values, dtype=np.int64)[idx]
        lab = np.asarray(ds["label"].values, dtype=np.int64)[idx] - 1
        names = list(_attr(ds, "class_names", []) or [])
        n_classes = len(names) or int(lab.max()) + 1
        label = torch.from_numpy(lab)
    else:
        any_obs = observed_map.any(axis=0)
        rows, cols = np.nonzero(any_obs)
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    observed = observed_map[:, rows, cols].T.copy()
    keep = observed.any(axis=1)
    rows, cols, observed = rows[keep], cols[keep], observed[keep]
    if label is not None:
        label = label[torch.from_numpy(keep)]
    if rows.size == 0:
        raise DataError("cube has no observed pixel to pretrain on", source=str(path))
    return PixelSet(
        dataset=dataset,
        cube_id=str(_attr(ds, "cube_id", "")),
        scene=scene,
        row=torch.from_numpy(rows),
        col=torch.from_numpy(cols),
        observed=torch.from_numpy(observed),
        label=label,
        n_classes=n_classes,
        synthetic=bool(_attr(ds, "synthetic", False)),
    )


def probe_pixels(
    cube_path: str | Path, patch_size: int, limit: int, seed: int, scene: Scene | None = None
) -> PixelSet:
    """Training-split pixels for the linear probe (at most ``limit``, a seeded subset)."""
    pixels = load_pixels(cube_path, patch_size, labels=True, scene=scene)
    n = len(pixels)
    if n > limit:
        g = torch.Generator().manual_seed(int(seed) * 104_729 + 3)
        sel = torch.randperm(n, generator=g)[:limit].sort().values
        pixels = replace(
            pixels,
            row=pixels.row[sel],
            col=pixels.col[sel],
            observed=pixels.observed[sel],
            label=None if pixels.label is None else pixels.label[sel],
        )
    return pixels
