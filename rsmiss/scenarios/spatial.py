"""``--spatial``: missingness shaped like clouds or coverage gaps, not salt and pepper.

Each missing pattern gets its own seeded smooth random field over the scene grid (white
noise blurred by a Gaussian). The allocator gives pattern k to the samples with the
highest field value k within each class, so counts stay exact while the chosen samples
form contiguous blobs.
"""

from __future__ import annotations

import numpy as np


def blob_sigma(shape: tuple[int, int]) -> float:
    """Blob scale: a twentieth of the scene's short side, at least 2 pixels."""
    return max(2.0, min(shape) / 20.0)


def smooth_scores(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    n_patterns: int,
    rng: np.random.Generator,
    sigma: float | None = None,
) -> np.ndarray:
    """Field value of each sample (n x n_patterns): one smooth field per pattern."""
    from scipy.ndimage import gaussian_filter

    sigma = blob_sigma(shape) if sigma is None else sigma
    out = np.empty((len(rows), n_patterns), dtype=np.float64)
    for j in range(n_patterns):
        noise = rng.standard_normal(shape)
        field = gaussian_filter(noise, sigma=sigma, mode="reflect", truncate=3.0)
        out[:, j] = field[rows, cols]
    return out


def neighbour_share(
    missing: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> float:
    """Among the labelled 4-neighbours of missing samples, the share that is missing too.

    Independent masks give about ``missing.mean()``; blobs give much more. Only samples
    passed in count as labelled (pass one split at a time).
    """
    grid = np.full(shape, -1, dtype=np.int8)
    grid[rows, cols] = np.asarray(missing, dtype=np.int8)
    r, c = rows[missing], cols[missing]
    both = total = 0
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        values = grid[rr[ok], cc[ok]]
        total += int((values >= 0).sum())
        both += int((values == 1).sum())
    return both / total if total else float("nan")
