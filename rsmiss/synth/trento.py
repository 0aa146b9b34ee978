"""Synthetic Trento (HS + LiDAR, 6 classes) in the layout of the real .mat files.

Confusable by design: Apple trees / Woods have near-identical spectra but 1 m vs 11 m
heights; Ground / Roads share the ground height but not the spectrum; Buildings / Woods
share the height; Apple trees / Vineyard share height and LiDAR intensity but not the
spectrum (more soil between vine rows). With ``real_from`` the real LiDAR, label and split
files are copied byte for byte and only the HS cube is generated, from the real label map.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from scipy import ndimage

from rsmiss.synth.layout import (
    Layout,
    parcels_from_labels,
    per_parcel,
    scaled_layout,
    smooth_noise,
    voronoi,
)
from rsmiss.synth.specs import TRENTO
from rsmiss.synth.spectra import gapped_hs_cube
from rsmiss.synth.writers import write_mat

SPEC = TRENTO
REAL_FILES = ("Italy_lidar.mat", "allgrd.mat", "TRLabel.mat", "TSLabel.mat")
REAL_KEYS = {"allgrd.mat": "mask_test", "TRLabel.mat": "TRLabel", "TSLabel.mat": "TSLabel"}

HS_DTYPE = np.float64  # MATLAB's default class; values are reflectance x 10000, integral
LIDAR_DTYPE = np.float32  # as the real Italy_lidar.mat

# Class recipes over materials(); order = SPEC.class_names.
RECIPES = (
    {"veg": 0.72, "veg_dark": 0.18, "soil": 0.10},  # Apple trees
    {"roof_tile": 0.6, "concrete": 0.4},  # Buildings
    {"soil": 0.8, "veg_sparse": 0.2},  # Ground
    {"veg": 0.68, "veg_dark": 0.28, "soil": 0.04},  # Woods
    {"veg": 0.55, "soil": 0.45},  # Vineyard
    {"asphalt": 0.85, "gravel": 0.15},  # Roads
)
GAP_RECIPES = (
    {"veg_sparse": 0.5, "soil": 0.5},  # between apple trees
    {"concrete": 0.5, "asphalt": 0.3, "veg": 0.2},  # yards between buildings
    {"soil": 0.8, "veg_sparse": 0.2},
    {"veg_dark": 0.7, "soil": 0.3},  # clearings
    {"soil": 0.7, "veg_sparse": 0.3},
    {"asphalt": 0.85, "gravel": 0.15},
)
GAP_FRACTION = np.array([0.1, 0.15, 0.0, 0.05, 0.1, 0.0], dtype=np.float32)
# DSM height (m): class mean, per-parcel sd, per-pixel sd; LiDAR channel 1 (intensity) likewise
HEIGHT = np.array(
    [
        [1.0, 0.25, 0.35],
        [10.0, 1.5, 0.4],
        [0.1, 0.05, 0.12],
        [10.7, 1.5, 2.0],
        [1.2, 0.25, 0.35],
        [0.1, 0.05, 0.12],
    ],
    dtype=np.float32,
)
INTENSITY = np.array(
    [[80, 4, 8], [35, 8, 10], [75, 4, 8], [64, 5, 10], [81, 4, 8], [44, 8, 12]], dtype=np.float32
)
LIDAR_MAX = (20.15, 2901.0)  # value ranges of the real channels

N_PARCELS = 120
ROAD_WIDTH = 4.0


def layout(seed_rng: np.random.Generator, scale: float) -> Layout:
    """The synthetic Trento layout at ``scale`` (label maps included)."""
    return scaled_layout(
        SPEC, seed_rng, scale, n_parcels=N_PARCELS, object_px=40.0, lines={6: ROAD_WIDTH}
    )


def check_real(real_from: Path) -> None:
    """Refuse a ``--real-from`` folder without the four real files of the right shape."""
    from scipy.io import loadmat

    from rsmiss.errors import DataError

    for name in REAL_FILES:
        path = real_from / name
        if not path.is_file():
            raise DataError(
                f"--real-from {real_from}: {name} is missing; point it at a folder holding "
                f"{', '.join(REAL_FILES)}"
            )
    for name, key in REAL_KEYS.items():
        try:
            arr = loadmat(real_from / name)[key]
        except Exception as exc:  # any read failure is a problem of the user's data
            raise DataError(f"{real_from / name}: cannot read key {key!r} ({exc})") from None
        if arr.shape != (SPEC.height, SPEC.width):
            raise DataError(
                f"{real_from / name}: {key} has shape {arr.shape}, expected "
                f"{(SPEC.height, SPEC.width)}"
            )


def _real_layout(real_from: Path, rng: np.random.Generator) -> Layout:
    from scipy.io import loadmat

    labels = loadmat(real_from / "allgrd.mat")["mask_test"].astype(np.int16)
    train = loadmat(real_from / "TRLabel.mat")["TRLabel"].astype(np.uint8)
    test = loadmat(real_from / "TSLabel.mat")["TSLabel"].astype(np.uint8)
    # unlabelled pixels take the class of the nearest labelled one (their content is unknown)
    _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    classes = labels[iy, ix]
    parcel, n_parcels = parcels_from_labels(classes, rng, N_PARCELS)
    h, w = classes.shape
    objects, n_obj = voronoi(h, w, round(h * w / 40), rng)
    return Layout(classes, parcel, n_parcels, objects, n_obj, train, test)


def write(tmp: Path, rng: np.random.Generator, scale: float, real_from: Path | None) -> None:
    """Write the five Trento files into ``tmp``."""
    if real_from is not None:
        lay = _real_layout(real_from, rng)
    else:
        lay = layout(rng, scale)
    hs, gaps = gapped_hs_cube(
        lay,
        SPEC.wavelengths(),
        rng,
        recipes=RECIPES,
        gap_recipes=GAP_RECIPES,
        gap_fraction=GAP_FRACTION,
        noise=0.004,
        band_order="hwb_f",
    )
    hs = np.rint(np.clip(hs, 0.0, 1.0) * 10000.0).astype(HS_DTYPE, order="F")
    write_mat(tmp / "Italy_hsi.mat", {"data": hs}, compress=False)
    del hs
    if real_from is not None:
        for name in REAL_FILES:
            shutil.copyfile(real_from / name, tmp / name)
        return
    lidar = _lidar(lay, gaps, rng)
    write_mat(tmp / "Italy_lidar.mat", {"data": lidar}, compress=True)
    labelled = np.where(lay.train > 0, lay.train, lay.test).astype(np.uint8)
    for name, key, arr in (
        ("allgrd.mat", "mask_test", labelled),
        ("TRLabel.mat", "TRLabel", lay.train),
        ("TSLabel.mat", "TSLabel", lay.test),
    ):
        write_mat(tmp / name, {key: arr.astype(np.uint8)}, compress=True)


def _lidar(lay: Layout, gaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 2) float32: DSM height above ground and return intensity, per class + noise."""
    cls = lay.classes - 1
    shape = lay.shape
    height = HEIGHT[cls, 0] + per_parcel(lay, HEIGHT[:, 1], rng)
    canopy = smooth_noise(shape, 1.5, rng)
    height = height + HEIGHT[cls, 2] * np.where(cls == 3, canopy, rng.standard_normal(shape))
    height = np.where(gaps, 0.1 + 0.1 * rng.standard_normal(shape), height)
    inten = INTENSITY[cls, 0] + per_parcel(lay, INTENSITY[:, 1], rng)
    inten = inten + INTENSITY[cls, 2] * rng.standard_normal(shape)
    out = np.empty((*shape, 2), dtype=LIDAR_DTYPE, order="F")
    out[..., 0] = np.clip(height, 0.0, LIDAR_MAX[0])
    out[..., 1] = np.clip(inten, 0.0, LIDAR_MAX[1])
    return out
