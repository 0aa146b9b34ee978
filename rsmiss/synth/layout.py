"""The spatial layout of a synthetic scene and the fields drawn over it.

A scene is a parcel partition (Voronoi cells, one land-cover class each) crossed by linear
features (roads, rails), with a finer "object" partition inside parcels (buildings, crowns,
garden gaps). Training and test pixels are picked per class from it, and the per-parcel,
per-object and terrain fields that the datasets turn into LiDAR, SAR or DSM values are drawn
here. Everything is vectorised numpy so a full-size scene takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rsmiss.synth.specs import DatasetSpec, scaled_counts, scaled_shape


class LayoutError(RuntimeError):
    """A random layout could not hold the requested labelled pixels (retry with new draws)."""


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


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std spatially correlated noise (float32)."""
    f = rng.standard_normal(shape, dtype=np.float32)
    if sigma > 0:
        f = ndimage.gaussian_filter(f, sigma, mode="reflect")
    f -= f.mean()
    return f / max(float(f.std()), 1e-6)


def relief(shape: tuple[int, int], rng: np.random.Generator, waves: int = 6) -> np.ndarray:
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


def object_field(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """One uniform(0, 1) draw per object cell, broadcast to pixels (H, W) float32."""
    return rng.random(layout.n_objects, dtype=np.float32)[layout.objects]


def per_parcel(layout: Layout, sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-parcel normal offset with a per-class std ``sd`` (C,), broadcast to (H, W)."""
    z = rng.standard_normal(layout.n_parcels).astype(np.float32)[layout.parcel]
    return z * np.asarray(sd, dtype=np.float32)[layout.classes - 1]
