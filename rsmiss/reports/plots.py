"""OA vs missing rate, one panel per (dataset, test setting), one line per method.

Solid lines with markers are ours (mean over seeds, error bars = std); dashed lines of the
same colour are the paper's numbers where it has them. Drawn on a ``Figure`` object and
saved as PNG, never through pyplot, so it works on headless machines and leaves the caller's
backend (a notebook's inline one) alone; PNG metadata fixed so the same records give the
same bytes.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _f(x: Any) -> float | None:
    if x is None or x == "":
        return None
    v = float(x)
    return None if math.isnan(v) else v


def _series(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict]]:
    """(dataset, panel title) -> variant -> {rate: ([our OAs], paper OA)}."""
    panels: dict[tuple[str, str], dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        oa = _f(r.get("oa"))
        if oa is None or r.get("availability"):
            continue
        test = r.get("eval_setting") or r["setting"]
        title = (
            f"missing {test}" if test == r["setting"] else f"trained {r['setting']}, tested {test}"
        )
        label = r["variant"] + (f" {r['placement']}" if r.get("placement") else "")
        rate = float(r["rate"])
        ours, paper = panels[(r["dataset"], title)][label].get(rate, ([], None))
        panels[(r["dataset"], title)][label][rate] = (ours + [oa], _f(r.get("paper_oa")) or paper)
    return panels


def plot_oa_vs_rate(records: Sequence[dict[str, Any]], dest: str | Path, title: str = "") -> bool:
    """Write the figure to ``dest`` atomically; False (and no file) when nothing to plot."""
    import matplotlib
    from matplotlib.figure import Figure

    from rsmiss.workspace import atomic_path

    panels = _series(records)
    dest = Path(dest)
    if not panels:
        dest.unlink(missing_ok=True)
        return False
    keys = sorted(panels)
    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.4 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    variants = sorted({v for k in keys for v in panels[k]})
    colour = {v: colours[i % len(colours)] for i, v in enumerate(variants)}
    for ax, key in zip(axes.flat, keys, strict=False):
        for variant, pts in sorted(panels[key].items()):
            rates = sorted(pts)
            xs = [r * 100 for r in rates]
            means = [statistics.fmean(pts[r][0]) for r in rates]
            stds = [statistics.stdev(pts[r][0]) if len(pts[r][0]) > 1 else 0.0 for r in rates]
            ax.errorbar(xs, means, yerr=stds, marker="o", color=colour[variant], label=variant)
            paper = [(r * 100, pts[r][1]) for r in rates if pts[r][1] is not None]
            if paper:
                ax.plot(
                    *zip(*paper, strict=True), ls="--", marker="x", color=colour[variant], alpha=0.6
                )
        ax.set_title(f"{key[0]}: {key[1]}", fontsize=9)
        ax.set_xlabel("missing rate (%)")
        ax.set_ylabel("OA (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title} — OA vs missing rate (solid: ours, dashed: paper)", fontsize=10)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    return True
