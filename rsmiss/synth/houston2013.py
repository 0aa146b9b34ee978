"""Synthetic Houston2013 (CASI HS + LiDAR DSM, 15 classes) as GeoTIFFs and ENVI ROI text.

Confusable by design: Road / Highway (same asphalt, highway elevated), Residential /
Commercial (similar roofs, 6 m vs 14 m), Healthy grass / Trees (similar vegetation, trees
tall); and the other way round: the grasses, Soil, Road, Parking lot 1, Tennis court and
Running track all lie on the ground and differ only in their spectra.
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
from rsmiss.synth.specs import HOUSTON2013
from rsmiss.synth.spectra import gapped_hs_cube

SPEC = HOUSTON2013
CASI, HDR, LIDAR, ROI_TR, ROI_VA = SPEC.files
CASI_DTYPE = np.uint16  # reflectance x 10000, as documented for the real CASI file
LIDAR_DTYPE = np.float32
EPSG = 32615  # WGS 84 / UTM zone 15N, the real data's grid
ORIGIN = (271460.0, 3290890.0)  # upper-left corner (easting, northing), metres
PIXEL = 2.5  # metres
GROUND = 10.0  # terrain elevation (m) around which the DSM varies

RECIPES = (
    {"veg": 0.9, "soil": 0.1},  # Healthy grass
    {"veg_stressed": 0.75, "soil": 0.25},  # Stressed grass
    {"synthetic_grass": 1.0},  # Synthetic grass
    {"veg": 0.8, "veg_dark": 0.2},  # Trees
    {"soil": 0.9, "veg_sparse": 0.1},  # Soil
    {"water": 1.0},  # Water
    {"roof_tile": 0.45, "asphalt_old": 0.2, "concrete": 0.35},  # Residential
    {"roof_tile": 0.38, "asphalt_old": 0.24, "concrete": 0.38},  # Commercial
    {"asphalt": 0.9, "concrete": 0.1},  # Road
    {"asphalt": 0.88, "concrete": 0.12},  # Highway
    {"gravel": 0.6, "asphalt_old": 0.3, "soil": 0.1},  # Railway
    {"asphalt_old": 0.8, "concrete": 0.2},  # Parking lot 1
    {"asphalt_old": 0.6, "concrete": 0.2, "roof_metal": 0.2},  # Parking lot 2
    {"court": 1.0},  # Tennis court
    {"rubber": 0.9, "veg": 0.1},  # Running track
)
# what lies between objects: lawns between houses, parking between commercial blocks, ...
GAP_RECIPES = (
    RECIPES[:6]
    + (
        {"veg": 0.8, "soil": 0.2},
        {"asphalt_old": 0.8, "concrete": 0.2},
    )
    + RECIPES[8:12]
    + ({"asphalt_old": 0.8, "concrete": 0.2},)
    + RECIPES[13:]
)
GAP_FRACTION = np.array([0, 0, 0, 0.15, 0, 0, 0.35, 0.25, 0, 0, 0, 0, 0.5, 0, 0], dtype=np.float32)
# height above terrain (m): class mean, per-parcel sd, per-pixel sd
HEIGHT = np.array(
    [
        [0.05, 0.02, 0.1],
        [0.05, 0.02, 0.1],
        [0.05, 0.02, 0.05],
        [11.0, 2.5, 2.0],
        [0.0, 0.05, 0.1],
        [-1.0, 0.2, 0.05],
        [6.0, 1.0, 0.4],
        [14.0, 4.0, 0.5],
        [0.0, 0.05, 0.08],
        [6.5, 2.5, 0.1],
        [0.4, 0.1, 0.1],
        [0.0, 0.05, 0.08],
        [1.4, 0.3, 0.4],
        [0.0, 0.03, 0.05],
        [0.05, 0.03, 0.05],
    ],
    dtype=np.float32,
)
N_PARCELS = 500
LINES = {9: 3.0, 10: 7.0, 11: 2.0}  # Road, Highway, Railway widths (px)


def layout(rng: np.random.Generator, scale: float) -> Layout:
    """The synthetic Houston layout at ``scale`` (training and test maps included)."""
    return scaled_layout(SPEC, rng, scale, n_parcels=N_PARCELS, object_px=40.0, lines=LINES)


def write(tmp: Path, rng: np.random.Generator, scale: float, real_from: Path | None) -> None:
    """Write the CASI and LiDAR GeoTIFFs, the ENVI header and both ROI files into ``tmp``."""
    import rasterio
    from rasterio.transform import Affine

    lay = layout(rng, scale)
    h, w = lay.shape
    wl = SPEC.wavelengths()
    hs, gaps = gapped_hs_cube(
        lay,
        wl,
        rng,
        recipes=RECIPES,
        gap_recipes=GAP_RECIPES,
        gap_fraction=GAP_FRACTION,
        noise=0.004,
        gain=10000.0,
        band_order="bhw",
    )
    np.clip(hs, 0.0, 65535.0, out=hs)
    hs += 0.5  # round half up on the cast
    casi = hs.astype(CASI_DTYPE)
    del hs
    transform = Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])
    crs = rasterio.crs.CRS.from_epsg(EPSG)
    profile = dict(
        driver="GTiff",
        height=h,
        width=w,
        crs=crs,
        transform=transform,
        interleave="band",
    )
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp / CASI, "w", count=casi.shape[0], dtype="uint16", **profile) as d:
            d.write(casi)
        del casi
        dsm = _dsm(lay, gaps, rng)
        with rasterio.open(tmp / LIDAR, "w", count=1, dtype="float32", **profile) as dst:
            dst.write(dsm[None])
    (tmp / HDR).write_bytes(envi_header(h, w, wl).encode("ascii"))
    (tmp / ROI_TR).write_bytes(roi_text(lay.train, rng, transform, crs).encode("ascii"))
    (tmp / ROI_VA).write_bytes(roi_text(lay.test, rng, transform, crs).encode("ascii"))


def _dsm(lay: Layout, gaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Terrain + per-class object heights + noise (float32, metres)."""
    cls = lay.classes - 1
    shape = lay.shape
    terrain = GROUND + 2.0 * relief(shape, rng)
    obj = 0.7 + 0.6 * object_field(lay, rng)  # building-to-building height variation
    height = (HEIGHT[cls, 0] + per_parcel(lay, HEIGHT[:, 1], rng)) * obj
    canopy = smooth_noise(shape, 1.5, rng)
    height = height + HEIGHT[cls, 2] * np.where(cls == 3, canopy, rng.standard_normal(shape))
    height = np.where(gaps, 0.05 * rng.standard_normal(shape), height)
    return (terrain + height).astype(LIDAR_DTYPE)


def envi_header(h: int, w: int, wl: np.ndarray) -> str:
    """The ENVI .hdr that sits beside the CASI GeoTIFF (wavelengths in nm)."""
    waves = ",\n ".join(", ".join(f"{v:.2f}" for v in wl[i : i + 8]) for i in range(0, len(wl), 8))
    fwhm = np.full(len(wl), np.round(np.diff(wl).mean(), 2))
    widths = ",\n ".join(
        ", ".join(f"{v:.2f}" for v in fwhm[i : i + 8]) for i in range(0, len(fwhm), 8)
    )
    return (
        "ENVI\n"
        "description = {\n  rsmiss synthetic stand-in for the 2013 IEEE GRSS DFC CASI image}\n"
        f"samples = {w}\nlines   = {h}\nbands   = {len(wl)}\nheader offset = 0\n"
        "file type = TIFF\ndata type = 12\ninterleave = bsq\nsensor type = CASI\n"
        "byte order = 0\n"
        f"map info = {{UTM, 1.000, 1.000, {ORIGIN[0]:.3f}, {ORIGIN[1]:.3f}, "
        f"{PIXEL:.10e}, {PIXEL:.10e}, 15, North, WGS-84, units=Meters}}\n"
        "wavelength units = Nanometers\n"
        f"wavelength = {{\n {waves}}}\n"
        f"fwhm = {{\n {widths}}}\n"
    )


def roi_text(labels: np.ndarray, rng: np.random.Generator, transform, crs) -> str:
    """ENVI "Output of ROIs" ASCII (CRLF) of a label map, with map/geographic columns.

    A few points per ROI are listed twice (as overlapping ROI shapes export them), so
    readers must count distinct pixels.
    """
    from rasterio.warp import transform as warp

    h, w = labels.shape
    lines = [
        "; ENVI Output of ROIs (4.8) [Tue Jan 01 00:00:00 2013]",
        f"; Number of ROIs: {SPEC.n_classes}",
        f"; File Dimension: {w} x {h}",
        ";",
    ]
    blocks = []
    for c in range(1, SPEC.n_classes + 1):
        rows, cols = np.nonzero(labels == c)
        n_dup = min(2, rows.size)
        dup = np.sort(rng.choice(rows.size, size=n_dup, replace=False))
        order = np.sort(np.concatenate([np.arange(rows.size), dup]), kind="stable")
        rows, cols = rows[order], cols[order]
        r, g, b = SPEC.palette[c - 1]
        lines += [
            f"; ROI name: {SPEC.class_names[c - 1]}",
            f"; ROI rgb value: {{{r}, {g}, {b}}}",
            f"; ROI npts: {rows.size}",
        ]
        blocks.append((rows, cols))
    lines.append(";    ID     X     Y          Map X          Map Y           Lat            Lon")
    a, _, c0, _, e, f0 = transform[:6]
    for i, (rows, cols) in enumerate(blocks):
        mx = c0 + (cols + 0.5) * a
        my = f0 + (rows + 0.5) * e
        lon, lat = warp(crs, "EPSG:4326", mx.tolist(), my.tolist())
        for k, (y, x, u, v, la, lo) in enumerate(zip(rows, cols, mx, my, lat, lon, strict=True)):
            lines.append(f"{k + 1:7d}{x + 1:6d}{y + 1:6d}{u:15.4f}{v:15.4f}{la:14.8f}{lo:15.8f}")
        if i < len(blocks) - 1:
            lines.append("")
    return "\r\n".join(lines) + "\r\n"
