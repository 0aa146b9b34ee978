"""Per-run plots and the training-curve CSV (matplotlib, Agg, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.workspace import atomic_path, write_text_atomic


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_curve(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``curve.csv`` (one row per epoch) and ``curve.png`` (loss, and val OA when present)."""
    cols = ["epoch", "step", "lr", "train_loss"] + (
        ["val_oa"] if any("val_oa" in h for h in history) else []
    )
    lines = [",".join(cols)] + [",".join(str(h.get(c, "")) for c in cols) for h in history]
    write_text_atomic(run_dir / "curve.csv", "\n".join(lines) + "\n")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (CE)")
    if "val_oa" in cols:
        ax2 = ax.twinx()
        ax2.plot(ep, [h.get("val_oa") for h in history], color="tab:orange", label="val OA")
        ax2.set_ylabel("validation OA (%)")
    ax.set_title(run_dir.name, fontsize=8)
    fig.tight_layout()
    with atomic_path(run_dir / "curve.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_confusion_png(
    path: Path, cm: list[list[int]], class_names: list[str], title: str
) -> None:
    """Row-normalised confusion matrix (recall per true class), counts annotated."""
    plt = _plt()
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(m)
    fig, ax = plt.subplots(figsize=(2 + 0.5 * k, 1.5 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = class_names or [str(i + 1) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
