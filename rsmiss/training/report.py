"""Per-run plots and the training-curve CSV (written atomically).

Each plot is drawn on its own ``matplotlib.figure.Figure`` and saved as PNG, never through
pyplot: library code must not switch the process's backend (a notebook's inline one) or
keep figures alive in pyplot's global registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsmiss.workspace import atomic_path, write_text_atomic


def write_curve(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``curve.csv`` (one row per epoch, deterministic: no timings) and ``curve.png`` (loss,
    val OA when present, and val OA against training wall time: time to accuracy)."""
    cols = ["epoch", "step", "lr", "train_loss"] + [
        c for c in ("val_oa", "val_separation") if any(c in h for h in history)
    ]
    lines = [",".join(cols)] + [",".join(str(h.get(c, "")) for c in cols) for h in history]
    write_text_atomic(run_dir / "curve.csv", "\n".join(lines) + "\n")
    from matplotlib.figure import Figure

    timed = "val_oa" in cols and all("wall_s" in h for h in history)
    fig = Figure(figsize=(11 if timed else 6, 3.5))
    axes = fig.subplots(1, 2 if timed else 1)
    ax = axes[0] if timed else axes
    if timed:
        axes[1].plot([h["wall_s"] for h in history], [h.get("val_oa") for h in history], "o-")
        axes[1].set_xlabel("training wall time (s)")
        axes[1].set_ylabel("validation OA (%)")
        axes[1].set_title("time to accuracy", fontsize=8)
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


def write_confusion_png(
    path: Path, cm: list[list[int]], class_names: list[str], title: str
) -> None:
    """Row-normalised confusion matrix (recall per true class), counts annotated."""
    from matplotlib.figure import Figure

    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(m)
    fig = Figure(figsize=(2 + 0.5 * k, 1.5 + 0.5 * k))
    ax = fig.subplots()
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


def write_routing_png(path: Path, routing: dict[str, Any], title: str) -> None:
    """Heat-map of expert share per missing pattern (rows) and expert (columns), one panel
    per adapted block, annotated with the shares and each block's pattern separation
    (fields documented in rsmiss.models.routing)."""
    from matplotlib.figure import Figure

    blocks = routing["blocks"]
    patterns = routing["patterns"]
    experts = int(routing["experts"])
    seps = routing["separation"].get("by_block") or []
    n = len(blocks)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(
        figsize=(
            1.6 + (0.4 + 0.5 * experts) * cols,
            1.4 + 0.35 * len(patterns) * rows + 0.5 * rows,
        ),
        layout="constrained",
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        by = blocks[k]["by_pattern"]
        grid = np.array([by[p]["share"] if p in by else [np.nan] * experts for p in patterns])
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    colour = "black" if grid[i, j] > 0.6 else "white"
                    ax.text(
                        j,
                        i,
                        f"{grid[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=colour,
                    )
        ax.set_xticks(range(experts), [f"e{j}" for j in range(experts)], fontsize=7)
        ax.set_yticks(
            range(len(patterns)), patterns if k % cols == 0 else [""] * len(patterns), fontsize=7
        )
        sep = f", JS {seps[k]:.3f}" if k < len(seps) and seps[k] is not None else ""
        ax.set_title(f"block {blocks[k]['block']}{sep}", fontsize=8)
    overall = routing["separation"].get("overall")
    flag = " — COLLAPSED" if routing.get("collapsed") else ""
    sep_text = "—" if overall is None else f"{overall:.3f}"
    fig.suptitle(f"{title}\nshare of tokens per expert; separation {sep_text}{flag}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="share of tokens")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
