"""Synthetic Augsburg (HS + dual-pol SAR + DSM, 7 classes) in the layout of the .mat files.

Confusable by design: Low plants / Allotment have close spectra but allotments hold huts
and fruit trees (DSM) and bright SAR returns; Residential / Commercial / Industrial mix
the same roof materials and differ in height and double-bounce backscatter. The HS cube
is spatially blurred ("LR": 30 m data on the 10 m grid), SAR and DSM are sharp.

SAR bands follow the benchmark's description: VV and VH intensity and the real and
imaginary parts of the VV-VH covariance term, with multiplicative gamma speckle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsmiss.synth.layout import (
    Layout,
    object_field,
    per_parcel,
    relief,
    scaled_layout,
    smooth_noise,
)
from rsmiss.synth.specs import AUGSBURG
from rsmiss.synth.spectra import gapped_hs_cube
from rsmiss.synth.writers import write_mat

SPEC = AUGSBURG
HS_DTYPE = np.float64  # MATLAB double, reflectance 0..1
SAR_DTYPE = np.float64
DSM_DTYPE = np.float64
TRAIN_DTYPE = np.uint8  # as documented
TEST_DTYPE = np.float32  # as documented (the real TestImage.mat is single)

RECIPES = (
    {"veg": 0.5, "veg_dark": 0.5},  # Forest
    {"roof_tile": 0.45, "concrete": 0.2, "veg": 0.35},  # Residential area
    {"concrete": 0.5, "roof_metal": 0.35, "asphalt": 0.15},  # Industrial area
    {"veg": 0.7, "veg_sparse": 0.2, "soil": 0.1},  # Low plants
    {"veg": 0.64, "veg_sparse": 0.2, "roof_tile": 0.04, "soil": 0.12},  # Allotment
    {"concrete": 0.42, "roof_tile": 0.33, "asphalt": 0.1, "veg": 0.15},  # Commercial area
    {"water": 1.0},  # Water
)
GAP_RECIPES = (
    {"veg": 0.7, "soil": 0.3},
    {"veg": 0.8, "soil": 0.2},
    {"asphalt": 0.8, "concrete": 0.2},
    {"veg": 0.7, "veg_sparse": 0.2, "soil": 0.1},
    {"veg": 0.8, "soil": 0.2},
    {"asphalt": 0.7, "concrete": 0.3},
    {"water": 1.0},
)
GAP_FRACTION = np.array([0.05, 0.35, 0.2, 0.0, 0.5, 0.15, 0.0], dtype=np.float32)
# height above terrain (m): mean, per-parcel sd, per-pixel sd
HEIGHT = np.array(
    [
        [18.0, 3.0, 3.0],
        [8.0, 1.5, 0.5],
        [10.0, 3.0, 0.6],
        [0.3, 0.1, 0.2],
        [3.0, 0.8, 1.0],
        [17.0, 4.0, 0.6],
        [-1.5, 0.3, 0.05],
    ],
    dtype=np.float32,
)
# SAR backscatter (dB): VV mean, VH mean, per-parcel sd, per-object sd; VV-VH coherence
SAR_DB = np.array(
    [
        [-7.0, -12.5, 1.0, 0.5],
        [-3.0, -13.5, 1.2, 2.5],
        [-1.0, -12.0, 1.5, 3.0],
        [-11.0, -18.0, 1.5, 0.3],
        [-5.5, -12.0, 1.2, 2.0],
        [-2.0, -12.5, 1.5, 3.0],
        [-20.0, -27.0, 1.0, 0.2],
    ],
    dtype=np.float32,
)
SAR_RHO = np.array([0.15, 0.45, 0.5, 0.25, 0.3, 0.5, 0.05], dtype=np.float32)
SAR_LOOKS = 4.0
ELEVATION = 490.0  # terrain elevation (m) of the DSM
N_PARCELS = 300
HS_BLUR = 1.5


def layout(rng: np.random.Generator, scale: float) -> Layout:
    return scaled_layout(SPEC, rng, scale, n_parcels=N_PARCELS, object_px=30.0, norm=2.0)


def write(tmp: Path, rng: np.random.Generator, scale: float, real_from: Path | None) -> None:
    """Write the five Augsburg .mat files into ``tmp``."""
    lay = layout(rng, scale)
    hs, gaps = gapped_hs_cube(
        lay,
        SPEC.wavelengths(),
        rng,
        recipes=RECIPES,
        gap_recipes=GAP_RECIPES,
        gap_fraction=GAP_FRACTION,
        noise=0.003,
        blur=HS_BLUR,
        band_order="hwb_f",
    )
    hs = np.clip(hs, 0.0, 1.0).astype(HS_DTYPE, order="F")
    write_mat(tmp / "data_HS_LR.mat", {"data_HS_LR": hs}, compress=False)
    del hs
    sar = _sar(lay, gaps, rng)
    write_mat(tmp / "data_SAR_HR.mat", {"data_SAR_HR": sar}, compress=False)
    dsm = _dsm(lay, gaps, rng)
    write_mat(tmp / "data_DSM.mat", {"data_DSM": dsm}, compress=True)
    train, test = lay.train.astype(TRAIN_DTYPE), lay.test.astype(TEST_DTYPE)
    write_mat(tmp / "TrainImage.mat", {"TrainImage": train}, compress=True)
    write_mat(tmp / "TestImage.mat", {"TestImage": test}, compress=True)


def _dsm(lay: Layout, gaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cls = lay.classes - 1
    shape = lay.shape
    terrain = ELEVATION + 3.0 * relief(shape, rng)
    height = (HEIGHT[cls, 0] + per_parcel(lay, HEIGHT[:, 1], rng)) * (
        0.7 + 0.6 * object_field(lay, rng)
    )
    canopy = smooth_noise(shape, 1.2, rng)
    height = height + HEIGHT[cls, 2] * np.where(cls == 0, canopy, rng.standard_normal(shape))
    height = np.where(gaps, 0.3 * np.abs(rng.standard_normal(shape)), height)
    return (terrain + height).astype(DSM_DTYPE)


def _sar(lay: Layout, gaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 4) float64: VV, VH intensity, Re and Im of <VV VH*>, speckled."""
    cls = lay.classes - 1
    shape = lay.shape
    parcel = per_parcel(lay, SAR_DB[:, 2], rng)
    objects = rng.standard_normal(lay.n_objects).astype(np.float32)[lay.objects]
    objects = objects * SAR_DB[cls, 3]
    gap_db = np.where(gaps, -4.0, 0.0)
    vv_db = SAR_DB[cls, 0] + parcel + objects + gap_db
    vh_db = SAR_DB[cls, 1] + parcel + 0.5 * objects + gap_db
    looks = SAR_LOOKS
    vv = 10 ** (vv_db / 10) * rng.gamma(looks, 1 / looks, shape)
    vh = 10 ** (vh_db / 10) * rng.gamma(looks, 1 / looks, shape)
    rho = np.clip(SAR_RHO[cls] + 0.1 * rng.standard_normal(shape), 0.0, 1.0)
    phase = rng.normal(0.0, 0.6, shape)
    amp = np.sqrt(vv * vh) * rho
    out = np.empty((*shape, 4), dtype=SAR_DTYPE, order="F")
    out[..., 0], out[..., 1] = vv, vh
    out[..., 2], out[..., 3] = amp * np.cos(phase), amp * np.sin(phase)
    return out
