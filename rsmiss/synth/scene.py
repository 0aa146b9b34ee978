"""Shared spatial and spectral generator behind every synthetic dataset.

A scene is a parcel partition (Voronoi cells, one land-cover class each) crossed by linear
features (roads, rails), with a finer "object" partition inside parcels (buildings, crowns,
garden gaps). Spectra are low-rank: per-class reference spectra plus a few smooth variation
spectra, weighted per parcel and per pixel, then per-band sensor noise. Everything is
vectorised numpy so a full-size scene takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rsmiss.synth.specs import DatasetSpec, scaled_counts, scaled_shape


class LayoutError(RuntimeError):
    """A random layout could not hold the requested labelled pixels (retry with new draws)."""


# ----------------------------------------------------------------------------- spectra
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


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    """The true class of every pixel plus the partitions that drive spatial variability."""

    classes: np.ndarray  # (H, W) int16, 1..C (every pixel has a true class)
    parcel: np.ndarray  # (H, W) int32, parcel / line id
    n_parcels: int
    objects: np.ndarray  # (H, W) int32, fine object cells (buildings, crowns)
    n_objects: int
    train: np.ndarray  # (H, W) uint8, 0 = unlabelled
    test: np.ndarray  # (H, W) uint8, 0 = unlabelled

    @property
    def shape(self) -> tuple[int, int]:
        return self.classes.shape


def voronoi(
    h: int, w: int, n: int, rng: np.random.Generator, p: float = 2.0
) -> tuple[np.ndarray, int]:
    """Cell ids (H, W) and cell count for about ``n`` jittered-grid seeds (Minkowski ``p``).

    One seed per grid cell, placed in the middle half of its cell, so the nearest seed is
    always among the 3 x 3 neighbouring cells: nine vectorised distance maps, no tree.
    """
    step = max(1.0, math.sqrt(h * w / max(1, n)))
    gh, gw = max(1, math.ceil(h / step)), max(1, math.ceil(w / step))
    sy, sx = h / gh, w / gw
    seed_y = (np.arange(gh)[:, None] + rng.uniform(0.25, 0.75, (gh, gw))) * sy
    seed_x = (np.arange(gw)[None, :] + rng.uniform(0.25, 0.75, (gh, gw))) * sx
    yy = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float64)[None, :] + 0.5
    cy = np.minimum((yy / sy).astype(np.int64), gh - 1)
    cx = np.minimum((xx / sx).astype(np.int64), gw - 1)
    best = np.full((h, w), np.inf)
    cell = np.zeros((h, w), dtype=np.int32)
    for dy in (-1, 0, 1):
        ny = np.clip(cy + dy, 0, gh - 1)
        for dx in (-1, 0, 1):
            nx = np.clip(cx + dx, 0, gw - 1)
            ay, ax = np.abs(seed_y[ny, nx] - yy), np.abs(seed_x[ny, nx] - xx)
            d = np.maximum(ay, ax) if p == np.inf else ay**p + ax**p
            closer = d < best
            best = np.where(closer, d, best)
            cell = np.where(closer, (ny * gw + nx).astype(np.int32), cell)
    return cell, gh * gw


def _line(h: int, w: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """A straight band of ``width`` px across the scene, mostly along one of the axes."""
    y0, x0 = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    base = 0.0 if rng.random() < (w / (h + w)) else math.pi / 2
    ang = base + rng.normal(0, 0.12)
    yy, xx = np.ogrid[0:h, 0:w]
    dist = np.abs((xx - x0) * math.sin(ang) - (yy - y0) * math.cos(ang))
    return dist < width / 2.0


def scaled_layout(
    spec: DatasetSpec,
    rng: np.random.Generator,
    scale: float,
    *,
    n_parcels: int,
    object_px: float,
    lines: dict[int, float] | None = None,
    norm: float = np.inf,
) -> Layout:
    """``make_layout`` for ``spec`` at ``scale``; sizes are given for the full-size scene.

    Parcel counts shrink with the side, object areas and split counts with the area, line
    widths with the side (never under 1 px), so a small scene keeps the full one's texture.
    """
    h, w = scaled_shape(spec, scale)
    return make_layout(
        h,
        w,
        scaled_counts(spec.train_counts, scale),
        scaled_counts(spec.test_counts, scale),
        rng,
        n_parcels=max(3 * spec.n_classes, round(n_parcels * scale)),
        linear={c: max(1.0, width * scale) for c, width in (lines or {}).items()},
        object_px=max(6.0, object_px * scale * scale),
        norm=norm,
    )


def make_layout(
    h: int,
    w: int,
    train_counts: tuple[int, ...],
    test_counts: tuple[int, ...],
    rng: np.random.Generator,
    *,
    n_parcels: int,
    linear: dict[int, float] | None = None,
    object_px: float = 40.0,
    norm: float = np.inf,
    tries: int = 12,
) -> Layout:
    """Parcels and lines with class areas about twice the labelled pixels each class needs.

    ``linear`` maps a 1-based class id to a line width in pixels (roads, rails). Retries
    with fresh draws if the areas come out too small for the split.
    """
    last: Exception | None = None
    for _ in range(tries):
        try:
            return _make_layout_once(
                h, w, train_counts, test_counts, rng, n_parcels, linear or {}, object_px, norm
            )
        except LayoutError as exc:
            last = exc
    raise LayoutError(f"could not lay out the scene: {last}")


def _make_layout_once(h, w, train_counts, test_counts, rng, n_parcels, linear, object_px, norm):
    n_cls = len(train_counts)
    needs = np.asarray(train_counts) + np.asarray(test_counts)
    if needs.sum() > 0.7 * h * w:
        raise LayoutError(f"{needs.sum()} labelled pixels do not fit a {h}x{w} scene")
    classes = np.zeros((h, w), dtype=np.int16)
    cells, n_parcels = voronoi(h, w, n_parcels, rng, p=norm)
    parcel = cells.copy()
    next_id = n_parcels
    for cls, width in linear.items():
        target = min(2.0 * needs[cls - 1] + 4 * max(h, w), 0.1 * h * w)
        area = 0
        for _ in range(60):
            if area >= target:
                break
            line = _line(h, w, width, rng) & (classes == 0)
            classes[line] = cls
            parcel[line] = next_id
            next_id += 1
            area += int(line.sum())
    free = classes == 0
    cell_area = np.bincount(cells[free], minlength=n_parcels).astype(np.float64)
    areal = [c for c in range(1, n_cls + 1) if c not in linear]
    need_a = needs[[c - 1 for c in areal]].astype(np.float64)
    target = free.sum() * need_a / need_a.sum()
    got = np.zeros(len(areal))
    cell_class = np.zeros(n_parcels, dtype=np.int16)
    for cell in rng.permutation(n_parcels):  # greedy on the relative area deficit
        k = int(np.argmax((target - got) / target))
        cell_class[cell] = areal[k]
        got[k] += cell_area[cell]
    classes[free] = cell_class[cells[free]]
    area = np.bincount(classes.ravel(), minlength=n_cls + 1)[1:]
    short = np.nonzero(area < 1.3 * needs)[0]
    if short.size:
        raise LayoutError(f"class {short[0] + 1} got {area[short[0]]} px for {needs[short[0]]}")
    objects, n_obj = voronoi(h, w, max(1, round(h * w / object_px)), rng, p=2.0)
    buffer = 2 if h * w > 50_000 else 1
    train, test = pick_split(classes, train_counts, test_counts, rng, buffer=buffer)
    return Layout(classes, parcel, next_id, objects, n_obj, train, test)


def pick_split(
    classes: np.ndarray,
    train_counts: tuple[int, ...],
    test_counts: tuple[int, ...],
    rng: np.random.Generator,
    *,
    train_blob: int = 25,
    test_blob: int = 350,
    buffer: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Standard-style split: training pixels in small compact blobs, test elsewhere.

    Each class's training pixels are the ones nearest to a few random anchors (blobs of about
    ``train_blob`` px); test pixels are nearest to other anchors, at least ``buffer`` px away
    from every training pixel. Exact counts, disjoint, deterministic given ``rng``.
    """
    h, w = classes.shape
    flat = classes.ravel()
    train = np.zeros(h * w, dtype=np.uint8)
    test = np.zeros(h * w, dtype=np.uint8)
    by_class = [np.flatnonzero(flat == c) for c in range(1, len(train_counts) + 1)]
    for c, (idx, n) in enumerate(zip(by_class, train_counts, strict=True), start=1):
        train[_nearest_blobs(idx, n, max(1, math.ceil(n / train_blob)), w, rng)] = c
    near = ndimage.binary_dilation(train.reshape(h, w) > 0, iterations=buffer).ravel()
    for c, (idx, n) in enumerate(zip(by_class, test_counts, strict=True), start=1):
        ok = idx[~near[idx]]
        if ok.size < n:
            raise LayoutError(f"class {c} has {ok.size} px left for {n} test pixels")
        test[_nearest_blobs(ok, n, max(1, math.ceil(n / test_blob)), w, rng)] = c
    return train.reshape(h, w), test.reshape(h, w)


def _nearest_blobs(idx: np.ndarray, n: int, k: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The ``n`` of the flat pixel indices ``idx`` closest to ``k`` random anchors among them."""
    if idx.size < n:
        raise LayoutError(f"{idx.size} px for {n} samples")
    pts = np.column_stack([idx // w, idx % w]).astype(np.float64)
    anchors = pts[rng.choice(idx.size, size=min(k, idx.size), replace=False)]
    d, _ = cKDTree(anchors).query(pts, workers=1)
    order = np.lexsort((idx, d))
    return idx[order[:n]]


def parcels_from_labels(classes: np.ndarray, rng: np.random.Generator, n_parcels: int) -> tuple:
    """Parcel ids for a given class map (real labels): Voronoi cells split by class."""
    h, w = classes.shape
    cells, _ = voronoi(h, w, n_parcels, rng, p=np.inf)
    parcel = cells * (int(classes.max()) + 1) + classes
    _, inv = np.unique(parcel, return_inverse=True)
    return inv.reshape(h, w).astype(np.int32), int(inv.max()) + 1


# ----------------------------------------------------------------------------- fields
def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std spatially correlated noise (float32)."""
    f = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        f = ndimage.gaussian_filter(f, sigma, mode="reflect")
    f -= f.mean()
    return f / max(float(f.std()), 1e-6)


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


def terrain(shape: tuple[int, int], rng: np.random.Generator, waves: int = 6) -> np.ndarray:
    """Zero-mean, unit-std gentle relief: a few long random plane waves (cheap at any size)."""
    h, w = shape
    yy, xx = np.ogrid[0:h, 0:w]
    out = np.zeros(shape, dtype=np.float32)
    size = float(max(h, w))
    for _ in range(waves):
        length = rng.uniform(0.5, 2.0) * size
        ang, phase = rng.uniform(0, 2 * math.pi, 2)
        kx, ky = math.cos(ang) * 2 * math.pi / length, math.sin(ang) * 2 * math.pi / length
        out += np.cos(kx * xx + ky * yy + phase).astype(np.float32)
    out -= out.mean()
    return out / max(float(out.std()), 1e-6)


def band_noise(wl: np.ndarray, base: float) -> np.ndarray:
    """Per-band noise std: higher at the sensor's spectral ends and in water absorptions."""
    wl = np.asarray(wl, dtype=np.float64)
    edge = np.exp(-(wl - wl.min()) / 40.0) + np.exp(-(wl.max() - wl) / 40.0)
    return (base * (1.0 + 2.0 * edge + 3.0 * (1.0 - _water_bands(wl, 1.0)))).astype(np.float32)


def object_field(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """One uniform(0, 1) draw per object cell, broadcast to pixels (H, W) float32."""
    return rng.random(layout.n_objects, dtype=np.float32)[layout.objects]


def per_parcel(layout: Layout, sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-parcel normal offset with a per-class std ``sd`` (C,), broadcast to (H, W)."""
    z = rng.standard_normal(layout.n_parcels).astype(np.float32)[layout.parcel]
    return z * np.asarray(sd, dtype=np.float32)[layout.classes - 1]


# ----------------------------------------------------------------------------- writers
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: rsmiss-synth, Created by: rsmiss synth (synthetic)"


def write_mat(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """A MATLAB v5 file with a fixed header text, so the same arrays give the same bytes."""
    from scipy.io import savemat

    with open(path, "wb") as fh:
        savemat(fh, arrays, do_compression=compress, oned_as="column")
    with open(path, "r+b") as fh:  # scipy stamps the current time into the 116-byte text
        fh.write(MAT_HEADER.ljust(116, b" "))
