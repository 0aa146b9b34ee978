"""Synthetic spectra: low-rank per-class reference spectra over a layout.

Per-class reference spectra (mixtures of a few material spectra) plus a few smooth variation
spectra, weighted per parcel and per pixel, then per-band sensor noise that grows at the
sensor's spectral ends and in the water absorptions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from rsmiss.synth.layout import Layout, object_field


def _g(wl: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - mu) / sd) ** 2)


def _sig(wl: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(wl - mu) / sd))


def _water_bands(wl: np.ndarray, depth: float) -> np.ndarray:
    """Atmospheric/leaf water absorption (970, 1200, 1450, 1940 nm) as a multiplicative dip."""
    dip = 0.12 * _g(wl, 970, 30) + 0.15 * _g(wl, 1200, 40)
    dip = dip + 0.6 * _g(wl, 1450, 60) + 0.75 * _g(wl, 1940, 80)
    return 1.0 - depth * dip


def materials(wl: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth reflectance (0..1) of a few base materials over the wavelengths ``wl`` (nm)."""
    wl = np.asarray(wl, dtype=np.float64)
    swir_drop = 1.0 - 0.45 * _sig(wl, 1400, 180)

    def veg(nir: float, green: float, edge: float, red: float) -> np.ndarray:
        s = 0.03 + green * _g(wl, 550, 35) + red * _g(wl, 660, 30) - 0.015 * _g(wl, 675, 18)
        s = s + nir * _sig(wl, edge, 14) * swir_drop
        return np.clip(s * _water_bands(wl, 1.0), 0.005, None)

    soil = (0.07 + 0.22 * _sig(wl, 650, 220)) * _water_bands(wl, 0.35) - 0.03 * _g(wl, 2200, 40)
    return {
        "veg": veg(0.45, 0.06, 715, 0.0),
        "veg_dark": veg(0.33, 0.04, 712, 0.0),
        "veg_stressed": veg(0.28, 0.05, 705, 0.05),
        "veg_sparse": veg(0.22, 0.03, 718, 0.02),
        "synthetic_grass": np.clip(0.04 + 0.09 * _g(wl, 535, 45) + 0.08 * _sig(wl, 760, 60), 0, 1),
        "soil": np.clip(soil, 0.01, None),
        "soil_wet": np.clip(0.7 * soil, 0.01, None),
        "asphalt": 0.05 + 0.05 * (wl - 350) / 2150 + 0.01 * _sig(wl, 600, 80),
        "asphalt_old": 0.08 + 0.07 * (wl - 350) / 2150 + 0.02 * _sig(wl, 600, 80),
        "concrete": 0.22 + 0.1 * _sig(wl, 480, 60) - 0.04 * _g(wl, 1940, 80),
        "roof_tile": 0.07 + 0.22 * _sig(wl, 590, 25) - 0.05 * _sig(wl, 1500, 300),
        "roof_metal": 0.3 + 0.05 * _sig(wl, 800, 200),
        "rubber": 0.05 + 0.16 * _sig(wl, 610, 20),
        "water": 0.02 + 0.05 * _g(wl, 490, 70) + 0.015 * _g(wl, 560, 40) * (wl < 900),
        "gravel": 0.12 + 0.08 * _sig(wl, 550, 150),
        "court": 0.06 + 0.05 * _g(wl, 470, 50) + 0.12 * _sig(wl, 650, 40),
    }


def mix(mats: dict[str, np.ndarray], recipe: dict[str, float]) -> np.ndarray:
    """A class spectrum as a linear mixture of base materials."""
    return sum(w * mats[m] for m, w in recipe.items())


def variation_basis(wl: np.ndarray, n: int = 4) -> np.ndarray:
    """Smooth spectral directions of within-class variability (n, bands), unit max."""
    wl = np.asarray(wl, dtype=np.float64)
    lo, hi = wl.min(), wl.max()
    t = (wl - lo) / max(hi - lo, 1.0)
    rows = [np.ones_like(t), t - 0.5, _g(wl, 0.5 * (lo + hi), 0.15 * (hi - lo)), np.cos(3 * t)]
    rows += [np.sin((k + 1) * math.pi * t) for k in range(max(0, n - len(rows)))]
    basis = np.stack(rows[:n])
    return basis / np.abs(basis).max(axis=1, keepdims=True)


def class_spectra(
    wl: np.ndarray, recipes: tuple[dict[str, float], ...], gap_recipes: tuple[dict[str, float], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Class and gap reference spectra (C, B), reflectance 0..1, mixed from ``materials``."""
    mats = materials(wl)
    return (
        np.stack([mix(mats, r) for r in recipes]),
        np.stack([mix(mats, r) for r in gap_recipes]),
    )


def hs_cube(
    layout: Layout,
    spectra: np.ndarray,
    rng: np.random.Generator,
    *,
    gap_spectra: np.ndarray | None = None,
    gaps: np.ndarray | None = None,
    var_basis: np.ndarray,
    parcel_sd: float = 0.015,
    pixel_sd: float = 0.008,
    bright_parcel: float = 0.07,
    bright_pixel: float = 0.04,
    blur: float = 0.5,
    noise: np.ndarray | float = 0.004,
    gain: float = 1.0,
    band_order: str = "bhw",
) -> np.ndarray:
    """Low-rank HS reflectance (float32): class/gap spectra x brightness + variation + noise.

    ``spectra`` is (C, B); ``gap_spectra`` (C, B) replaces a class's spectrum where ``gaps``
    (H, W bool) is set (garden between houses, ground between crowns); ``gain`` scales the
    result (reflectance to sensor units) without an extra pass. ``band_order``
    "bhw" gives (B, H, W) C-order (GeoTIFF); "hwb_f" gives (H, W, B) Fortran-contiguous,
    which a .mat writer copies without a transpose.
    """
    h, w = layout.shape
    n_cls, n_b = spectra.shape
    n_var = var_basis.shape[0]
    basis = [spectra, var_basis]
    if gap_spectra is not None:
        basis.insert(1, gap_spectra)
    basis = (np.concatenate(basis) * gain).astype(np.float32)  # (K, B)
    k_all = basis.shape[0]
    n = h * w
    cls0 = layout.classes.ravel().astype(np.int64) - 1
    par = layout.parcel.ravel()
    bright = 1.0 + rng.normal(0, bright_parcel, layout.n_parcels).astype(np.float32)
    pix_bright = bright[par] * (1.0 + bright_pixel * rng.standard_normal(n, dtype=np.float32))
    coef = np.zeros((k_all, n), dtype=np.float32)
    row = cls0
    if gap_spectra is not None and gaps is not None:
        row = np.where(gaps.ravel(), cls0 + n_cls, cls0)
    coef[row, np.arange(n)] = pix_bright
    pvar = rng.normal(0, parcel_sd, (layout.n_parcels, n_var)).astype(np.float32)
    coef[k_all - n_var :] = (pvar[par] + pixel_sd * rng.standard_normal((n, n_var), np.float32)).T
    coef = coef.reshape(k_all, h, w)
    if blur > 0:
        coef = ndimage.gaussian_filter(coef, (0, blur, blur), mode="reflect")
    if band_order == "hwb_f":
        coef = np.ascontiguousarray(coef.transpose(0, 2, 1))  # pixels in column-major order
    out = basis.T @ coef.reshape(k_all, n)  # (B, N)
    # zero-mean uniform sensor noise of std ``noise``: a third of the cost of normal draws
    half = np.float32(math.sqrt(3.0) * gain) * np.broadcast_to(
        np.asarray(noise, dtype=np.float32), (n_b,)
    )
    step = 16
    for b0 in range(0, n_b, step):
        b1 = min(n_b, b0 + step)
        u = rng.random((b1 - b0, n), dtype=np.float32)
        u -= np.float32(0.5)
        u *= 2 * half[b0:b1, None]
        out[b0:b1] += u
    if band_order == "hwb_f":
        return out.reshape(n_b, w, h).transpose(2, 1, 0)
    return out.reshape(n_b, h, w)


def gapped_hs_cube(
    layout: Layout,
    wl: np.ndarray,
    rng: np.random.Generator,
    *,
    recipes: tuple[dict[str, float], ...],
    gap_recipes: tuple[dict[str, float], ...],
    gap_fraction: np.ndarray,
    noise: float,
    **options,
) -> tuple[np.ndarray, np.ndarray]:
    """The HS cube of a scene whose objects leave gaps (lawns, yards), and the gap mask.

    A fraction ``gap_fraction`` (C,) of each class's object cells shows the class's gap
    recipe instead of its own; the mask is returned because the other modalities must see
    the same gaps. ``noise`` is the base sensor noise (``band_noise``); ``options`` go to
    ``hs_cube`` (gain, blur, band_order).
    """
    spectra, gap_spectra = class_spectra(wl, recipes, gap_recipes)
    gaps = object_field(layout, rng) < gap_fraction[layout.classes - 1]
    hs = hs_cube(
        layout,
        spectra,
        rng,
        gap_spectra=gap_spectra,
        gaps=gaps,
        var_basis=variation_basis(wl),
        noise=band_noise(wl, noise),
        **options,
    )
    return hs, gaps


def band_noise(wl: np.ndarray, base: float) -> np.ndarray:
    """Per-band noise std: higher at the sensor's spectral ends and in water absorptions."""
    wl = np.asarray(wl, dtype=np.float64)
    edge = np.exp(-(wl - wl.min()) / 40.0) + np.exp(-(wl.max() - wl) / 40.0)
    return (base * (1.0 + 2.0 * edge + 3.0 * (1.0 - _water_bands(wl, 1.0)))).astype(np.float32)
