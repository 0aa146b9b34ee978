"""Capacity, seeds and significance, and expert routing: the report's comparison sections.

Every cell is compared with MaMOL in the same context (table, dataset, setting, rate,
availability, placement) by a paired difference over the seeds both ran.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass

from rsmiss.reports.groups import Group, cell_name, fmt, fmt3, fmt_int, mean_std, num, unique_groups

REFERENCE_VARIANT = "mamol"
"""The variant every other cell of the same context is compared with (paired over seeds)."""


@dataclass(frozen=True)
class Paired:
    """Paired difference over seeds (reference − other): mean, sample std, standard error."""

    n: int
    mean: float
    std: float | None
    se: float | None

    @property
    def significant(self) -> bool:
        """|mean| > 2 standard errors (needs two seeds or more)."""
        return self.se is not None and abs(self.mean) > 2 * self.se

    def text(self) -> str:
        if self.se is None:
            return f"{self.mean:+.2f} (1 seed)"
        return f"{self.mean:+.2f} ± {self.se:.2f}" + (" *" if self.significant else "")


def paired_difference(reference: dict[int, float], other: dict[int, float]) -> Paired | None:
    """Per-seed OA of the reference and another method (seed -> OA), over the seeds both ran:
    the mean difference, its sample std and standard error std / sqrt(n); None if no seed
    is shared."""
    seeds = sorted(set(reference) & set(other))
    if not seeds:
        return None
    diffs = [reference[s] - other[s] for s in seeds]
    if len(diffs) == 1:
        return Paired(1, diffs[0], None, None)
    std = statistics.stdev(diffs)
    return Paired(len(diffs), statistics.fmean(diffs), std, std / math.sqrt(len(diffs)))


def comparison_context(g: Group) -> tuple:
    """What must match for two cells to be compared: everything but the method variant."""
    r = g.first
    keys = ("table", "dataset", "setting", "rate", "availability", "placement", "eval_setting")
    return tuple(str(r.get(k) or "") for k in keys)


def per_seed(g: Group, key: str = "oa") -> dict[int, float]:
    out = {}
    for r in g.records:
        v = num(r.get(key))
        if v is not None:
            out[int(r["seed"])] = v
    return out


def summary_section(groups: list[Group]) -> list[str]:
    """One row per cell: trainable parameters (method-specific and all), epochs used,
    OA mean ± std over seeds, and MaMOL's paired OA difference against it."""
    if not groups:
        return []
    refs = {comparison_context(g): g for g in groups if g.first.get("variant") == REFERENCE_VARIANT}
    lines = [
        "## Capacity, seeds and significance",
        "",
        "Trainable parameters: *method* = what the method adds to the shared token projections "
        "and head (adapters, routers, prompts); *all* = every trainable parameter. "
        f"Δ {REFERENCE_VARIANT} = its OA minus this row's, paired by seed (mean ± standard "
        "error over the seeds both ran); **\\*** marks |mean| > 2 standard errors.",
        "",
        "| Cell | Method params | All trainable | Epochs used | Seeds | OA mean ± std | "
        f"Δ {REFERENCE_VARIANT} (paired) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in unique_groups(groups):
        r = g.first
        used = sorted({str(x.get("epochs_used") or x.get("epochs")) for x in g.records})
        ref = refs.get(comparison_context(g))
        diff = "—"
        if ref is not None and ref is not g:
            pair = paired_difference(per_seed(ref), per_seed(g))
            diff = "—" if pair is None else pair.text()
        seeds = ",".join(str(x["seed"]) for x in g.records)
        lines.append(
            f"| {cell_name(g)} | {fmt_int(r.get('method_params'))} "
            f"| {fmt_int(r.get('trainable_params'))} | {'/'.join(used)} | {seeds} "
            f"| {fmt(*g.stat('oa'))} | {diff} |"
        )
    return lines + [""]


def routing_section(groups: list[Group]) -> list[str]:
    """Pattern separation of the routers (mean over seeds), per pattern, collapse flags and
    the heat-maps (fields defined in rsmiss.models.routing)."""
    routed = [g for g in unique_groups(groups) if g.stat("routing_separation")[0] is not None]
    if not routed:
        return []
    lines = [
        "## Expert routing on the test set",
        "",
        "Separation = Jensen–Shannon divergence (base 2, 0 = patterns routed alike, 1 = "
        "disjoint experts) between the missing patterns' shares of tokens per expert, mean "
        "over pattern pairs and adapted blocks; per pattern: against every other pattern. "
        "Mean ± std over seeds. **COLLAPSED**: in every block one expert takes ≥ 95 % of every "
        "pattern.",
        "",
        "| Cell | Separation | Per pattern | Collapsed | Heat-map |",
        "|---|---|---|---|---|",
    ]
    for g in routed:
        per: dict[str, list[float]] = {}
        for r in g.records:
            for p, v in json.loads(r.get("routing_by_pattern") or "{}").items():
                per.setdefault(p, []).append(float(v))
        per_text = ", ".join(f"{p} {fmt3(*mean_std(v))}" for p, v in sorted(per.items()))
        flags = [str(r.get("routing_collapsed")).lower() == "true" for r in g.records]
        collapsed = "**COLLAPSED**" if all(flags) else ("some seeds" if any(flags) else "no")
        pngs = [r.get("routing_png") for r in g.records if r.get("routing_png")]
        link = f"[seed {g.records[0]['seed']}](../../{pngs[0]})" if pngs else "—"
        lines.append(
            f"| {cell_name(g)} | {fmt3(*g.stat('routing_separation'))} | {per_text or '—'} "
            f"| {collapsed} | {link} |"
        )
    first = next((g for g in routed if g.first.get("variant") == REFERENCE_VARIANT), routed[0])
    png = next((r.get("routing_png") for r in first.records if r.get("routing_png")), None)
    if png:
        lines += ["", f"![routing of {cell_name(first)}](../../{png})"]
    return lines + [""]
