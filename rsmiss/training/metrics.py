"""OA, AA, Cohen's kappa (x100, as the paper reports them), per-class accuracy, confusion.

Computed with scikit-learn, overall and per missing pattern (complete, hs_missing, ...).
Floats are rounded so that ``metrics.json`` is a deterministic file: the same predictions
always give the same bytes, and nothing time- or machine-dependent is written there.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

DECIMALS = 6


def _r(x: float | None) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), DECIMALS)


def score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Scores of one set of predictions (0-based classes).

    AA averages per-class accuracy over the classes present in ``y_true``; absent classes
    get ``null`` accuracy. Kappa is ``null`` where undefined (a single class everywhere).
    """
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(n_classes))
    if len(y_true) == 0:
        return {
            "n": 0,
            "oa": None,
            "aa": None,
            "kappa": None,
            "per_class_accuracy": [None] * n_classes,
            "confusion_matrix": [[0] * n_classes for _ in labels],
        }
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    per_class = [(cm[i, i] / support[i]) if support[i] else None for i in labels]
    present = [a for a in per_class if a is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(y_true, y_pred, labels=labels)
    return {
        "n": int(len(y_true)),
        "oa": _r(100.0 * accuracy_score(y_true, y_pred)),
        "aa": _r(100.0 * float(np.mean(present))),
        "kappa": _r(100.0 * kappa),
        "per_class_accuracy": [None if a is None else _r(100.0 * a) for a in per_class],
        "confusion_matrix": cm.astype(int).tolist(),
    }


def score_by_pattern(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    patterns: np.ndarray,
    n_classes: int,
) -> dict[str, Any]:
    """``{"overall": ..., "by_pattern": {"complete": ..., "hs_missing": ...}}``."""
    patterns = np.asarray(patterns).astype(str)
    out = {"overall": score(y_true, y_pred, n_classes), "by_pattern": {}}
    for name in sorted(set(patterns.tolist())):
        sel = patterns == name
        out["by_pattern"][name] = score(y_true[sel], y_pred[sel], n_classes)
    return out


def pattern_labels(available: np.ndarray, modalities: tuple[str, ...] | list[str]) -> np.ndarray:
    """Missing-pattern names, from the scenarios module (one naming scheme project-wide)."""
    from rsmiss.scenarios import pattern_names

    return np.asarray(pattern_names(np.asarray(available, dtype=bool), tuple(modalities))).astype(
        str
    )
