"""What a scenario needs from a cube: the per-sample label, split, position and observation.

Read through :func:`rsmiss.cube.open_cube` (which refuses unfinished or foreign stores and
loads nothing heavier than xarray); only the small per-sample variables are loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CubeInputs:
    """The per-sample facts a scenario needs (numpy, already loaded)."""

    dataset: str
    cube_id: str
    modalities: tuple[str, ...]
    label: np.ndarray
    split: np.ndarray  # str, "train" / "test"
    row: np.ndarray
    col: np.ndarray
    observed: np.ndarray  # sample x modality, in ``modalities`` order
    shape: tuple[int, int]  # the scene grid (height, width)
    path: Path


def read_cube_inputs(path: str | os.PathLike[str]) -> CubeInputs:
    """Load label/split/row/col/observed and the identifying attributes of the cube at
    ``path``; a DataError naming the path when it is not a finished rsmiss cube."""
    from rsmiss.cube import open_cube

    path = Path(path)
    cube = open_cube(path)
    return CubeInputs(
        dataset=str(cube.attrs["dataset"]),
        cube_id=str(cube.attrs["cube_id"]),
        modalities=tuple(str(m) for m in cube["modality"].values),
        label=np.asarray(cube["label"].values, dtype=np.int64),
        split=np.asarray(cube["split"].values, dtype=object).astype(str),
        row=np.asarray(cube["row"].values, dtype=np.int64),
        col=np.asarray(cube["col"].values, dtype=np.int64),
        observed=np.asarray(cube["observed"].transpose("sample", "modality").values, dtype=bool),
        shape=(int(cube.sizes["y"]), int(cube.sizes["x"])),
        path=path,
    )


__all__ = ["CubeInputs", "read_cube_inputs"]
